package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestScaleOutAndIn: one relay starts; two more join mid-stream; then those two leave
// gracefully (SIGTERM) mid-stream. Every event is delivered exactly once and no partition
// stalls: each one's committed offset reaches its end.
func TestScaleOutAndIn(t *testing.T) {
	requireServices(t)
	scaleOutAndIn(t, "classic", size("EVENTS", 40_000), 2500)
}

// TestScaleOutAndInKIP848 is the same with kafka.group_protocol: consumer (KIP-848, the
// broker assigns partitions): the group must really be a consumer-protocol group (described
// by ConsumerGroupDescribe), every event delivered once, lag back to 0.
func TestScaleOutAndInKIP848(t *testing.T) {
	requireServices(t)
	// Slower than the classic run: KIP-848 members learn their assignment on a heartbeat
	// (5 s by default), so the joiners settle later and the feed must still be running then.
	scaleOutAndIn(t, "consumer", size("EVENTS", 20_000), 1000)
}

func scaleOutAndIn(t *testing.T, protocol string, n, perSecond int) {
	seeds := brokers()
	cl, adm := newKafka(t, seeds)
	topic, group := uniq(t, "web"), uniq(t, "group")
	createTopic(t, adm, topic, 12)
	createTopic(t, adm, topic+".dlq", 1)
	emu := startEmulator(t)
	cfg := baseConfig(t, seeds, redisAddr(), group, emu, rawTopic(topic)).set("kafka.group_protocol", protocol)
	cfgPath := cfg.write(t, "relay")

	recs, keys := goodBatch(t, topic, topic, n)
	start := time.Now()
	first := startRelay(t, "relay-1", cfgPath)
	f := startFeeder(t, cl, recs, perSecond)

	waitProgress(t, emu, n/5, first)
	joiners := []*relayProc{startRelay(t, "relay-2", cfgPath), startRelay(t, "relay-3", cfgPath)}
	t.Logf("scale out at %d events delivered (%s)", emu.Stats().EventsReceived, time.Since(start).Round(time.Millisecond))
	// The joiners must really take partitions before they leave again.
	waitFor(t, 2*time.Minute, "the joiners to be assigned partitions", func() (bool, string) {
		assertAlive(t, append(joiners, first)...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stable, withParts, err := groupAssignment(ctx, adm, group, protocol)
		if err != nil {
			return false, err.Error()
		}
		return stable && withParts == 3, fmt.Sprintf("%d members with partitions", withParts)
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

	assertExactlyOnce(t, "scale out and in ("+protocol+" protocol)", checkDelivery(emu, keys), emu)
	// Commits rejected by the group coordinator (KIP-848 before Kafka 4.3: STALE_MEMBER_EPOCH)
	// are retried by the relay, so they cost time, not correctness; report them.
	for _, r := range append(joiners, first) {
		if c := grepLog(r, "STALE_MEMBER_EPOCH"); c > 0 {
			t.Logf("relay %s logged STALE_MEMBER_EPOCH %d times", r.name, c)
		}
	}
	first.stop(t, 30*time.Second)
}

// groupAssignment describes group with the API of its protocol (DescribeGroups for classic,
// ConsumerGroupDescribe for KIP-848: a classic group is not found by the latter, so a relay
// that silently fell back to classic fails) and says whether it is stable and how many
// members own partitions.
func groupAssignment(ctx context.Context, adm *kadm.Client, group, protocol string) (stable bool, withParts int, err error) {
	if protocol == "consumer" {
		groups, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			return false, 0, err
		}
		g := groups[group]
		if g.Err != nil {
			return false, 0, fmt.Errorf("ConsumerGroupDescribe %s: %w", group, g.Err)
		}
		for _, m := range g.Members {
			if m.MemberType == 0 {
				return false, 0, fmt.Errorf("member %s joined with the classic protocol", m.MemberID)
			}
			// Settled: what the member owns is what the broker wants it to own.
			if len(m.Assignment.Sorted()) > 0 && fmt.Sprint(m.Assignment.Sorted()) == fmt.Sprint(m.TargetAssignment.Sorted()) {
				withParts++
			}
		}
		return strings.EqualFold(g.State, "Stable"), withParts, nil
	}
	groups, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return false, 0, err
	}
	g := groups[group]
	for _, m := range g.Members {
		if ca, ok := m.Assigned.AsConsumer(); ok && len(ca.Topics) > 0 && len(ca.Topics[0].Partitions) > 0 {
			withParts++
		}
	}
	return g.State == "Stable", withParts, nil
}
