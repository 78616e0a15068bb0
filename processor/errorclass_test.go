package processor_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/capirelay/capirelay/processor"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
	"github.com/capirelay/capirelay/sink/emulator"
)

// These tests drive the processor through the real Graph client and batcher against the
// emulator, which answers like Meta, faults included: every error class must end with
// nothing lost, nothing sent twice, and the partition's offsets at the end.

const (
	pixelA = "1000000000000001"
	pixelB = "1000000000000002"
	pixelC = "1000000000000003"
	pixelD = "1000000000000004" // known to the emulator, but our token is another pixel's
)

func startEmulator(t *testing.T, faults *emulator.FaultConfig) *emulator.Server {
	t.Helper()
	opts := []emulator.Option{emulator.WithPixel(pixelA, "token-a"), emulator.WithPixel(pixelB, "token-b"),
		emulator.WithPixel(pixelC, "token-c"), emulator.WithPixel(pixelD, "token-d")}
	if faults != nil {
		opts = append(opts, emulator.WithFaults(*faults))
	}
	emu := emulator.New(opts...)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	t.Setenv("TEST_EMULATOR_URL", srv.URL)
	return emu
}

func graphClient(t *testing.T, tokens map[string]string) *sink.GraphClient {
	return sink.NewGraphClient(sink.WithBaseURL(envURL(t)), sink.WithAPIVersion("v25.0"),
		sink.WithTokenSource(func(p string) (string, bool) { tok, ok := tokens[p]; return tok, ok }))
}

func envURL(t *testing.T) string {
	u := os.Getenv("TEST_EMULATOR_URL")
	if u == "" {
		t.Fatal("emulator not started")
	}
	return u
}

var goodTokens = map[string]string{pixelA: "token-a", pixelB: "token-b", pixelC: "token-c"}

// interleaved returns n events per pixel, alternating pixels, so that every pixel shares
// every partition with the others.
func interleaved(n int, pixels ...string) []schema.Event {
	var evs []schema.Event
	for i := 0; i < n; i++ {
		for _, px := range pixels {
			evs = append(evs, webEvent(i, px))
		}
	}
	return evs
}

func receivedBy(emu *emulator.Server) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, r := range emu.Received() {
		if out[r.PixelID] == nil {
			out[r.PixelID] = map[string]int{}
		}
		out[r.PixelID][r.EventName+"/"+r.EventID]++
	}
	return out
}

func assertPixelExactlyOnce(t *testing.T, got map[string]int, px string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if c := got[fmt.Sprintf("Purchase/order-%06d", i)]; c != 1 {
			t.Errorf("pixel %s event %d received %d times, want 1", px, i, c)
		}
	}
}

func TestTransientFaultsLoseNothing(t *testing.T) {
	e := newEnv(t, 3)
	emu := startEmulator(t, &emulator.FaultConfig{
		Transient:   0.3,
		Timeout:     0.05,
		TimeoutHold: emulator.Duration(200 * time.Millisecond),
		// From the start: the relay delivers 600 events well within a second, so an outage
		// that begins later may never be seen.
		OutageFor: emulator.Duration(1500 * time.Millisecond),
	})
	const n = 300
	e.produce(interleaved(n, pixelA, pixelB))
	e.startRelayWith(graphClient(t, goodTokens), []sink.BatcherOption{sink.WithRetry(10*time.Millisecond, 200*time.Millisecond, time.Minute)})
	e.waitCommitted(90 * time.Second)
	got := receivedBy(emu)
	assertPixelExactlyOnce(t, got[pixelA], pixelA, n)
	assertPixelExactlyOnce(t, got[pixelB], pixelB, n)
	if st := emu.Stats(); st.Faults["transient"] == 0 || st.Faults["outage"] == 0 {
		t.Errorf("faults not exercised: %+v", st.Faults)
	}
}

func TestAuthPermissionAndExhaustedRetriesAreDeadLetteredWithoutStalling(t *testing.T) {
	e := newEnv(t, 1) // one partition: a stuck event would hold back every other
	emu := startEmulator(t, &emulator.FaultConfig{Transient: 1, Pixels: []string{pixelC}})
	const n = 40
	e.produce(interleaved(n, pixelA, pixelB, pixelC, pixelD))
	// Pixel D's token is pixel B's: Meta answers 100/33, "does not exist or missing
	// permissions", which must not be bisected as a data error.
	tokens := map[string]string{pixelA: "revoked-token", pixelB: "token-b", pixelC: "token-c", pixelD: "token-b"}
	r := e.startRelayWith(graphClient(t, tokens), []sink.BatcherOption{sink.WithRetry(5*time.Millisecond, 20*time.Millisecond, 300*time.Millisecond)})
	e.waitCommitted(60 * time.Second)
	got := receivedBy(emu)
	assertPixelExactlyOnce(t, got[pixelB], pixelB, n)
	if len(got[pixelA])+len(got[pixelC])+len(got[pixelD]) != 0 {
		t.Errorf("events of the failing pixels reached the emulator: %d, %d, %d", len(got[pixelA]), len(got[pixelC]), len(got[pixelD]))
	}
	byReason := map[string]int{}
	for _, rec := range e.deadLetters(3 * n) {
		byReason[header(rec, processor.HeaderClass)+"/"+header(rec, processor.HeaderReason)]++
	}
	if byReason["auth/auth"] != n || byReason["transient/retries_exhausted"] != n || byReason["permission/permission"] != n {
		t.Errorf("dead letters by class/reason: %v; want %d each of auth/auth, permission/permission and transient/retries_exhausted", byReason, n)
	}
	if s := r.proc.Stats(); s.Delivered != n {
		t.Errorf("delivered %d, want %d", s.Delivered, n)
	}
}

func TestRateLimitedPixelDoesNotHoldBackOthers(t *testing.T) {
	e := newEnv(t, 1)
	emu := startEmulator(t, &emulator.FaultConfig{
		RateLimitFor: emulator.Duration(3 * time.Second),
		RetryAfter:   emulator.Duration(time.Second),
		Pixels:       []string{pixelA},
	})
	const n = 100
	e.produce(interleaved(n, pixelA, pixelB))
	r := e.startRelayWith(graphClient(t, goodTokens), []sink.BatcherOption{sink.WithMaxInFlight(1)})
	waitFor(t, 30*time.Second, "pixel B's events arrive", func() bool { return len(receivedBy(emu)[pixelB]) == n })
	if a := len(receivedBy(emu)[pixelA]); a != 0 {
		t.Fatalf("pixel A delivered %d events during its rate limit; the test cannot tell B was not held back", a)
	}
	e.waitCommitted(60 * time.Second)
	got := receivedBy(emu)
	assertPixelExactlyOnce(t, got[pixelA], pixelA, n)
	assertPixelExactlyOnce(t, got[pixelB], pixelB, n)
	if emu.Stats().Faults["rate_limit"] == 0 {
		t.Error("no rate limit was injected")
	}
	if s := r.proc.Stats(); len(s.DeadLettered) != 0 {
		t.Errorf("dead letters under a rate limit: %v", s.DeadLettered)
	}
}
