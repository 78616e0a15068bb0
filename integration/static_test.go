package integration

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// staticMember is one member of a classic group as DescribeGroups reports it.
type staticMember struct {
	MemberID   string
	Partitions []int32
}

// staticMembers maps instance id → member of group (classic protocol) and its partitions.
func staticMembers(ctx context.Context, adm *kadm.Client, group string) (string, map[string]staticMember, error) {
	groups, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return "", nil, err
	}
	g := groups[group]
	if g.Err != nil {
		return "", nil, g.Err
	}
	out := map[string]staticMember{}
	for _, m := range g.Members {
		if m.InstanceID == nil {
			return "", nil, fmt.Errorf("member %s has no instance id", m.MemberID)
		}
		sm := staticMember{MemberID: m.MemberID}
		if ca, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range ca.Topics {
				sm.Partitions = append(sm.Partitions, tp.Partitions...)
			}
		}
		slices.Sort(sm.Partitions)
		out[*m.InstanceID] = sm
	}
	return g.State, out, nil
}

// TestStaticMembership: two relays with kafka.instance_id; one is SIGKILLed and restarted
// with the same instance id well within the session timeout. The broker hands the restarted
// member its old partitions without a rebalance: the survivor keeps its member id and its
// partitions and logs no revocation, loss or new assignment; the restarted member owns
// exactly what it owned before. Nothing is lost; duplicates stay within one kill's bound
// (see TestCrashRestart).
func TestStaticMembership(t *testing.T) {
	requireServices(t)
	n := size("EVENTS", 20_000)
	const (
		partitions       = 12
		maxBatch         = 100
		inFlightRequests = 4
		perPartition     = 300
	)
	perKill := min(inFlightRequests*maxBatch+finisherBatch+finisherQueue, partitions*perPartition)

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
	pathA := cfg.set("kafka.instance_id", "static-a").write(t, "static-a")
	pathB := cfg.set("kafka.instance_id", "static-b").write(t, "static-b")
	a := startRelay(t, "static-a", pathA)
	b := startRelay(t, "static-b", pathB)

	recs, keys := goodBatch(t, topic, topic, n)
	start := time.Now()
	f := startFeeder(t, cl, recs, 2000)

	// Both members own partitions and the group is stable.
	var before map[string]staticMember
	waitFor(t, 2*time.Minute, "both static members to own partitions", func() (bool, string) {
		assertAlive(t, a, b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		state, ms, err := staticMembers(ctx, adm, group)
		if err != nil {
			return false, err.Error()
		}
		before = ms
		return state == "Stable" && len(ms) == 2 && len(ms["static-a"].Partitions) > 0 && len(ms["static-b"].Partitions) > 0,
			fmt.Sprintf("state %s, members %v", state, ms)
	})
	waitProgress(t, emu, n/4, a, b)
	t.Logf("before the kill: %v", before)

	survivorEvents := func() [3]int {
		return [3]int{grepLog(a, `"partitions assigned"`), grepLog(a, `"partitions revoked"`), grepLog(a, `"partitions lost"`)}
	}
	survivorBefore := survivorEvents()
	delivered := emu.Stats().EventsReceived
	killedAt := time.Now()
	b.kill()
	b = startRelay(t, "static-b", pathB)
	t.Logf("SIGKILL static-b at %d events delivered, restarted after %s", delivered, time.Since(killedAt).Round(time.Millisecond))

	// The restarted member is back (a new member id under the same instance id) with exactly
	// its old partitions, and the survivor did not move.
	var after map[string]staticMember
	waitFor(t, time.Minute, "static-b to rejoin with its old partitions", func() (bool, string) {
		assertAlive(t, a, b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		state, ms, err := staticMembers(ctx, adm, group)
		if err != nil {
			return false, err.Error()
		}
		after = ms
		return state == "Stable" && ms["static-b"].MemberID != before["static-b"].MemberID &&
				grepLog(b, `"partitions assigned"`) > 0,
			fmt.Sprintf("state %s, members %v", state, ms)
	})
	rejoined := time.Since(killedAt)
	t.Logf("after the restart (%s): %v", rejoined.Round(time.Millisecond), after)
	// Session timeout: franz-go's default of 45 s (the relay does not change it). Past it the
	// broker would have evicted static-b and rebalanced; the scenario would test nothing.
	if rejoined > 40*time.Second {
		t.Fatalf("static-b took %s to rejoin, too close to the 45 s session timeout for the check to mean anything", rejoined)
	}
	if !slices.Equal(after["static-b"].Partitions, before["static-b"].Partitions) {
		t.Errorf("static-b came back with partitions %v, owned %v before the kill", after["static-b"].Partitions, before["static-b"].Partitions)
	}
	if after["static-a"].MemberID != before["static-a"].MemberID || !slices.Equal(after["static-a"].Partitions, before["static-a"].Partitions) {
		t.Errorf("the survivor moved: before %+v, after %+v", before["static-a"], after["static-a"])
	}

	waitDrained(t, 4*time.Minute, adm, group, []string{topic}, f, emu, n,
		func() []*relayProc { return []*relayProc{a, b} })
	t.Logf("all %d events relayed in %s", n, time.Since(start).Round(time.Millisecond))
	if got := survivorEvents(); got != survivorBefore {
		t.Errorf("the survivor saw a rebalance: (assigned, revoked, lost) log lines went from %v to %v", survivorBefore, got)
	}
	// And the group still has exactly the same assignment at the end.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, end, err := staticMembers(ctx, adm, group); err != nil {
		t.Errorf("describe group: %v", err)
	} else if !maps.EqualFunc(end, after, func(x, y staticMember) bool {
		return x.MemberID == y.MemberID && slices.Equal(x.Partitions, y.Partitions)
	}) {
		t.Errorf("the assignment changed after the rejoin: %v, then %v", after, end)
	}

	d := checkDelivery(emu, keys)
	t.Logf("delivery: %s; duplicate bound %d; %s", d, perKill, emu)
	if len(d.Lost) > 0 || len(d.Unexpected) > 0 {
		t.Fatalf("events lost across a static member's SIGKILL: %s", d)
	}
	if d.Duplicates > perKill {
		t.Fatalf("%d duplicates exceed one kill's bound %d: %s", d.Duplicates, perKill, d)
	}
	a.stop(t, 30*time.Second)
	b.stop(t, 30*time.Second)
}
