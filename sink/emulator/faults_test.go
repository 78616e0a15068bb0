package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/sink"
)

// fakeClock is a fault clock tests move by hand, so windows are exact and instant.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func seed(v uint64) *uint64 { return &v }

func one() map[string]any { return map[string]any{"data": []any{validEvent()}} }

// serve runs s on a real listener, for what a ResponseRecorder cannot show: hijacked
// connections and clients that give up.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

// graphClient is the sink's real client pointed at the emulator, so that the tests check
// what the relay makes of each fault, not only what the emulator sends.
func graphClient(base string, timeout time.Duration) *sink.GraphClient {
	return sink.NewGraphClient(
		sink.WithBaseURL(base),
		sink.WithTokenSource(func(p string) (string, bool) {
			if p == otherPixel {
				return otherToken, true
			}
			return token, true
		}),
		sink.WithHTTPClient(&http.Client{Timeout: timeout}),
	)
}

// sinkRequest is one valid event as the sink encodes it.
func sinkRequest(id string) *sink.Request {
	v := 12.5
	return &sink.Request{Data: []*sink.Event{{
		EventName: "Purchase", EventTime: testNow.Unix() - 60, EventID: id, ActionSource: "website",
		EventSourceURL: "https://shop.example.com/thanks",
		User:           sink.UserData{Em: []string{sha}, ClientUserAgent: "Mozilla/5.0"},
		Custom:         &sink.CustomData{Value: &v, Currency: "USD"},
	}}}
}

func TestFaultConfigValidate(t *testing.T) {
	bad := []struct {
		name string
		c    FaultConfig
		want string
	}{
		{"rate above 1", FaultConfig{Transient: 1.5}, "transient rate 1.5 outside [0, 1]"},
		{"negative rate", FaultConfig{Auth: -0.1}, "auth rate"},
		{"rates sum above 1", FaultConfig{Transient: 0.6, RateLimit: 0.6}, "add up to"},
		{"negative latency", FaultConfig{Latency: Duration(-time.Second)}, "latency -1s is negative"},
		{"p50 alone", FaultConfig{LatencyP50: Duration(time.Millisecond)}, "go together"},
		{"p99 below p50", FaultConfig{LatencyP50: Duration(time.Second), LatencyP99: Duration(time.Millisecond)}, "below latency_p50"},
		{"two distributions", FaultConfig{Latency: 1, LatencyP50: 1, LatencyP99: 2}, "choose one"},
		{"negative burst", FaultConfig{RateLimitNext: -1}, "rate_limit_next -1"},
		{"outage_at alone", FaultConfig{OutageAt: Duration(time.Second)}, "outage_at needs outage_for"},
		{"outage mode", FaultConfig{OutageMode: "fire"}, `outage_mode "fire"`},
		{"pixel", FaultConfig{Pixels: []string{"abc"}}, `pixel "abc"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
			if err := New().SetFaults(tt.c); err == nil {
				t.Fatal("SetFaults accepted an invalid configuration")
			}
		})
	}
	good := FaultConfig{Transient: 0.5, RateLimit: 0.25, Timeout: 0.25, Latency: Duration(time.Millisecond),
		Jitter: Duration(time.Millisecond), OutageAt: 1, OutageFor: 1, OutageMode: OutageUnavailable, Pixels: []string{pixel}}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
}

func TestWithFaultsPanicsOnInvalid(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "transient rate") {
			t.Fatalf("recover() = %v, want a panic naming the problem", r)
		}
	}()
	New(WithFaults(FaultConfig{Transient: 2}))
}

// Each error class answers what Meta would, stores nothing, is counted, and lands in the
// class the sink's classifier gives it.
func TestInjectedErrors(t *testing.T) {
	tests := []struct {
		kind   FaultKind
		cfg    FaultConfig
		codes  map[int]int // code → HTTP status, every variant
		sub    int
		class  sink.Class
		header string
	}{
		{FaultTransient, FaultConfig{Transient: 1}, map[int]int{1: 500, 2: 500}, 0, sink.ClassTransient, ""},
		{FaultRateLimit, FaultConfig{RateLimit: 1}, map[int]int{17: 400, 80004: 429}, SubcodeThrottled, sink.ClassRateLimit, "Retry-After"},
		{FaultAuth, FaultConfig{Auth: 1}, map[int]int{190: 400}, SubcodeExpiredToken, sink.ClassAuth, "WWW-Authenticate"},
		{FaultPermission, FaultConfig{Permission: 1}, map[int]int{10: 400, 200: 403}, 0, sink.ClassPermission, ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			tt.cfg.Seed = seed(3)
			s := newServer(WithFaults(tt.cfg))
			seen := map[int]bool{}
			const n = 16
			for range n {
				rec := httptest.NewRecorder()
				b, _ := json.Marshal(one())
				req := httptest.NewRequest(http.MethodPost, eventsPath(pixel, token), bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				s.ServeHTTP(rec, req)
				var body sink.ErrorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatalf("body is not a Graph error: %v: %s", err, rec.Body)
				}
				g := body.Error
				status, ok := tt.codes[g.Code]
				if !ok || rec.Code != status || g.Subcode != tt.sub || g.Message == "" || g.FBTraceID == "" {
					t.Fatalf("answer %d %s, want one of %v with subcode %d", rec.Code, rec.Body, tt.codes, tt.sub)
				}
				if got := sink.Classify(rec.Code, &g); got != tt.class {
					t.Fatalf("sink classifies %d %s as %v, want %v", rec.Code, rec.Body, got, tt.class)
				}
				if tt.header != "" && rec.Header().Get(tt.header) == "" {
					t.Fatalf("header %s missing: %v", tt.header, rec.Header())
				}
				seen[g.Code] = true
			}
			if len(seen) != len(tt.codes) {
				t.Errorf("codes seen %v, want every one of %v", seen, tt.codes)
			}
			st := s.Stats()
			if len(s.Received()) != 0 || st.Accepted != 0 || st.EventsReceived != 0 {
				t.Fatalf("a faulted request stored events: %+v", st)
			}
			if st.Faults[string(tt.kind)] != n || st.Requests != n {
				t.Fatalf("stats %+v, want %d %s faults", st, n, tt.kind)
			}
		})
	}
}

// The throttle headers agree with RetryAfter, and the sink's client reads the wait they mean.
func TestRateLimitHeadersAndClientWait(t *testing.T) {
	for _, tt := range []struct {
		retryAfter          time.Duration
		header, regain, app string
	}{
		{2 * time.Second, "2", `"estimated_time_to_regain_access":0`, `"call_count":99`},
		{1500 * time.Millisecond, "2", `"estimated_time_to_regain_access":0`, `"call_count":99`},
		{3 * time.Minute, "180", `"estimated_time_to_regain_access":3`, `"call_count":100`},
	} {
		s := newServer(WithFaults(FaultConfig{RateLimit: 1, RetryAfter: Duration(tt.retryAfter)}))
		rec := httptest.NewRecorder()
		b, _ := json.Marshal(one())
		req := httptest.NewRequest(http.MethodPost, eventsPath(pixel, token), bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(rec, req)
		h := rec.Header()
		if h.Get("Retry-After") != tt.header || !strings.Contains(h.Get("X-Business-Use-Case-Usage"), tt.regain) ||
			!strings.Contains(h.Get("X-Business-Use-Case-Usage"), `"`+pixel+`"`) || !strings.Contains(h.Get("X-App-Usage"), tt.app) {
			t.Fatalf("retry_after %v: headers %v", tt.retryAfter, h)
		}

		_, err := graphClient(serve(t, s), 5*time.Second).Send(context.Background(), pixel, sinkRequest("o-1"))
		ae, ok := errors.AsType[*sink.APIError](err)
		if !ok || ae.Class != sink.ClassRateLimit {
			t.Fatalf("client error %v, want a rate limit", err)
		}
		want := time.Duration(max(1, (tt.retryAfter+time.Second-1)/time.Second)) * time.Second
		if ae.RetryAfter != want {
			t.Fatalf("retry_after %v: client waits %v, want %v", tt.retryAfter, ae.RetryAfter, want)
		}
	}
}

// statuses sends n requests alternating between the target pixel and, when interleave is set,
// the other pixel, and returns the target's statuses.
func statuses(t *testing.T, s *Server, n int, interleave bool) []int {
	t.Helper()
	var out []int
	for range n {
		out = append(out, postJSON(t, s, eventsPath(pixel, token), one()).status)
		if interleave {
			if r := postJSON(t, s, eventsPath(otherPixel, otherToken), one()); r.status != http.StatusOK {
				t.Fatalf("untargeted pixel got %d: %s", r.status, r.raw)
			}
		}
	}
	return out
}

func TestFaultsRepeatWithSeed(t *testing.T) {
	cfg := FaultConfig{Transient: 0.3, Permission: 0.2, Pixels: []string{pixel}}
	run := func(sd uint64, interleave bool) []int {
		return statuses(t, newServer(WithFaultSeed(sd), WithFaults(cfg)), 40, interleave)
	}
	a := run(7, false)
	if b := run(7, false); !slices.Equal(a, b) {
		t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
	}
	// Requests to an untargeted pixel draw nothing, so they cannot shift the target's faults.
	if b := run(7, true); !slices.Equal(a, b) {
		t.Fatalf("other pixels' traffic changed the target's faults:\n%v\n%v", a, b)
	}
	if b := run(8, false); slices.Equal(a, b) {
		t.Fatalf("seeds 7 and 8 gave the same faults: %v", a)
	}
	faults := 0
	for _, st := range a {
		if st != http.StatusOK {
			faults++
		}
	}
	if faults < 8 || faults > 32 {
		t.Fatalf("%d faults in 40 requests at rate 0.5", faults)
	}
	// FaultConfig.Seed reseeds as the configuration is applied, the admin API's way.
	s := newServer()
	c := cfg
	c.Seed = seed(7)
	if err := s.SetFaults(c); err != nil {
		t.Fatal(err)
	}
	if b := statuses(t, s, 40, false); !slices.Equal(a, b) {
		t.Fatalf("FaultConfig.Seed 7 differs from WithFaultSeed(7):\n%v\n%v", a, b)
	}
}

func TestFaultRatesAreHonoured(t *testing.T) {
	inj := newInjector()
	inj.set(FaultConfig{Transient: 0.1, RateLimit: 0.2, Auth: 0.05, Timeout: 0.15, Seed: seed(1)})
	counts := map[FaultKind]int{}
	const n = 20000
	for range n {
		counts[inj.decide(pixel).kind]++
	}
	for kind, rate := range map[FaultKind]float64{
		FaultTransient: 0.1, FaultRateLimit: 0.2, FaultAuth: 0.05, FaultTimeout: 0.15,
		FaultPermission: 0, FaultTimeoutAfterAccept: 0, "": 0.5,
	} {
		got := float64(counts[kind]) / n
		if got < rate-0.015 || got > rate+0.015 {
			t.Errorf("%q: rate %.3f, want %.3f", kind, got, rate)
		}
	}
}

func TestLatencyDistributions(t *testing.T) {
	inj := newInjector()
	inj.set(FaultConfig{Latency: Duration(20 * time.Millisecond), Jitter: Duration(30 * time.Millisecond)})
	distinct := map[time.Duration]bool{}
	for range 500 {
		p := inj.decide(pixel)
		if p.latency < 20*time.Millisecond || p.latency >= 50*time.Millisecond || p.kind != "" {
			t.Fatalf("plan %+v outside 20ms + [0, 30ms)", p)
		}
		distinct[p.latency] = true
	}
	if len(distinct) < 100 {
		t.Fatalf("jitter produced only %d distinct latencies", len(distinct))
	}

	inj.set(FaultConfig{LatencyP50: Duration(100 * time.Millisecond), LatencyP99: Duration(time.Second)})
	var ds []time.Duration
	for range 20000 {
		ds = append(ds, inj.decide(pixel).latency)
	}
	slices.Sort(ds)
	p50, p99 := ds[len(ds)/2], ds[len(ds)*99/100]
	if p50 < 90*time.Millisecond || p50 > 110*time.Millisecond || p99 < 800*time.Millisecond || p99 > 1250*time.Millisecond {
		t.Fatalf("lognormal p50 %v p99 %v, want about 100ms and 1s", p50, p99)
	}
	if ds[len(ds)-1] > 10*time.Second {
		t.Fatalf("lognormal draw %v above the 10×p99 cap", ds[len(ds)-1])
	}
}

func TestLatencyDelaysAndHonoursCancellation(t *testing.T) {
	s := newServer(WithFaults(FaultConfig{Latency: Duration(80 * time.Millisecond)}))
	start := time.Now()
	if r := postJSON(t, s, eventsPath(pixel, token), one()); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("answered after %v, want ≥ 80ms", d)
	}

	if err := s.SetFaults(FaultConfig{Latency: Duration(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := graphClient(serve(t, s), 0).Send(ctx, pixel, sinkRequest("o-2"))
	if !errors.Is(err, context.DeadlineExceeded) || sink.ClassOf(err) != sink.ClassTransient {
		t.Fatalf("Send = %v, want a transient deadline error", err)
	}
	// The handler must notice the client left rather than sleep out its minute.
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Abandoned != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("handler still sleeping after the client left: %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if time.Since(start) > 5*time.Second || len(s.Received()) != 2-1 {
		t.Fatalf("received %d events, want only the first request's", len(s.Received()))
	}
}

func TestTimeoutStoresNothing(t *testing.T) {
	s := newServer(WithFaults(FaultConfig{Timeout: 1, TimeoutHold: Duration(time.Minute)}))
	start := time.Now()
	_, err := graphClient(serve(t, s), 100*time.Millisecond).Send(context.Background(), pixel, sinkRequest("o-1"))
	if err == nil || sink.ClassOf(err) != sink.ClassTransient || time.Since(start) > 10*time.Second {
		t.Fatalf("Send = %v after %v, want the client's timeout", err, time.Since(start))
	}
	if st := s.Stats(); len(s.Received()) != 0 || st.Faults[string(FaultTimeout)] != 1 {
		t.Fatalf("timeout stored events or was not counted: %+v", st)
	}

	// A patient client gets the gateway's 504 once the hold is over.
	if err := s.SetFaults(FaultConfig{Timeout: 1, TimeoutHold: Duration(30 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	r := postJSON(t, s, eventsPath(pixel, token), one())
	if r.status != http.StatusGatewayTimeout || r.err.Error.Code != CodeService || !r.err.Error.IsTransient {
		t.Fatalf("after the hold: %d %s, want 504 code 2 transient", r.status, r.raw)
	}
	if len(s.Received()) != 0 {
		t.Fatal("timeout stored events")
	}
}

// timeout_after_accept stores the events and then never answers: a retry duplicates them,
// which is the window the relay's dedup must cover.
func TestTimeoutAfterAcceptStoresThenStalls(t *testing.T) {
	s := newServer(WithFaults(FaultConfig{TimeoutAfterAccept: 1, TimeoutHold: Duration(time.Minute)}))
	c := graphClient(serve(t, s), 150*time.Millisecond)
	_, err := c.Send(context.Background(), pixel, sinkRequest("order-9"))
	if err == nil || sink.ClassOf(err) != sink.ClassTransient {
		t.Fatalf("Send = %v, want the client's timeout", err)
	}
	if got := s.Received(); len(got) != 1 || got[0].EventID != "order-9" {
		t.Fatalf("received %+v, want order-9 stored before the stall", got)
	}
	s.ClearFaults()
	if _, err := c.Send(context.Background(), pixel, sinkRequest("order-9")); err != nil {
		t.Fatalf("retry: %v", err)
	}
	st := s.Stats()
	if got := s.Received(); len(got) != 2 || got[1].EventID != "order-9" {
		t.Fatalf("after the retry received %d events, want the duplicate too", len(got))
	}
	if st.Faults[string(FaultTimeoutAfterAccept)] != 1 || st.Accepted != 2 || st.EventsReceived != 2 {
		t.Fatalf("stats %+v", st)
	}

	// An invalid request is rejected at once, not held.
	if err := s.SetFaults(FaultConfig{TimeoutAfterAccept: 1, TimeoutHold: Duration(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	bad := validEvent()
	delete(bad, "action_source")
	done := make(chan result, 1)
	go func() { done <- postJSON(t, s, eventsPath(pixel, token), map[string]any{"data": []any{bad}}) }()
	select {
	case r := <-done:
		wantError(t, r, CodeInvalidParameter, SubcodeMissingSource)
	case <-time.After(10 * time.Second):
		t.Fatal("an invalid request was held")
	}
}

func TestRateLimitBurstNextN(t *testing.T) {
	s := newServer(WithFaults(FaultConfig{RateLimitNext: 3, RetryAfter: Duration(time.Second)}))
	got := statuses(t, s, 5, false)
	for i, st := range got {
		if limited := st != http.StatusOK; limited != (i < 3) {
			t.Fatalf("statuses %v, want the first 3 rate limited", got)
		}
	}
	fs := s.FaultStatus()
	if fs.RateLimitRemaining != 0 || fs.Injected[FaultRateLimit] != 3 || len(s.Received()) != 2 {
		t.Fatalf("state %+v, received %d", fs, len(s.Received()))
	}
}

func TestRateLimitWindow(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	s := newServer(WithFaultClock(clock.Now), WithFaults(FaultConfig{RateLimitFor: Duration(10 * time.Second)}))
	if r := postJSON(t, s, eventsPath(pixel, token), one()); r.err.Error.Code != CodeUserRateLimit && r.err.Error.Code != CodeAdsManagementThrottle {
		t.Fatalf("inside the window: %d %s", r.status, r.raw)
	}
	clock.Advance(9 * time.Second)
	if r := postJSON(t, s, eventsPath(pixel, token), one()); r.status == http.StatusOK {
		t.Fatal("rate limit ended early")
	}
	clock.Advance(time.Second)
	if r := postJSON(t, s, eventsPath(pixel, token), one()); r.status != http.StatusOK {
		t.Fatalf("after the window: %d %s", r.status, r.raw)
	}
}

func TestOutage(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	s := newServer(WithFaultClock(clock.Now),
		WithFaults(FaultConfig{OutageAt: Duration(30 * time.Second), OutageFor: Duration(10 * time.Second)}))
	c := graphClient(serve(t, s), 5*time.Second)
	send := func() error {
		_, err := c.Send(context.Background(), pixel, sinkRequest("o-1"))
		return err
	}
	if err := send(); err != nil {
		t.Fatalf("before the outage: %v", err)
	}
	clock.Advance(30 * time.Second)
	err := send()
	ae, ok := errors.AsType[*sink.APIError](err)
	if !ok || ae.Class != sink.ClassTransient || ae.HTTPStatus != 0 {
		t.Fatalf("during the outage Send = %v, want a transport error (reset connection)", err)
	}
	// Even a request with a bad token: the backend is down, nobody checks it.
	r := postJSON(t, s, eventsPath(pixel, "EAAwrong"), one())
	if r.status != http.StatusServiceUnavailable || r.err.Error.Code != CodeService || !r.err.Error.IsTransient {
		t.Fatalf("outage without a hijackable connection: %d %s, want the 503 fallback", r.status, r.raw)
	}
	fs := s.FaultStatus()
	if fs.OutageFrom == nil || !fs.OutageFrom.Equal(clock.Now()) || fs.OutageUntil.Sub(*fs.OutageFrom) != 10*time.Second {
		t.Fatalf("state %+v", fs)
	}
	clock.Advance(10 * time.Second)
	if err := send(); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if st := s.Stats(); st.Faults[string(FaultOutage)] != 2 || len(s.Received()) != 2 {
		t.Fatalf("stats %+v, received %d", st, len(s.Received()))
	}

	if err := s.SetFaults(FaultConfig{OutageFor: Duration(time.Minute), OutageMode: OutageUnavailable}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(context.Background(), pixel, sinkRequest("o-2"))
	if ae, ok := errors.AsType[*sink.APIError](err); !ok || ae.HTTPStatus != http.StatusServiceUnavailable || ae.Class != sink.ClassTransient {
		t.Fatalf("503 mode: %v", err)
	}
}

// A pixel that is throttled and slow must not slow the others: faults and latency are per
// pixel, and nothing global serializes requests.
func TestPerPixelTargeting(t *testing.T) {
	s := newServer(WithFaults(FaultConfig{
		RateLimit: 1, Latency: Duration(time.Second), Pixels: []string{pixel},
	}))
	c := graphClient(serve(t, s), 10*time.Second)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			_, err := c.Send(context.Background(), pixel, sinkRequest("slow"))
			if sink.ClassOf(err) != sink.ClassRateLimit {
				t.Errorf("targeted request %d: %v, want a rate limit", i, err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // the targeted requests are now sleeping in the emulator
	start := time.Now()
	for range 5 {
		if _, err := c.Send(context.Background(), otherPixel, sinkRequest("fast")); err != nil {
			t.Fatalf("untargeted pixel: %v", err)
		}
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("5 requests to the healthy pixel took %v: the throttled one slowed it", d)
	}
	wg.Wait()
	got := s.Received()
	if len(got) != 5 || slices.ContainsFunc(got, func(r Received) bool { return r.PixelID != otherPixel }) {
		t.Fatalf("received %d events, want the 5 of the healthy pixel", len(got))
	}
	if st := s.Stats(); st.Faults[string(FaultRateLimit)] != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func admin(t *testing.T, s *Server, method, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(method, "/_emulator/faults", strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

func TestFaultsAdminEndpoint(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	s := newServer(WithFaultClock(clock.Now))
	code, body := admin(t, s, http.MethodGet, "")
	if code != http.StatusOK || !strings.Contains(body, `"config":{}`) {
		t.Fatalf("GET before any fault: %d %s", code, body)
	}

	code, body = admin(t, s, http.MethodPost, `{"rate_limit":1,"retry_after":"2s","latency":"1ms","rate_limit_next":2,
		"outage_at":"1m","outage_for":"10s","pixels":["`+pixel+`"],"seed":9}`)
	if code != http.StatusOK {
		t.Fatalf("POST: %d %s", code, body)
	}
	var st FaultState
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	want := FaultConfig{RateLimit: 1, RetryAfter: Duration(2 * time.Second), Latency: Duration(time.Millisecond),
		RateLimitNext: 2, OutageAt: Duration(time.Minute), OutageFor: Duration(10 * time.Second),
		Pixels: []string{pixel}, Seed: seed(9)}
	if got, _ := json.Marshal(st.Config); string(got) != mustJSON(t, want) {
		t.Fatalf("config read back as %s, want %s", got, mustJSON(t, want))
	}
	if st.RateLimitRemaining != 2 || st.OutageFrom == nil || !st.OutageFrom.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("state %s", body)
	}

	// The faults apply, and GET reports them.
	if r := postJSON(t, s, eventsPath(pixel, token), one()); r.status == http.StatusOK {
		t.Fatal("POSTed faults not applied")
	}
	if r := postJSON(t, s, eventsPath(otherPixel, otherToken), one()); r.status != http.StatusOK {
		t.Fatalf("untargeted pixel: %s", r.raw)
	}
	_, body = admin(t, s, http.MethodGet, "")
	if !strings.Contains(body, `"rate_limit_remaining":1`) || !strings.Contains(body, `"injected":{"rate_limit":1}`) {
		t.Fatalf("GET after one fault: %s", body)
	}

	code, body = admin(t, s, http.MethodDelete, "")
	if code != http.StatusOK || !strings.Contains(body, `"config":{}`) || strings.Contains(body, "outage_from") {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if r := postJSON(t, s, eventsPath(pixel, token), one()); r.status != http.StatusOK {
		t.Fatalf("after DELETE: %s", r.raw)
	}

	for _, tt := range []struct{ body, want string }{
		{`{"transient":2}`, "transient rate 2 outside"},
		{`{"transient":0.1,"tranzient":0.5}`, `unknown field \"tranzient\"`},
		{`{"latency":250}`, `want a string such as \"250ms\"`},
		{`{"latency":"fast"}`, `duration \"fast\"`},
		{`not json`, "decode body"},
		{`{} {}`, "more than one JSON value"},
	} {
		code, body := admin(t, s, http.MethodPost, tt.body)
		if code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
			t.Errorf("POST %s: %d %s, want 400 containing %q", tt.body, code, body, tt.want)
		}
	}
	if _, body := admin(t, s, http.MethodGet, ""); !strings.Contains(body, `"config":{}`) {
		t.Fatalf("a refused POST changed the faults: %s", body)
	}
	if code, _ := admin(t, s, http.MethodPatch, "{}"); code != http.StatusMethodNotAllowed {
		t.Fatalf("PATCH: %d", code)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTestEventsListedApart(t *testing.T) {
	s := newServer()
	for _, code := range []string{"TEST1", "", "TEST2", ""} {
		body := one()
		if code != "" {
			body["test_event_code"] = code
		}
		if r := postJSON(t, s, eventsPath(pixel, token), body); r.status != http.StatusOK {
			t.Fatal(r.raw)
		}
	}
	all := s.Received()
	if len(all) != 4 || !all[0].Test || all[1].Test || all[2].TestEventCode != "TEST2" {
		t.Fatalf("Received() = %+v, want all four, test events marked", all)
	}
	if got := s.TestEvents(""); len(got) != 2 || got[0].TestEventCode != "TEST1" || got[1].TestEventCode != "TEST2" {
		t.Fatalf("TestEvents(\"\") = %+v", got)
	}
	if got := s.TestEvents("TEST2"); len(got) != 1 || got[0].TestEventCode != "TEST2" {
		t.Fatalf("TestEvents(TEST2) = %+v", got)
	}
	for _, tt := range []struct {
		query string
		want  int
		test  bool
	}{
		{"?test=1", 2, true}, {"?test=true&test_event_code=TEST1", 1, true}, {"?test=0", 2, false},
		{"?test=1&pixel_id=" + otherPixel, 0, true},
	} {
		r := do(t, s, httptest.NewRequest(http.MethodGet, "/_emulator/events"+tt.query, nil))
		var out struct {
			Data []Received `json:"data"`
		}
		if err := json.Unmarshal([]byte(r.raw), &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Data) != tt.want || slices.ContainsFunc(out.Data, func(e Received) bool { return e.Test != tt.test }) {
			t.Fatalf("%s: %s", tt.query, r.raw)
		}
	}
	r := do(t, s, httptest.NewRequest(http.MethodGet, "/_emulator/events", nil))
	if strings.Count(r.raw, `"test":true`) != 2 || strings.Count(r.raw, `"test":false`) != 2 {
		t.Fatalf("default listing does not mark test events: %s", r.raw)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_emulator/events?test=maybe", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "want 1 or 0") {
		t.Fatalf("?test=maybe: %d %s", rec.Code, rec.Body)
	}
}

// A request an injected timeout holds must not keep Serve from shutting down.
func TestServeEndsHeldRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(WithFaults(FaultConfig{Timeout: 1, TimeoutHold: Duration(time.Hour)}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, s) }()
	sent := make(chan error, 1)
	go func() {
		_, err := graphClient("http://"+ln.Addr().String(), time.Minute).Send(context.Background(), pixel, sinkRequest("o"))
		sent <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Faults[string(FaultTimeout)] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never reached the timeout fault")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("Serve waited for the held request")
	}
	if err := <-sent; err == nil {
		t.Fatal("held request succeeded")
	}
}
