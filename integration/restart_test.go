package integration

import (
	"fmt"
	"testing"
	"time"
)

// TestBrokerRestart stops the (private) Kafka broker gracefully mid-run and starts it again
// on the same ports and data dir. The relay must reconnect and lose nothing; with Redis up,
// re-consumed records are caught by the dedup store, so duplicates are reported, not
// expected.
func TestBrokerRestart(t *testing.T) {
	requireServices(t)
	n := size("EVENTS", 20_000)
	k, addr := startPrivateKafka(t)
	seeds := []string{addr}
	cl, adm := newKafka(t, seeds)
	topic, group := uniq(t, "web"), uniq(t, "group")
	createTopic(t, adm, topic, 12)
	createTopic(t, adm, topic+".dlq", 1)
	emu := startEmulator(t)
	relay := startRelay(t, "relay", baseConfig(t, seeds, redisAddr(), group, emu, rawTopic(topic)).write(t, "relay"))

	recs, keys := goodBatch(t, topic, topic, n)
	start := time.Now()
	mon := startLagMonitor(t, adm, group, topic)
	f := startFeeder(t, cl, recs, rate(2000))
	waitProgress(t, emu, n/4, relay)
	at := emu.Stats().EventsReceived
	end := mon.fault("broker stop+start", at)
	took := k.restart()
	end()
	t.Logf("broker restarted at %d events delivered, in %s", at, took.Round(100*time.Millisecond))
	if f.finished() {
		t.Logf("note: the feeder finished before the restart; raise CAPIRELAY_IT_EVENTS for more overlap")
	}
	waitDrained(t, drainTimeout(4*time.Minute, n), adm, group, []string{topic}, f, emu, n,
		func() []*relayProc { return []*relayProc{relay} })
	t.Logf("all %d events relayed in %s", n, time.Since(start).Round(time.Millisecond))

	d := checkDelivery(emu, keys)
	dl := readAll(t, seeds, adm, topic+".dlq")
	report(t, chaosResult{Scenario: "broker restart", Produced: n}, d, emu, len(dl), mon)
	t.Logf("delivery: %s; %s", d, emu)
	if len(d.Lost) > 0 || len(d.Unexpected) > 0 {
		t.Fatalf("events lost across a broker restart: %s", d)
	}
	if len(dl) > 0 {
		t.Fatalf("%d records dead-lettered, want none", len(dl))
	}
	relay.stop(t, 30*time.Second)
}

// TestRedisRestart kills a private redis-server mid-run (SIGKILL, no persistence: it comes
// back empty) and starts it again on the same port. Block mode (the default) waits for Redis:
// nothing lost, nothing sent twice. fail_open sends unchecked while Redis is down: nothing
// lost, duplicates counted.
func TestRedisRestart(t *testing.T) {
	requireServices(t)
	for _, mode := range []struct {
		name     string
		failOpen bool
	}{{"block", false}, {"fail_open", true}} {
		t.Run(mode.name, func(t *testing.T) {
			n := size("EVENTS", 20_000)
			rd := startPrivateRedis(t)
			seeds := brokers()
			cl, adm := newKafka(t, seeds)
			topic, group := uniq(t, "web"), uniq(t, "group")
			createTopic(t, adm, topic, 12)
			createTopic(t, adm, topic+".dlq", 1)
			emu := startEmulator(t)
			cfg := baseConfig(t, seeds, rd.addr(), group, emu, rawTopic(topic)).set("redis.fail_open", mode.failOpen)
			relay := startRelay(t, "relay", cfg.write(t, "relay"))

			recs, keys := goodBatch(t, topic, topic, n)
			start := time.Now()
			mon := startLagMonitor(t, adm, group, topic)
			f := startFeeder(t, cl, recs, rate(2000))
			waitProgress(t, emu, n/4, relay)
			end := mon.fault("redis SIGKILL, empty restart", emu.Stats().EventsReceived)
			rd.kill()
			down := emu.Stats().EventsReceived
			// Keep Redis down while events keep arriving, at least 3 seconds; in fail_open
			// mode until the relay has visibly sent unchecked events (a pipeline's worth
			// beyond what was already claimed), which is what fail_open promises.
			outage := time.Now()
			waitFor(t, time.Minute, "the outage to be felt", func() (bool, string) {
				assertAlive(t, relay)
				sent := emu.Stats().EventsReceived - down
				if mode.failOpen && sent < 5000 {
					return false, fmt.Sprintf("fail_open: only %d events sent since Redis went down", sent)
				}
				return time.Since(outage) > 3*time.Second, ""
			})
			during := emu.Stats().EventsReceived - down
			rd.start()
			end()
			t.Logf("redis down for %s at %d events delivered; %d delivered meanwhile",
				time.Since(outage).Round(100*time.Millisecond), down, during)
			waitDrained(t, drainTimeout(4*time.Minute, n), adm, group, []string{topic}, f, emu, n,
				func() []*relayProc { return []*relayProc{relay} })
			t.Logf("all %d events relayed in %s", n, time.Since(start).Round(time.Millisecond))

			d := checkDelivery(emu, keys)
			dl := readAll(t, seeds, adm, topic+".dlq")
			report(t, chaosResult{Scenario: "redis restart (" + mode.name + ")", Produced: n}, d, emu, len(dl), mon)
			if !mode.failOpen {
				assertExactlyOnce(t, "redis restart, block mode", d, emu)
			} else {
				t.Logf("redis restart, fail_open: %s; %s", d, emu)
				if len(d.Lost) > 0 || len(d.Unexpected) > 0 {
					t.Fatalf("events lost across a Redis restart in fail_open mode: %s", d)
				}
				t.Logf("fail_open: %d duplicates (sent unchecked while Redis was down, or after it came back empty)", d.Duplicates)
			}
			if len(dl) > 0 {
				t.Fatalf("%d records dead-lettered, want none", len(dl))
			}
			relay.stop(t, 30*time.Second)
		})
	}
}
