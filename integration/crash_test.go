package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Bounds of the relay's own pipeline, from processor/pipeline.go and processor/processor.go:
// the finisher confirms at most finisherBatch claims per Redis round trip and up to
// finisherQueue completions wait for it.
const (
	finisherBatch = 1000
	finisherQueue = 4096
)

func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("CAPIRELAY_IT_SEED"); v != "" {
		s, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("random seed %d (CAPIRELAY_IT_SEED to repeat)", s)
	return s
}

// TestCrashRestart SIGKILLs a relay at random points of a run five times, restarting it each
// time (static membership, so it gets its partitions back at once). Nothing may be lost.
// Duplicates are possible only for events Meta acknowledged whose claim was not yet
// confirmed in Redis at the kill; the test counts them and asserts the bound that the relay's
// pipeline sizes give:
//
//	per kill ≤ min(capi.max_in_flight_requests × capi.max_batch   (answered or in flight)
//	               + finisherBatch + finisherQueue,               (acknowledged, confirm pending)
//	               partitions × kafka.max_in_flight_per_partition) (records the relay holds open)
func TestCrashRestart(t *testing.T) {
	requireServices(t)
	n := size("EVENTS", 30_000)
	kills := size("KILLS", 5)
	rng := rand.New(rand.NewPCG(seed(t), 1))
	const (
		partitions       = 12
		maxBatch         = 100
		inFlightRequests = 4
		perPartition     = 300
	)
	perKill := min(inFlightRequests*maxBatch+finisherBatch+finisherQueue, partitions*perPartition)
	bound := kills * perKill

	seeds := brokers()
	cl, adm := newKafka(t, seeds)
	topic, group := uniq(t, "web"), uniq(t, "group")
	createTopic(t, adm, topic, partitions)
	createTopic(t, adm, topic+".dlq", 1)
	emu := startEmulator(t)
	cfg := baseConfig(t, seeds, redisAddr(), group, emu, rawTopic(topic)).
		set("redis.lease", "3s").
		set("capi.request_timeout", "2s").
		set("capi.max_batch", maxBatch).
		set("capi.max_in_flight_requests", inFlightRequests).
		set("kafka.max_in_flight_per_partition", perPartition)
	paths := []string{
		cfg.set("kafka.instance_id", "relay-0").write(t, "relay-0"),
		cfg.set("kafka.instance_id", "relay-1").write(t, "relay-1"),
	}
	relays := []*relayProc{startRelay(t, "relay-0", paths[0]), startRelay(t, "relay-1", paths[1])}

	// Kill points: random fractions of the run, by events delivered.
	points := make([]int, kills)
	for i := range points {
		points[i] = int(float64(n) * (0.1 + 0.75*rng.Float64()))
	}
	slices.Sort(points)
	for i := 1; i < len(points); i++ { // let each restarted relay make some progress
		points[i] = max(points[i], points[i-1]+n/25)
	}

	recs, keys := goodBatch(t, topic, topic, n)
	start := time.Now()
	mon := startLagMonitor(t, adm, group, topic)
	f := startFeeder(t, cl, recs, rate(2000))
	for i, at := range points {
		waitProgress(t, emu, at, relays...)
		victim := rng.IntN(len(relays))
		delivered := emu.Stats().EventsReceived
		end := mon.fault("SIGKILL+restart", delivered)
		relays[victim].kill()
		// A random extra moment before the restart, so restarts too land at varied points.
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		relays[victim] = startRelay(t, fmt.Sprintf("relay-%d", victim), paths[victim])
		end()
		t.Logf("kill %d: SIGKILL relay-%d at %d events delivered (%s), restarted",
			i+1, victim, delivered, time.Since(start).Round(time.Millisecond))
	}
	waitDrained(t, drainTimeout(4*time.Minute, n), adm, group, []string{topic}, f, emu, n,
		func() []*relayProc { return relays })
	t.Logf("all %d events relayed in %s with %d kills", n, time.Since(start).Round(time.Millisecond), kills)

	d := checkDelivery(emu, keys)
	dl := readAll(t, seeds, adm, topic+".dlq")
	report(t, chaosResult{Scenario: "crash (SIGKILL+restart)", Produced: n}, d, emu, len(dl), mon)
	// Requests accepted after the client went away are mostly the kills' in-flight requests,
	// already inside the bound.
	t.Logf("delivery: %s; duplicate bound %d (%d kills × %d); %s", d, bound, kills, perKill, emu)
	if len(d.Lost) > 0 || len(d.Unexpected) > 0 {
		t.Fatalf("events lost across SIGKILLs: %s", d)
	}
	if d.Duplicates > bound {
		t.Fatalf("%d duplicates exceed the documented bound %d (%d per kill): %s", d.Duplicates, bound, perKill, d)
	}
	if len(dl) > 0 {
		t.Fatalf("%d records dead-lettered, want none", len(dl))
	}
	for _, r := range relays {
		r.stop(t, 30*time.Second)
	}
}
