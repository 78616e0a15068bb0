package integration

import (
	"testing"
	"time"
)

// TestThroughputSmoke: 100k events over 12 partitions, produced up front, one relay. Each
// event reaches the emulator exactly once and the committed offsets reach the log end.
func TestThroughputSmoke(t *testing.T) {
	requireServices(t)
	n := size("THROUGHPUT_EVENTS", 100_000)
	seeds := brokers()
	cl, adm := newKafka(t, seeds)
	topic, group := uniq(t, "web"), uniq(t, "group")
	createTopic(t, adm, topic, 12)
	createTopic(t, adm, topic+".dlq", 1)
	emu := startEmulator(t)

	recs, keys := goodBatch(t, topic, topic, n)
	start := time.Now()
	produceAll(t, cl, recs)
	t.Logf("produced %d records in %s", n, time.Since(start).Round(time.Millisecond))

	cfg := baseConfig(t, seeds, redisAddr(), group, emu, rawTopic(topic))
	relay := startRelay(t, "relay", cfg.write(t, "relay"))
	start = time.Now()
	waitDrained(t, 5*time.Minute, adm, group, []string{topic}, nil, emu, n,
		func() []*relayProc { return []*relayProc{relay} })
	took := time.Since(start)
	t.Logf("relayed %d events in %s (%.0f events/s, %d requests)", n, took.Round(time.Millisecond),
		float64(n)/took.Seconds(), emu.Stats().Requests)

	assertExactlyOnce(t, "throughput", checkDelivery(emu, keys), emu)
	if dl := readAll(t, seeds, adm, topic+".dlq"); len(dl) > 0 {
		t.Fatalf("%d records dead-lettered, want none", len(dl))
	}
	relay.stop(t, 30*time.Second)
}
