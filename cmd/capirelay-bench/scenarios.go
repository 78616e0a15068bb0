package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/schema"
)

// Results is everything one capirelay-bench invocation measured.
type Results struct {
	Started  time.Time   `json:"started"`
	Events   int         `json:"events"`
	Distinct int         `json:"distinct"`
	DupEvery int         `json:"dup_every"`
	Produce  *ProduceRes `json:"produce,omitempty"`
	Ceiling  *CeilingRes `json:"ceiling,omitempty"`
	E2E      []E2ERes    `json:"e2e,omitempty"`
	Latency  *LatencyRes `json:"latency,omitempty"`
	Backlog  *BacklogRes `json:"backlog,omitempty"`
	Profile  *ProfileRes `json:"profile,omitempty"`
	Errors   []string    `json:"errors,omitempty"`
}

type ProduceRes struct {
	Records   int     `json:"records"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"records_per_second"`
}

type CeilingRes struct {
	Records    int                `json:"records"`
	Seconds    float64            `json:"seconds"`
	PerSecond  float64            `json:"records_per_second"`
	CPUSeconds map[string]float64 `json:"cpu_seconds"`
	LoadAvg    float64            `json:"load_avg_1m"`
}

type E2ERes struct {
	LatencyMS       int64              `json:"emulator_latency_ms"`
	Run             int                `json:"run"`
	Records         int                `json:"records"`
	Distinct        int                `json:"distinct"`
	Delivered       int64              `json:"delivered"`
	Requests        int64              `json:"requests"`
	Non200          int64              `json:"non_200"`
	Seconds         float64            `json:"seconds_first_fetch_to_last_commit"`
	PerSecond       float64            `json:"records_per_second"`
	DeliverSeconds  float64            `json:"seconds_first_fetch_to_last_ack"`
	JoinSeconds     float64            `json:"seconds_start_to_first_fetch"`
	RelayCPU        float64            `json:"relay_cpu_seconds"`
	RelayCPUAtFetch float64            `json:"relay_cpu_seconds_before_first_fetch"`
	CPUPerMillion   float64            `json:"relay_cpu_seconds_per_million"`
	PeakRSSMiB      float64            `json:"relay_peak_rss_mib"`
	CPUSeconds      map[string]float64 `json:"cpu_seconds"`
	LoadAvg         float64            `json:"load_avg_1m"`
	Ratio           float64            `json:"ratio_to_ceiling,omitempty"`
	MaxInFlightReqs int                `json:"max_in_flight_requests"`
	// MachineIdlePct is how much of the machine's CPU time ran nothing from first fetch
	// to last commit. On a VM, work done between idle spells costs more CPU time than the
	// same work on busy CPUs (session 10 in bench/RESULTS.md); this says which it was.
	MachineIdlePct float64 `json:"machine_idle_pct"`
	// MachineStealPct is how much of it the hypervisor gave to other guests.
	MachineStealPct float64 `json:"machine_steal_pct"`
	// RelaySwitches are the relay's context switches from first fetch to last commit; -1
	// when /proc could not be read.
	RelaySwitches int64 `json:"relay_context_switches"`
	// RelayUserCPU and RelaySysCPU split the relay's CPU seconds from first fetch to last
	// commit into user mode and kernel; MonitorCPU is the part the Go runtime's monitor
	// thread spent, in MonitorSleeps sleeps. MonitorSleeps is -1 when /proc could not tell.
	RelayUserCPU  float64 `json:"relay_user_cpu_seconds"`
	RelaySysCPU   float64 `json:"relay_system_cpu_seconds"`
	MonitorCPU    float64 `json:"relay_monitor_thread_cpu_seconds"`
	MonitorSleeps int64   `json:"relay_monitor_thread_sleeps"`
}

type LatencyRes struct {
	Rate      int     `json:"rate"`
	Produced  int     `json:"produced"`
	Delivered int     `json:"delivered"`
	LingerMS  int64   `json:"linger_ms"`
	P50MS     float64 `json:"p50_ms"`
	P90MS     float64 `json:"p90_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
	// P99ByWindow is the p99 of the events produced in each 5 s window, to tell a warm-up
	// or a stall from a steady tail.
	P99ByWindow []float64 `json:"p99_ms_by_5s_window"`
	LoadAvg     float64   `json:"load_avg_1m"`
}

type BacklogRes struct {
	Records      int       `json:"records"`
	AcceptRate   int       `json:"accept_rate"`
	EmuLatencyMS int64     `json:"emulator_latency_ms"`
	Seconds      float64   `json:"seconds_sampled"`
	Delivered    int64     `json:"delivered"`
	Requests     int64     `json:"requests"`
	Drained      bool      `json:"drained"`
	DeliverRate  float64   `json:"delivered_per_second"`
	RSSMinMiB    float64   `json:"rss_min_mib"`
	RSSMaxMiB    float64   `json:"rss_max_mib"`
	RSSLastMiB   float64   `json:"rss_last_mib"`
	PeakRSSMiB   float64   `json:"peak_rss_mib"`
	Series       []float64 `json:"rss_series_mib"`
	SeriesEvery  float64   `json:"rss_series_every_s"`
	Config       string    `json:"bounding_config"`
}

type ProfileRes struct {
	Records   int     `json:"records"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"records_per_second"`
	CPU       string  `json:"cpu_profile"`
	Allocs    string  `json:"allocs_profile"`
}

type bench struct {
	o     *options
	runID string
	cl    *kgo.Client
	adm   *kadm.Client
	res   *Results

	mainTopic string
	mainEnds  map[int32]int64
}

func newBench(ctx context.Context, o *options) (*bench, error) {
	cl, err := newProducer(o.brokers)
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, runID: strconv.FormatInt(time.Now().Unix()%1e8, 36), cl: cl, adm: kadm.NewClient(cl),
		res: &Results{Started: time.Now().UTC(), Events: o.events, DupEvery: o.dupEvery, Distinct: distinctOf(o.events, o.dupEvery)}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		brk, err := b.adm.ListBrokers(c)
		cancel()
		if err == nil && len(brk) > 0 {
			return b, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			cl.Close()
			return nil, fmt.Errorf("kafka at %v not reachable: %v", o.brokers, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (b *bench) close() { b.cl.Close() }

func (b *bench) want(s string) bool { return slices.Contains(b.o.scenarios, s) }

func (b *bench) run(ctx context.Context) (*Results, error) {
	var errs []error
	fail := func(what string, err error) {
		if err != nil {
			logf("%s: %v", what, err)
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			b.res.Errors = append(b.res.Errors, what+": "+err.Error())
		}
	}
	if b.want("ceiling") || b.want("e2e") || b.want("profile") {
		if err := b.prepareMain(ctx); err != nil {
			fail("produce", err)
			return b.res, errors.Join(errs...)
		}
	}
	if b.want("ceiling") {
		fail("ceiling", b.ceiling(ctx))
	}
	if b.want("e2e") {
	e2e:
		for i, lat := range b.o.latencies {
			for run := 1; run <= max(1, b.o.e2eRuns); run++ {
				fail(fmt.Sprintf("e2e latency %s run %d", lat, run), b.e2e(ctx, lat, run, i == 0 && run == 1))
				if ctx.Err() != nil {
					break e2e
				}
			}
		}
	}
	if b.want("latency") && ctx.Err() == nil {
		fail("latency", b.latency(ctx))
	}
	if b.want("backlog") && ctx.Err() == nil {
		fail("backlog", b.backlog(ctx))
	}
	if b.want("profile") && ctx.Err() == nil {
		fail("profile", b.profile(ctx))
	}
	return b.res, errors.Join(errs...)
}

func (b *bench) topicName(what string) string { return "bench-" + b.runID + "-" + what }

// prepareMain creates the ceiling/e2e topic and produces its records once; every consumer
// of it is a new group, and every relay a new Redis key prefix, so they all see a fresh
// backlog of the same records.
func (b *bench) prepareMain(ctx context.Context) error {
	b.mainTopic = b.topicName("main")
	if err := createTopic(ctx, b.adm, b.mainTopic, int32(b.o.partitions)); err != nil {
		return err
	}
	if err := createTopic(ctx, b.adm, b.mainTopic+".dlq", 1); err != nil {
		return err
	}
	logf("producing %d records (%d distinct events) to %s", b.o.events, b.res.Distinct, b.mainTopic)
	took, err := produceBacklog(ctx, b.cl, b.mainTopic, b.runID, b.o.events, b.o.dupEvery)
	if err != nil {
		return err
	}
	b.res.Produce = &ProduceRes{Records: b.o.events, Seconds: round3(took.Seconds()), PerSecond: float64(int(float64(b.o.events) / took.Seconds()))}
	logf("produced in %s (%.0f records/s)", took.Round(time.Millisecond), float64(b.o.events)/took.Seconds())
	ends, total, err := endOffsets(ctx, b.adm, b.mainTopic)
	if err != nil {
		return err
	}
	if total != int64(b.o.events) {
		return fmt.Errorf("topic holds %d records, want %d", total, b.o.events)
	}
	b.mainEnds = ends
	return nil
}

func (b *bench) pids() map[string]int {
	return map[string]int{"broker": b.o.kafkaPID, "redis": b.o.redisPID, "bench": 0}
}

// ceiling reads the main topic with a plain group consumer that does nothing else.
func (b *bench) ceiling(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.o.brokers...), kgo.ConsumerGroup(b.topicName("ceiling")),
		kgo.ConsumeTopics(b.mainTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	meter := newCPUMeter(b.pids())
	meter.Start()
	var first, last time.Time
	n, firstBatch := 0, 0
	for n < b.o.events {
		fs := cl.PollRecords(ctx, 10_000)
		if ctx.Err() != nil {
			return fmt.Errorf("read %d of %d records: %w", n, b.o.events, ctx.Err())
		}
		c := fs.NumRecords()
		if c > 0 && first.IsZero() {
			first, firstBatch = time.Now(), c
		}
		n += c
		last = time.Now()
	}
	cpu := meter.Stop()
	// From the return of the first non-empty poll: the records that poll returned were
	// fetched before it, so they are left out of the rate.
	secs := last.Sub(first).Seconds()
	rate := float64(n-firstBatch) / secs
	if n == firstBatch || secs <= 0 {
		rate = 0 // everything came in one poll: too small to measure
	}
	b.res.Ceiling = &CeilingRes{Records: n, Seconds: round3(secs), PerSecond: float64(int(rate)), CPUSeconds: cpu, LoadAvg: loadAvg()}
	logf("ceiling: %d records in %.2fs = %.0f records/s", n, secs, float64(n)/secs)
	return nil
}

// e2e runs the relay over the main topic until it has committed to the end. The first run
// (first) is the one -perf and -relay-cpuprofile record.
func (b *bench) e2e(ctx context.Context, latency time.Duration, run int, first bool) error {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	e, err := startEmu(b.o.emuMode, latency)
	if err != nil {
		return err
	}
	defer e.close()
	name := fmt.Sprintf("e2e-%dms", latency.Milliseconds())
	if run > 1 {
		name += fmt.Sprintf("-run%d", run) // a group and dedup keys of its own
	}
	group := b.topicName(name)
	set := relaySettings{Group: group, Topic: b.mainTopic, KeyPrefix: "bench:" + b.runID + ":" + name + ":", Linger: b.o.linger}
	meter := newCPUMeter(b.pids())
	meter.Start()
	r, err := b.o.startRelay(name, b.o.relayConfig(set, e.URL))
	if err != nil {
		return err
	}
	defer r.stop(30 * time.Second)
	logf("%s: relay pid %d, log %s", name, r.pid, r.logPath)

	var perfCmd *exec.Cmd
	var profileDone <-chan error
	var assigned, end time.Time
	var relayCPU, relayCPUAtAssign float64
	var hwm int64
	var machineAtAssign, machineAtEnd machineTimes
	var switchesAtAssign, switchesAtEnd int64
	var switchesErr error
	var timesAtAssign, timesAtEnd cpuTimes
	var monitorAtAssign, monitorAtEnd monitorSample
	var monitorErr error
	relayStat := "/proc/" + strconv.Itoa(r.pid) + "/stat"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("relay did not commit to the end: %w (log tail:\n%s)", ctx.Err(), r.tail(20))
		case <-tick.C:
		}
		if !r.running() {
			return fmt.Errorf("relay exited: %v (log tail:\n%s)", r.waitErr, r.tail(30))
		}
		if assigned.IsZero() {
			if assigned = r.assignedAt(); !assigned.IsZero() {
				timesAtAssign, _ = readCPUTimes(relayStat)
				relayCPUAtAssign = timesAtAssign.total()
				monitorAtAssign, monitorErr = readMonitor(r.pid)
				machineAtAssign, _ = readMachineTimes()
				switchesAtAssign, switchesErr = contextSwitches(r.pid)
				if first && b.o.perfOut != "" {
					perfCmd = startPerf(r.pid, b.o.perfOut)
				}
				if first && b.o.relayCPUProfile != "" {
					profileDone = startCPUProfile(ctx, b.o.relayTelemetry, b.o.relayCPUProfileSecs, b.o.relayCPUProfile)
				}
			}
			continue
		}
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		lag, err := groupLag(lctx, b.adm, group, b.mainTopic, b.mainEnds)
		lcancel()
		if err == nil && lag == 0 {
			end = time.Now()
			timesAtEnd, _ = readCPUTimes(relayStat)
			relayCPU = timesAtEnd.total()
			machineAtEnd, _ = readMachineTimes()
			if m, err := readMonitor(r.pid); err != nil {
				monitorErr = err
			} else {
				monitorAtEnd = m
			}
			var err error
			if switchesAtEnd, err = contextSwitches(r.pid); err != nil {
				switchesErr = err
			}
			_, hwm, _ = memStatus(r.pid)
			break
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			logf("%s: lag %d, delivered %d", name, lag, e.events())
		}
	}
	cpu := meter.Stop()
	stopPerf(perfCmd)
	if profileDone != nil {
		// The profile covers a fixed time from the first fetch; a run shorter than that is
		// profiled to its end plus the relay idling, so say so.
		if err := <-profileDone; err != nil {
			logf("relay CPU profile: %v (no profile)", err)
		} else if secs := time.Since(assigned).Seconds(); secs < float64(b.o.relayCPUProfileSecs) {
			logf("relay CPU profile written to %s; the run lasted %.1fs of its %ds", b.o.relayCPUProfile, secs, b.o.relayCPUProfileSecs)
		} else {
			logf("relay CPU profile written to %s", b.o.relayCPUProfile)
		}
	}
	cpu["relay"] = round3(relayCPU)
	secs := end.Sub(assigned).Seconds()
	inRun := timesAtEnd.minus(timesAtAssign)
	res := E2ERes{
		LatencyMS: latency.Milliseconds(), Run: run, Records: b.o.events, Distinct: b.res.Distinct,
		Delivered: e.events(), Requests: e.requests(), Non200: e.non200.Load(),
		Seconds: round3(secs), PerSecond: float64(int(float64(b.o.events) / secs)),
		DeliverSeconds: round3(time.Unix(0, e.lastAccept.Load()).Sub(assigned).Seconds()),
		JoinSeconds:    round3(assigned.Sub(r.started).Seconds()),
		RelayCPU:       round3(relayCPU), RelayCPUAtFetch: round3(relayCPUAtAssign),
		CPUPerMillion: round3((relayCPU - relayCPUAtAssign) / float64(b.o.events) * 1e6),
		PeakRSSMiB:    round1(float64(hwm) / mib), CPUSeconds: cpu, LoadAvg: loadAvg(),
		MaxInFlightReqs: 8,
		MachineIdlePct:  round1(idlePercent(machineAtAssign, machineAtEnd)),
		MachineStealPct: round1(stealPercent(machineAtAssign, machineAtEnd)),
		RelaySwitches:   switchesAtEnd - switchesAtAssign,
		RelayUserCPU:    round3(inRun.user),
		RelaySysCPU:     round3(inRun.sys),
		MonitorCPU:      round3(monitorAtEnd.cpu.minus(monitorAtAssign.cpu).total()),
		MonitorSleeps:   monitorAtEnd.sleeps - monitorAtAssign.sleeps,
	}
	if switchesErr != nil {
		res.RelaySwitches = -1
	}
	if monitorErr != nil {
		res.MonitorSleeps = -1
	}
	if b.res.Ceiling != nil && b.res.Ceiling.PerSecond > 0 {
		res.Ratio = round3(res.PerSecond / b.res.Ceiling.PerSecond)
	}
	b.res.E2E = append(b.res.E2E, res)
	logf("%s: %d records in %.2fs = %.0f/s; delivered %d (distinct %d); relay %.2f CPU-s (%.2f per million), peak RSS %.1f MiB; cpu %v",
		name, b.o.events, secs, res.PerSecond, res.Delivered, res.Distinct, relayCPU, res.CPUPerMillion, res.PeakRSSMiB, cpu)
	if err := r.stop(30 * time.Second); err != nil {
		return fmt.Errorf("relay stop: %w", err)
	}
	if res.Delivered < int64(res.Distinct) {
		return fmt.Errorf("emulator acknowledged %d events, want %d distinct", res.Delivered, res.Distinct)
	}
	return nil
}

// latency produces at a steady rate into a fresh topic while a relay consumes it, and
// measures each event's produce → acknowledgement time.
func (b *bench) latency(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	topic := b.topicName("latency")
	if err := createTopic(ctx, b.adm, topic, int32(b.o.partitions)); err != nil {
		return err
	}
	if err := createTopic(ctx, b.adm, topic+".dlq", 1); err != nil {
		return err
	}
	e, err := startEmu("full", 0)
	if err != nil {
		return err
	}
	defer e.close()
	set := relaySettings{Group: topic, Topic: topic, KeyPrefix: "bench:" + b.runID + ":latency:", Linger: b.o.linger}
	r, err := b.o.startRelay("latency", b.o.relayConfig(set, e.URL))
	if err != nil {
		return err
	}
	defer r.stop(30 * time.Second)
	for r.assignedAt().IsZero() {
		if !r.running() {
			return fmt.Errorf("relay exited: %v (log tail:\n%s)", r.waitErr, r.tail(30))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(time.Second) // let the first fetch settle on the empty topic
	enc, err := schema.NewEncoder()
	if err != nil {
		return err
	}
	const tickEvery = 10 * time.Millisecond
	perTick := max(1, b.o.latRate/int(time.Second/tickEvery))
	total := int(b.o.latDuration/tickEvery) * perTick
	logf("latency: producing %d events at %d/s for %s", total, b.o.latRate, b.o.latDuration)
	var perr atomic.Value
	now := time.Now()
	tk := time.NewTicker(tickEvery)
	seq := 0
	for seq < total {
		<-tk.C
		for range perTick {
			id := "lat-" + b.runID + "-" + strconv.Itoa(seq) + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)
			v, err := enc.AppendRaw(nil, benchEvent(id, seq, now))
			if err != nil {
				return err
			}
			b.cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(id), Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					perr.CompareAndSwap(nil, err)
				}
			})
			seq++
		}
	}
	tk.Stop()
	if err := b.cl.Flush(ctx); err != nil {
		return err
	}
	if v := perr.Load(); v != nil {
		return fmt.Errorf("produce: %w", v.(error))
	}
	deadline := time.Now().Add(60 * time.Second)
	for e.events() < int64(total) && time.Now().Before(deadline) && r.running() {
		time.Sleep(100 * time.Millisecond)
	}
	recv := e.Received()
	lat := make([]float64, 0, len(recv))
	var windows [][]float64
	for _, rc := range recv {
		i := strings.LastIndexByte(rc.EventID, '-')
		ns, err := strconv.ParseInt(rc.EventID[i+1:], 10, 64)
		if i < 0 || err != nil {
			continue
		}
		ms := float64(rc.ReceivedAt.UnixNano()-ns) / 1e6
		lat = append(lat, ms)
		w := int(time.Duration(ns-now.UnixNano()) / (5 * time.Second))
		for len(windows) <= w {
			windows = append(windows, nil)
		}
		if w >= 0 {
			windows[w] = append(windows[w], ms)
		}
	}
	slices.Sort(lat)
	var byWindow []float64
	for _, w := range windows {
		slices.Sort(w)
		byWindow = append(byWindow, pct(w, 0.99))
	}
	linger := b.o.linger
	if linger == 0 {
		linger = 200 * time.Millisecond
	}
	res := &LatencyRes{Rate: b.o.latRate, Produced: total, Delivered: len(lat), LingerMS: linger.Milliseconds(),
		P50MS: pct(lat, 0.50), P90MS: pct(lat, 0.90), P99MS: pct(lat, 0.99), LoadAvg: loadAvg(), P99ByWindow: byWindow}
	if len(lat) > 0 {
		res.MaxMS = round1(lat[len(lat)-1])
	}
	b.res.Latency = res
	logf("latency: %d/%d delivered; p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", len(lat), total, res.P50MS, res.P90MS, res.P99MS, res.MaxMS)
	if len(lat) < total {
		return fmt.Errorf("only %d of %d events acknowledged within 60s of the last produce", len(lat), total)
	}
	return r.stop(30 * time.Second)
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, int(float64(len(sorted))*p))
	return round1(sorted[i])
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// backlog lets a relay drain a large backlog into an emulator that accepts only a fraction
// of what the relay could read, sampling the relay's RSS.
func (b *bench) backlog(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	topic := b.topicName("backlog")
	if err := createTopic(ctx, b.adm, topic, int32(b.o.partitions)); err != nil {
		return err
	}
	if err := createTopic(ctx, b.adm, topic+".dlq", 1); err != nil {
		return err
	}
	n := b.o.backlogEvents
	logf("backlog: producing %d records to %s", n, topic)
	if _, err := produceBacklog(ctx, b.cl, topic, b.runID+"b", n, 0); err != nil {
		return err
	}
	ends, _, err := endOffsets(ctx, b.adm, topic)
	if err != nil {
		return err
	}
	rate := b.o.backlogAccept
	if rate <= 0 {
		rate = 5000
		if m, ok := medianE2E(b.res.E2E, 0); ok && m.PerSecond > 0 {
			rate = max(500, int(m.PerSecond/10))
		}
	}
	// One request in flight of 500 events every latency: rate = 500 / latency.
	const batch, inflight = 500, 1
	emuLat := time.Duration(float64(time.Second) * batch * inflight / float64(rate))
	e, err := startEmu(b.o.emuMode, emuLat)
	if err != nil {
		return err
	}
	defer e.close()
	set := relaySettings{Group: topic, Topic: topic, KeyPrefix: "bench:" + b.runID + ":backlog:", Linger: b.o.linger,
		MaxBatch: batch, MaxInFlightRequests: inflight}
	r, err := b.o.startRelay("backlog", b.o.relayConfig(set, e.URL))
	if err != nil {
		return err
	}
	defer r.kill()
	logf("backlog: emulator accepts ~%d events/s (latency %s, 1 request of 500 in flight); sampling relay pid %d RSS for up to %s",
		rate, emuLat.Round(time.Millisecond), r.pid, b.o.backlogMaxDur)
	var samples []float64
	start := time.Now()
	drained := false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(start) < b.o.backlogMaxDur {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if !r.running() {
			return fmt.Errorf("relay exited: %v (log tail:\n%s)", r.waitErr, r.tail(30))
		}
		rss, _, err := memStatus(r.pid)
		if err == nil {
			samples = append(samples, float64(rss)/mib)
		}
		if len(samples)%10 == 0 {
			lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
			lag, err := groupLag(lctx, b.adm, topic, topic, ends)
			lcancel()
			logf("backlog: %ds rss %.1f MiB, delivered %d, lag %d", len(samples), samples[len(samples)-1], e.events(), lag)
			if err == nil && lag == 0 {
				drained = true
				break
			}
		}
	}
	_, hwm, _ := memStatus(r.pid)
	secs := time.Since(start).Seconds()
	res := &BacklogRes{Records: n, AcceptRate: rate, EmuLatencyMS: emuLat.Milliseconds(), Seconds: round1(secs),
		Delivered: e.events(), Requests: e.requests(), Drained: drained, DeliverRate: float64(int(float64(e.events()) / secs)),
		PeakRSSMiB: round1(float64(hwm) / mib),
		Config: fmt.Sprintf("kafka settings %v (else max_in_flight 6000, max_in_flight_per_partition %d) × %d partitions, max_pending_events %d, max_batch %d, max_in_flight_requests %d; GOMEMLIMIT %q",
			b.o.relaySet, orDefault(b.o.relayMaxInFlightPerPartition, 4000), b.o.partitions, orDefault(b.o.relayMaxPending, 20000), batch, inflight, b.o.relayGOMEMLIMIT)}
	if len(samples) > 0 {
		res.RSSMinMiB, res.RSSMaxMiB, res.RSSLastMiB = round1(slices.Min(samples)), round1(slices.Max(samples)), round1(samples[len(samples)-1])
		step := max(1, len(samples)/12)
		res.SeriesEvery = float64(step)
		for i := 0; i < len(samples); i += step {
			res.Series = append(res.Series, round1(samples[i]))
		}
	}
	b.res.Backlog = res
	logf("backlog: %.0fs, delivered %d of %d, RSS min/max/last %.1f/%.1f/%.1f MiB, peak (VmHWM) %.1f MiB",
		secs, res.Delivered, n, res.RSSMinMiB, res.RSSMaxMiB, res.RSSLastMiB, res.PeakRSSMiB)
	// A graceful stop would flush up to max_pending_events at the throttled rate (the
	// processor's shutdown_timeout, then the sink's Close with another): not what this
	// scenario measures, so the relay is killed.
	r.kill()
	return nil
}

// startCPUProfile fetches a CPU profile of secs seconds from the relay's pprof endpoint at
// addr into the file out, and reports on the channel when done.
func startCPUProfile(ctx context.Context, addr string, secs int, out string) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
			}
			return os.WriteFile(out, body, 0o644)
		}()
	}()
	logf("relay CPU profile: %ds from %s into %s", secs, addr, out)
	return done
}

// freeLoopbackAddr returns a loopback address with a port free at the time of the call.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startPerf records the relay with `perf record -g` (nil when perf is unavailable).
func startPerf(pid int, out string) *exec.Cmd {
	cmd := exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		logf("perf: %v (no profile)", err)
		return nil
	}
	logf("perf recording pid %d into %s", pid, out)
	return cmd
}

func stopPerf(cmd *exec.Cmd) {
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	var once sync.Once
	go func() { _ = cmd.Wait(); once.Do(func() { close(done) }) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
