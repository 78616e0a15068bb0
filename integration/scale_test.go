package integration

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestScaleOutAndIn: one relay starts; two more join mid-stream; then those two leave
// gracefully (SIGTERM) mid-stream. Every event is delivered exactly once and no partition
// stalls: each one's committed offset reaches its end.
func TestScaleOutAndIn(t *testing.T) {
	requireServices(t)
	n := size("EVENTS", 40_000)
	seeds := brokers()
	cl, adm := newKafka(t, seeds)
	topic, group := uniq(t, "web"), uniq(t, "group")
	createTopic(t, adm, topic, 12)
	createTopic(t, adm, topic+".dlq", 1)
	emu := startEmulator(t)
	cfg := baseConfig(t, seeds, redisAddr(), group, emu, rawTopic(topic))
	cfgPath := cfg.write(t, "relay")

	recs, keys := goodBatch(t, topic, topic, n)
	start := time.Now()
	first := startRelay(t, "relay-1", cfgPath)
	f := startFeeder(t, cl, recs, 2500)

	waitProgress(t, emu, n/5, first)
	joiners := []*relayProc{startRelay(t, "relay-2", cfgPath), startRelay(t, "relay-3", cfgPath)}
	t.Logf("scale out at %d events delivered (%s)", emu.Stats().EventsReceived, time.Since(start).Round(time.Millisecond))
	// The joiners must really take partitions before they leave again.
	waitFor(t, 2*time.Minute, "the joiners to be assigned partitions", func() (bool, string) {
		assertAlive(t, append(joiners, first)...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		groups, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		g := groups[group]
		withParts := 0
		for _, m := range g.Members {
			if ca, ok := m.Assigned.AsConsumer(); ok && len(ca.Topics) > 0 && len(ca.Topics[0].Partitions) > 0 {
				withParts++
			}
		}
		return g.State == "Stable" && withParts == 3, fmt.Sprintf("state %s, %d members, %d with partitions", g.State, len(g.Members), withParts)
	})
	at := emu.Stats().EventsReceived
	waitProgress(t, emu, at+n/5, append(joiners, first)...)

	t.Logf("scale in at %d events delivered (%s)", emu.Stats().EventsReceived, time.Since(start).Round(time.Millisecond))
	for _, r := range joiners {
		r.stop(t, 60*time.Second)
	}
	if f.finished() {
		t.Logf("note: the feeder finished before scale-in; raise CAPIRELAY_IT_EVENTS for more overlap")
	}
	waitDrained(t, 4*time.Minute, adm, group, []string{topic}, f, emu, n,
		func() []*relayProc { return []*relayProc{first} })
	t.Logf("all %d events relayed in %s", n, time.Since(start).Round(time.Millisecond))

	assertExactlyOnce(t, "scale out and in", checkDelivery(emu, keys), emu)
	first.stop(t, 30*time.Second)
}
