package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/processor"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

// profile runs the relay's parts in this process, wired as cmd/capirelay's newRelay wires
// them with the default configuration (Redis dedup store and identity map, Graph client,
// batcher, processor), over the main topic until everything is committed, with the CPU
// profiler on. `capirelay run` has no profiling hook, so this is how its hot paths are
// profiled; the in-process emulator shows up in the profile under sink/emulator and
// net/http's server, and is easy to tell apart.
func (b *bench) profile(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	if err := os.MkdirAll(b.o.profileDir, 0o755); err != nil {
		return err
	}
	e, err := startEmu(b.o.emuMode, 0)
	if err != nil {
		return err
	}
	defer e.close()
	group := b.topicName("profile")
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))

	dec, err := schema.NewDecoder(map[string]schema.TopicConfig{
		b.mainTopic: {Mode: schema.ModeRaw, Schema: schema.SchemaWebEvent, Kind: schema.KindWeb},
	})
	if err != nil {
		return err
	}
	rc := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{b.o.redis}})
	defer rc.Close()
	prefix := "bench:" + b.runID + ":profile:"
	store := dedupstore.NewRedis(rc, dedupstore.WithPrefix(prefix+"dedup:"), dedupstore.WithLease(30*time.Second),
		dedupstore.WithTTL(48*time.Hour), dedupstore.WithLogger(log))
	ids := dedupstore.NewRedisIdentityMap(rc, dedupstore.WithPrefix(prefix+"idmap:"), dedupstore.WithTTL(30*24*time.Hour),
		dedupstore.WithLogger(log))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost, tr.MaxIdleConns = 16, 32
	linger := b.o.linger
	if linger == 0 {
		linger = 200 * time.Millisecond
	}
	batcher, err := sink.NewBatcher(sink.NewGraphClient(
		sink.WithBaseURL(e.URL), sink.WithAPIVersion("v25.0"),
		sink.WithTokenSource(func(string) (string, bool) { return benchToken, true }),
		sink.WithHTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}),
	), sink.WithMaxBatch(500), sink.WithLinger(linger), sink.WithMaxInFlight(8), sink.WithMaxPending(20000),
		sink.WithPartnerAgent("capirelay-bench"), sink.WithRetry(100*time.Millisecond, 30*time.Second, 2*time.Minute),
		sink.WithLogger(log))
	if err != nil {
		return err
	}
	pool := sync.Pool{New: func() any { return sink.NewHasher() }}
	vopts := sink.ValidateOptions{MaxAge: 7*24*time.Hour - 11*time.Minute, MaxFutureSkew: time.Minute, ClampFuture: true}
	proc, err := processor.New(processor.Config{
		Brokers: b.o.brokers, Group: group, Topics: []string{b.mainTopic},
		MaxInFlight: 6000, MaxInFlightPerPartition: 4000, CommitInterval: time.Second, RevokeTimeout: 10 * time.Second,
		LeaseRenewInterval: 10 * time.Second, ShutdownTimeout: 30 * time.Second, Logger: log,
	}, processor.Deps{Decoder: dec, Store: store, Identities: ids, Sink: batcher,
		Prepare: func(ev *schema.Event, now time.Time, w *sink.Event) ([]sink.Dropped, error) {
			h := pool.Get().(*sink.Hasher)
			dropped := sink.BuildInto(w, ev, sink.BuildOptions{Now: now, Hasher: h})
			pool.Put(h)
			return dropped, sink.Validate(w, now, vopts)
		}})
	if err != nil {
		return err
	}

	cpuPath := filepath.Join(b.o.profileDir, "cpu.pprof")
	allocBase := filepath.Join(b.o.profileDir, "allocs-before.pprof")
	allocPath := filepath.Join(b.o.profileDir, "allocs.pprof")
	if err := writeProfile("allocs", allocBase, true); err != nil {
		return err
	}
	cf, err := os.Create(cpuPath)
	if err != nil {
		return err
	}
	defer cf.Close()
	if err := pprof.StartCPUProfile(cf); err != nil {
		return err
	}
	heapPath := filepath.Join(b.o.profileDir, "heap-midway.pprof")
	heapTaken := false
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	start := time.Now()
	go func() { runErr <- proc.Run(runCtx) }()
	for {
		select {
		case <-ctx.Done():
			pprof.StopCPUProfile()
			stopRun()
			return ctx.Err()
		case err := <-runErr:
			pprof.StopCPUProfile()
			return fmt.Errorf("processor stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		lag, err := groupLag(lctx, b.adm, group, b.mainTopic, b.mainEnds)
		lcancel()
		if err == nil && lag == 0 {
			break
		}
		if !heapTaken && err == nil && lag <= int64(b.o.events)/2 {
			// What is live halfway through the backlog: fetched records, decoded events,
			// batches, fetch buffers.
			heapTaken = true
			if err := writeProfile("heap", heapPath, false); err != nil {
				logf("profile: heap: %v", err)
			}
		}
	}
	took := time.Since(start)
	pprof.StopCPUProfile()
	stopRun()
	<-runErr
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	_ = batcher.Close(cctx)
	ccancel()
	if err := writeProfile("allocs", allocPath, true); err != nil {
		return err
	}
	b.res.Profile = &ProfileRes{Records: b.o.events, Seconds: round3(took.Seconds()), PerSecond: float64(int(float64(b.o.events) / took.Seconds())),
		CPU: cpuPath, Allocs: allocPath + " (diff against " + filepath.Base(allocBase) + "), " + heapPath}
	logf("profile: %d records in %s (from Run, includes the group join); profiles in %s", b.o.events, took.Round(time.Millisecond), b.o.profileDir)
	return nil
}

func writeProfile(name, path string, gc bool) error {
	if gc {
		runtime.GC()
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}
