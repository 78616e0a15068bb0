package sink

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewBatcherValidates(t *testing.T) {
	s := senderFunc(acceptAll)
	tests := []struct {
		name string
		opt  BatcherOption
		ok   bool
	}{
		{"defaults", func(*batcherConfig) {}, true},
		{"max batch at Meta's limit", WithMaxBatch(1000), true},
		{"max batch above Meta's limit", WithMaxBatch(1001), false},
		{"zero max batch", WithMaxBatch(0), false},
		{"negative linger", WithLinger(-time.Second), false},
		{"zero in flight", WithMaxInFlight(0), false},
		{"negative pending", WithMaxPending(-1), false},
		{"retry max below min", WithRetry(time.Second, time.Millisecond, time.Minute), false},
		{"partner agent", WithPartnerAgent("capirelay-1.0"), true},
		{"partner agent too long", WithPartnerAgent("capirelay-partner-agent"), false},
		{"partner agent one letter", WithPartnerAgent("a-1.0"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBatcher(s, tt.opt)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if b != nil {
				b.Close(context.Background())
			}
		})
	}
}

func TestBatcherBatching(t *testing.T) {
	type sub struct {
		pixel string
		n     int
	}
	tests := []struct {
		name     string
		maxBatch int
		subs     []sub
		// want is the sizes of the requests per pixel, in order.
		want map[string][]int
	}{
		{
			name:     "split at MaxBatch",
			maxBatch: 500,
			subs:     []sub{{"1", 1250}},
			want:     map[string][]int{"1": {500, 500, 250}},
		},
		{
			name:     "exactly MaxBatch",
			maxBatch: 3,
			subs:     []sub{{"1", 3}},
			want:     map[string][]int{"1": {3}},
		},
		{
			name:     "grouped per pixel",
			maxBatch: 4,
			subs:     []sub{{"1", 1}, {"2", 1}, {"1", 1}, {"3", 2}, {"2", 1}, {"1", 3}},
			want:     map[string][]int{"1": {4, 1}, "2": {2}, "3": {2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCAPIFake(t)
			// A long linger: only size and Flush may cut a batch.
			b := newTestBatcher(t, f.client(), WithMaxBatch(tt.maxBatch), WithLinger(time.Hour), WithMaxInFlight(1))
			rec := newOutcomeRecorder()
			var ids []string
			seq := 0
			for _, s := range tt.subs {
				for range s.n {
					id := fmt.Sprintf("%s-%d", s.pixel, seq)
					seq++
					ids = append(ids, id)
					submit(t, b, rec, s.pixel, id, "Purchase")
				}
			}
			if err := b.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := map[string][]int{}
			for _, r := range f.requests() {
				got[r.Pixel] = append(got[r.Pixel], len(r.Body.Data))
				for _, e := range r.Body.Data {
					if want := r.Pixel + "-"; e.EventID[:len(want)] != want {
						t.Errorf("event %s sent to pixel %s", e.EventID, r.Pixel)
					}
				}
			}
			for p, sizes := range tt.want {
				if !slices.Equal(got[p], sizes) {
					t.Errorf("pixel %s: request sizes %v, want %v", p, got[p], sizes)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("requests for pixels %v, want %v", got, tt.want)
			}
			for _, id := range ids {
				if o, _ := rec.get(id); !o.Delivered || o.Attempts != 1 {
					t.Errorf("%s: outcome %+v", id, o)
				}
			}
		})
	}
}

func TestBatcherLingerFlush(t *testing.T) {
	f := newCAPIFake(t)
	b := newTestBatcher(t, f.client(), WithMaxBatch(500), WithLinger(20*time.Millisecond))
	rec := newOutcomeRecorder()
	for _, id := range []string{"a", "b", "c"} {
		submit(t, b, rec, "7", id, "Lead")
	}
	// No Flush: only the linger can send these.
	rec.wait(t, "a", "b", "c")
	reqs := f.requests()
	if len(reqs) != 1 || len(reqs[0].Body.Data) != 3 {
		t.Fatalf("requests %d (first with %d events), want 1 with 3", len(reqs), len(reqs[0].Body.Data))
	}
}

func TestBatcherRequestFields(t *testing.T) {
	f := newCAPIFake(t)
	b := newTestBatcher(t, f.client(), WithPartnerAgent("capirelay"), WithTestEventCode(func(p string) string {
		if p == "1" {
			return "TEST123"
		}
		return ""
	}))
	rec := newOutcomeRecorder()
	submit(t, b, rec, "1", "x", "Lead")
	submit(t, b, rec, "2", "y", "Lead")
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.requests() {
		want := map[string]string{"1": "TEST123", "2": ""}[r.Pixel]
		if r.Body.PartnerAgent != "capirelay" || r.Body.TestEventCode != want || r.Body.AccessToken != "tok-"+r.Pixel {
			t.Errorf("pixel %s: partner_agent %q test_event_code %q token %q", r.Pixel, r.Body.PartnerAgent, r.Body.TestEventCode, r.Body.AccessToken)
		}
	}
}

func TestBatcherMaxInFlight(t *testing.T) {
	const limit = 3
	f := newCAPIFake(t)
	gate := make(chan struct{})
	var once sync.Once
	f.hold = func(*capiRequest) {
		f.mu.Lock()
		full := f.inFlight >= limit
		f.mu.Unlock()
		if full {
			once.Do(func() { close(gate) })
		}
		// Hold the first requests until the limit is reached, so that a batcher ignoring
		// it would pile more on top.
		select {
		case <-gate:
		case <-time.After(5 * time.Second):
		}
		time.Sleep(5 * time.Millisecond)
	}
	b := newTestBatcher(t, f.client(), WithMaxInFlight(limit), WithMaxBatch(1), WithLinger(0))
	rec := newOutcomeRecorder()
	var ids []string
	for i := range 20 {
		id := fmt.Sprint(i)
		ids = append(ids, id)
		submit(t, b, rec, fmt.Sprint(i%7), id, "Lead")
	}
	rec.wait(t, ids...)
	f.mu.Lock()
	got := f.maxInFlight
	f.mu.Unlock()
	if got != limit {
		t.Errorf("max concurrent requests %d, want %d", got, limit)
	}
}

func TestBatcherRetryThenSuccess(t *testing.T) {
	f := newCAPIFake(t)
	f.answer = func(r *capiRequest, n int) capiAnswer {
		switch n {
		case 1:
			return capiAnswer{status: 500, body: "<html>internal</html>"}
		case 2:
			return graphAnswer(503, 2, 0, true, "Service temporarily unavailable")
		case 3:
			return okAnswer(len(r.Body.Data) - 1) // a count mismatch is retried too
		}
		return okAnswer(len(r.Body.Data))
	}
	b := newTestBatcher(t, f.client(), WithLinger(time.Hour), WithRetry(time.Millisecond, 5*time.Millisecond, 10*time.Second))
	rec := newOutcomeRecorder()
	submit(t, b, rec, "1", "a", "Lead")
	submit(t, b, rec, "1", "b", "Lead")
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		o, _ := rec.get(id)
		if !o.Delivered || o.Attempts != 4 || o.FBTraceID != "trace-ok" {
			t.Errorf("%s: %+v, want delivered after 4 attempts", id, o)
		}
	}
	st := b.Stats()
	if st.Requests != 4 || st.Retries != 3 || st.RequestErrors.Transient != 3 || st.EventsDelivered != 2 || st.EventsSent != 8 {
		t.Errorf("stats %+v", st)
	}
}

func TestBatcherTerminalFailures(t *testing.T) {
	tests := []struct {
		name       string
		answer     capiAnswer
		class      Class
		reason     string
		code, sub  int
		minAttempt int
		maxAttempt int
	}{
		{"retries exhausted", graphAnswer(500, 1, 0, false, "An unknown error occurred"), ClassTransient, ReasonRetriesExhausted, 1, 0, 2, 1 << 20},
		{"expired token", graphAnswer(400, 190, 463, false, "Session has expired"), ClassAuth, ReasonAuth, 190, 463, 1, 1},
		{"permission", graphAnswer(403, 200, 0, false, "Permissions error"), ClassPermission, ReasonPermission, 200, 0, 1, 1},
		{"no such pixel", graphAnswer(400, 100, 33, false, "Object does not exist"), ClassPermission, ReasonPermission, 100, 33, 1, 1},
		{"not found", capiAnswer{status: 404, body: "nope"}, ClassInvalid, ReasonInvalid, 0, 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCAPIFake(t)
			f.answer = func(*capiRequest, int) capiAnswer { return tt.answer }
			// A long linger so that the four events make one batch, cut by Flush.
			b := newTestBatcher(t, f.client(), WithLinger(time.Hour), WithRetry(time.Millisecond, 4*time.Millisecond, 50*time.Millisecond))
			rec := newOutcomeRecorder()
			for i := range 4 {
				submit(t, b, rec, "1", fmt.Sprint(i), "Lead")
			}
			if err := b.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			for id, o := range rec.all() {
				if o.Delivered || o.Class != tt.class || o.Reason != tt.reason || o.Code != tt.code || o.Subcode != tt.sub {
					t.Errorf("%s: %+v", id, o)
				}
				if o.Attempts < tt.minAttempt || o.Attempts > tt.maxAttempt {
					t.Errorf("%s: %d attempts, want [%d, %d]", id, o.Attempts, tt.minAttempt, tt.maxAttempt)
				}
				if tt.code != 0 && (o.FBTraceID == "" || o.Message == "") {
					t.Errorf("%s: outcome lacks Meta's message or trace id: %+v", id, o)
				}
			}
			if n := len(f.requests()); n < tt.minAttempt || n > tt.maxAttempt {
				t.Errorf("%d requests, want [%d, %d]", n, tt.minAttempt, tt.maxAttempt)
			}
			if got := b.Stats().EventsFailed.Get(tt.class); got != 4 {
				t.Errorf("EventsFailed[%v] = %d, want 4", tt.class, got)
			}
		})
	}
}

// TestBatcherRateLimitIsPerPixel checks that a throttled pixel waits out Retry-After while
// another pixel's events flow.
func TestBatcherRateLimitIsPerPixel(t *testing.T) {
	f := newCAPIFake(t)
	throttled := make(chan struct{})
	f.answer = func(r *capiRequest, n int) capiAnswer {
		if r.Pixel == "A" && n == 1 {
			close(throttled)
			return withHeader(graphAnswer(400, 17, 2446079, false, "User request limit reached"), "Retry-After", "2")
		}
		return okAnswer(len(r.Body.Data))
	}
	// One slot: a batcher that waited out the throttle while holding it would block B.
	b := newTestBatcher(t, f.client(), WithMaxInFlight(1), WithLinger(time.Millisecond), WithRetry(time.Millisecond, 5*time.Millisecond, time.Minute))
	rec := newOutcomeRecorder()
	submit(t, b, rec, "A", "a1", "Lead")
	submit(t, b, rec, "A", "a2", "Lead")
	<-throttled
	submit(t, b, rec, "B", "b1", "Lead")
	rec.wait(t, "b1")
	if _, ok := rec.get("a1"); ok {
		t.Fatal("A settled before B although A is throttled for 2s")
	}
	rec.wait(t, "a1", "a2")

	var aTimes []time.Time
	var bTime time.Time
	for _, r := range f.requests() {
		switch r.Pixel {
		case "A":
			aTimes = append(aTimes, r.At)
		case "B":
			bTime = r.At
		}
	}
	if len(aTimes) != 2 {
		t.Fatalf("%d requests for A, want 2", len(aTimes))
	}
	// B must not wait for A's throttle: it goes out while A's Retry-After runs.
	if bTime.Sub(aTimes[0]) >= 2*time.Second || !bTime.Before(aTimes[1]) {
		t.Errorf("B sent %v after A's throttle started, after A's retry at +%v", bTime.Sub(aTimes[0]), aTimes[1].Sub(aTimes[0]))
	}
	if wait := aTimes[1].Sub(aTimes[0]); wait < 2*time.Second {
		t.Errorf("A retried after %v, before Retry-After's 2s", wait)
	}
	if o, _ := rec.get("a1"); !o.Delivered || o.Attempts != 2 {
		t.Errorf("a1: %+v", o)
	}
	if st := b.Stats(); st.RequestErrors.RateLimit != 1 {
		t.Errorf("RequestErrors.RateLimit = %d, want 1", st.RequestErrors.RateLimit)
	}
}

func TestBatcherBisection(t *testing.T) {
	tests := []struct {
		name string
		n    int
		bad  []int
	}{
		{"two bad among 100", 100, []int{17, 63}},
		{"one bad among 2", 2, []int{1}},
		{"single bad", 1, []int{0}},
		{"all bad", 8, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"adjacent bad", 100, []int{50, 51}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCAPIFake(t)
			b := newTestBatcher(t, f.client(), WithMaxBatch(100), WithLinger(time.Hour))
			rec := newOutcomeRecorder()
			for i := range tt.n {
				name := "Purchase"
				if slices.Contains(tt.bad, i) {
					name = "BAD"
				}
				submit(t, b, rec, "1", fmt.Sprint(i), name)
			}
			if err := b.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			for i := range tt.n {
				id := fmt.Sprint(i)
				o, _ := rec.get(id)
				if slices.Contains(tt.bad, i) {
					if o.Delivered || o.Class != ClassInvalid || o.Reason != ReasonInvalid || o.Code != 100 || o.Subcode != 2804050 || o.FBTraceID == "" {
						t.Errorf("bad event %s: %+v", id, o)
					}
					continue
				}
				if !o.Delivered {
					t.Errorf("good event %s: %+v", id, o)
				}
				if c := f.deliveredCount(id); c != 1 {
					t.Errorf("good event %s delivered %d times", id, c)
				}
			}
			// Each bad event costs at most two requests per level of the halving tree.
			levels := 0
			for n := tt.n; n > 1; n = (n + 1) / 2 {
				levels++
			}
			if n, limit := len(f.requests()), 1+2*len(tt.bad)*levels; n > limit {
				t.Errorf("%d requests, want at most %d", n, limit)
			}
			if st := b.Stats(); tt.n > 1 && st.Bisections == 0 {
				t.Error("no bisection counted")
			}
		})
	}
}

func TestBatcherFlushWaitsForAll(t *testing.T) {
	release := make(chan struct{})
	var sent atomic.Int64
	s := senderFunc(func(ctx context.Context, p string, req *Request) (*Response, error) {
		<-release
		sent.Add(int64(len(req.Data)))
		return &Response{EventsReceived: len(req.Data)}, nil
	})
	b := newTestBatcher(t, s, WithMaxBatch(10), WithLinger(time.Hour))
	rec := newOutcomeRecorder()
	for i := range 35 {
		submit(t, b, rec, fmt.Sprint(i%3), fmt.Sprint(i), "Lead")
	}
	flushed := make(chan error, 1)
	go func() { flushed <- b.Flush(context.Background()) }()
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned %v while requests were held", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if n := len(rec.all()); n != 35 {
		t.Fatalf("Flush returned with %d of 35 outcomes", n)
	}
	if st := b.Stats(); st.Pending != 0 || st.InFlight != 0 {
		t.Errorf("after Flush: pending %d, in flight %d", st.Pending, st.InFlight)
	}
}

func TestBatcherBackpressure(t *testing.T) {
	release := make(chan struct{})
	s := senderFunc(func(ctx context.Context, p string, req *Request) (*Response, error) {
		<-release
		return &Response{EventsReceived: len(req.Data)}, nil
	})
	b := newTestBatcher(t, s, WithMaxPending(2), WithLinger(0))
	rec := newOutcomeRecorder()
	submit(t, b, rec, "1", "a", "Lead")
	submit(t, b, rec, "1", "b", "Lead")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := b.Submit(ctx, Item{PixelID: "1", Event: &Event{EventID: "c"}, Done: rec.done("c")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit beyond MaxPending = %v, want DeadlineExceeded", err)
	}
	close(release)
	submit(t, b, rec, "1", "c", "Lead") // blocks until a and b are settled
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "a", "b", "c")
}

func TestBatcherCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	b, err := NewBatcher(senderFunc(acceptAll), WithMaxBatch(7), WithLinger(time.Millisecond), WithMaxInFlight(4))
	if err != nil {
		t.Fatal(err)
	}
	rec := newOutcomeRecorder()
	var ids []string
	for i := range 100 {
		id := fmt.Sprint(i)
		ids = append(ids, id)
		submit(t, b, rec, fmt.Sprint(i%5), id, "Lead")
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.all()); n != 100 {
		t.Errorf("Close returned with %d of 100 outcomes", n)
	}
	checkNoGoroutineLeak(t, before)

	err = b.Submit(context.Background(), Item{PixelID: "1", Event: &Event{EventID: "late"}, Done: func(Outcome) {}})
	if !errors.Is(err, ErrBatcherClosed) {
		t.Errorf("Submit after Close = %v, want ErrBatcherClosed", err)
	}
	if err := b.Close(context.Background()); !errors.Is(err, ErrBatcherClosed) {
		t.Errorf("second Close = %v, want ErrBatcherClosed", err)
	}
}

// TestBatcherCloseGivesUp checks that a Close whose context ends settles everything as
// shutdown: a request in flight, a batch in backoff and a throttled pixel's batch.
func TestBatcherCloseGivesUp(t *testing.T) {
	before := runtime.NumGoroutine()
	var calls atomic.Int64
	s := senderFunc(func(ctx context.Context, p string, req *Request) (*Response, error) {
		calls.Add(1)
		switch p {
		case "hang":
			<-ctx.Done()
			return nil, &APIError{PixelID: p, Class: ClassTransient, Err: ctx.Err()}
		case "flaky":
			return nil, &APIError{PixelID: p, Class: ClassTransient, HTTPStatus: 500}
		case "throttled":
			return nil, &APIError{PixelID: p, Class: ClassRateLimit, RetryAfter: time.Hour, Graph: GraphError{Code: 4}}
		}
		return &Response{EventsReceived: len(req.Data)}, nil
	})
	b, err := NewBatcher(s, WithLinger(0), WithRetry(time.Hour, time.Hour, 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rec := newOutcomeRecorder()
	for _, p := range []string{"hang", "flaky", "throttled", "ok"} {
		submit(t, b, rec, p, p, "Lead")
	}
	for calls.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	for _, p := range []string{"hang", "flaky", "throttled"} {
		if o, ok := rec.get(p); !ok || o.Delivered || o.Reason != ReasonShutdown {
			t.Errorf("%s: %+v (settled %v), want shutdown", p, o, ok)
		}
	}
	if o, _ := rec.get("ok"); !o.Delivered {
		t.Errorf("ok: %+v", o)
	}
	checkNoGoroutineLeak(t, before)
}

func TestBatcherRejectsBadItems(t *testing.T) {
	b := newTestBatcher(t, senderFunc(acceptAll))
	if err := b.Submit(context.Background(), Item{Done: func(Outcome) {}}); !errors.Is(err, ErrNoPixel) {
		t.Errorf("no pixel: %v", err)
	}
	if err := b.Submit(context.Background(), Item{PixelID: "1", Event: &Event{}}); err == nil {
		t.Error("no Done: accepted")
	}
	if err := b.Submit(context.Background(), Item{PixelID: "1", Done: func(Outcome) {}}); err == nil {
		t.Error("no Event: accepted")
	}
}

// TestBatcherEncodeErrorIsBisected checks that an event the client cannot encode is isolated
// like one Meta rejects.
func TestBatcherEncodeErrorIsBisected(t *testing.T) {
	f := newCAPIFake(t)
	b := newTestBatcher(t, f.client(), WithLinger(time.Hour))
	rec := newOutcomeRecorder()
	nan := 0.0
	nan /= nan
	for i := range 10 {
		e := Event{EventName: "Purchase", EventID: fmt.Sprint(i)}
		if i == 4 {
			e.Custom = &CustomData{Value: &nan}
		}
		if err := b.Submit(context.Background(), Item{PixelID: "1", Event: &e, Done: rec.done(e.EventID)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, o := range rec.all() {
		if o.Delivered == (id == "4") {
			t.Errorf("%s: %+v", id, o)
		}
	}
	if o, _ := rec.get("4"); !errors.Is(o.Err, ErrEncodeRequest) {
		t.Errorf("4: err %v, want ErrEncodeRequest", o.Err)
	}
}

// TestBatcherBackpressureSendsLingering checks that when partly filled buffers of many
// pixels fill MaxPending, Submit sends them instead of waiting out their linger.
func TestBatcherBackpressureSendsLingering(t *testing.T) {
	b := newTestBatcher(t, senderFunc(acceptAll), WithMaxPending(10), WithLinger(time.Hour))
	rec := newOutcomeRecorder()
	for i := range 10 {
		submit(t, b, rec, fmt.Sprint(i), fmt.Sprint(i), "Lead")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Submit(ctx, Item{PixelID: "0", Event: &Event{EventID: "x"}, Done: rec.done("x")}); err != nil {
		t.Fatalf("Submit at MaxPending with only lingering buffers: %v", err)
	}
	if n := len(rec.all()); n == 0 {
		t.Error("no buffered event was sent to make room")
	}
}

// TestBatcherThrottledBacklogDoesNotBlockOtherPixels: a throttled pixel's events fill
// MaxPending, yet Submit still takes another pixel's events, which are delivered while the
// throttle runs.
func TestBatcherThrottledBacklogDoesNotBlockOtherPixels(t *testing.T) {
	f := newCAPIFake(t)
	throttled := make(chan struct{})
	var once sync.Once
	var aRequests atomic.Int32
	f.answer = func(r *capiRequest, n int) capiAnswer {
		if r.Pixel == "A" && aRequests.Add(1) <= 2 {
			once.Do(func() { close(throttled) })
			return withHeader(graphAnswer(400, 17, 2446079, false, "User request limit reached"), "Retry-After", "2")
		}
		return okAnswer(len(r.Body.Data))
	}
	b := newTestBatcher(t, f.client(), WithMaxBatch(5), WithMaxPending(10), WithMaxInFlight(1), WithLinger(time.Millisecond),
		WithRetry(time.Millisecond, 5*time.Millisecond, time.Minute))
	rec := newOutcomeRecorder()
	for i := 0; i < 10; i++ {
		submit(t, b, rec, "A", fmt.Sprintf("a%d", i), "Lead")
	}
	<-throttled
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("b%d", i)
		if err := b.Submit(ctx, Item{PixelID: "B", Event: &Event{EventName: "Lead", EventID: id}, Done: rec.done(id)}); err != nil {
			t.Fatalf("Submit for pixel B blocked behind throttled pixel A's backlog: %v", err)
		}
	}
	rec.wait(t, "b0", "b9")
	for i := 0; i < 10; i++ {
		if o, ok := rec.get(fmt.Sprintf("a%d", i)); ok {
			t.Fatalf("a%d settled during A's throttle: %+v", i, o)
		}
	}
	rec.wait(t, "a0", "a9") // delivered once the throttle is over
}

// TestBatcherBacksOffTogetherDuringAnOutage: when requests get no answer at all, every batch
// waits on one endpoint-wide backoff instead of retrying on its own schedule.
func TestBatcherBacksOffTogetherDuringAnOutage(t *testing.T) {
	var calls, duringOutage atomic.Int64
	outageEnds := time.Now().Add(time.Second)
	s := senderFunc(func(ctx context.Context, pixel string, req *Request) (*Response, error) {
		calls.Add(1)
		if time.Now().Before(outageEnds) {
			duringOutage.Add(1)
			return nil, &APIError{PixelID: pixel, Class: ClassTransient, Err: errors.New("connection refused")}
		}
		return &Response{EventsReceived: len(req.Data)}, nil
	})
	b := newTestBatcher(t, s, WithMaxInFlight(4), WithLinger(time.Millisecond), WithRetry(10*time.Millisecond, 200*time.Millisecond, time.Minute))
	rec := newOutcomeRecorder()
	var ids []string
	for p := 0; p < 20; p++ {
		id := fmt.Sprintf("e%d", p)
		ids = append(ids, id)
		submit(t, b, rec, fmt.Sprintf("pixel-%d", p), id, "Lead")
	}
	rec.wait(t, ids...)
	for _, id := range ids {
		if o, _ := rec.get(id); !o.Delivered {
			t.Fatalf("%s: %+v", id, o)
		}
	}
	// 20 batches each retrying on their own 10–200 ms backoff would make about 200
	// requests in the second of outage; one shared backoff makes a few dozen.
	if n := duringOutage.Load(); n > 80 {
		t.Errorf("%d requests hit the endpoint during a 1 s outage; want the batches to back off together", n)
	}
	t.Logf("%d requests during the outage, %d in all", duringOutage.Load(), calls.Load())
}

// TestBatcherFillsRequestsWhenSlotsAreScarce: with one slot and a slow endpoint, batches cut
// by their linger queue up; each request must carry as many of the pixel's waiting events as
// it can, not one small batch each.
func TestBatcherFillsRequestsWhenSlotsAreScarce(t *testing.T) {
	var requests atomic.Int64
	s := senderFunc(func(ctx context.Context, pixel string, req *Request) (*Response, error) {
		requests.Add(1)
		time.Sleep(30 * time.Millisecond)
		return &Response{EventsReceived: len(req.Data)}, nil
	})
	b := newTestBatcher(t, s, WithMaxBatch(50), WithMaxInFlight(1), WithLinger(time.Millisecond), WithMaxPending(1000))
	rec := newOutcomeRecorder()
	var ids []string
	for i := 0; i < 400; i++ {
		id := fmt.Sprintf("e%d", i)
		ids = append(ids, id)
		submit(t, b, rec, "A", id, "Lead")
		if i%10 == 9 {
			time.Sleep(2 * time.Millisecond) // a linger expires now and then
		}
	}
	rec.wait(t, ids...)
	// 400 events of 50 per request: 8 full requests, plus the first ones sent before the
	// backlog built up.
	if n := requests.Load(); n > 12 {
		t.Errorf("%d requests for 400 events with MaxBatch 50: batches were not filled", n)
	}
}

// TestBatcherLeavesEventsAloneAfterDone: once an item's Done has run, the batcher does not
// read its event again, so the caller may reuse the event's memory then (the processor
// recycles it). Done here overwrites each event with another id, as a reuse would; through
// the bisection's resends, no request may carry one.
func TestBatcherLeavesEventsAloneAfterDone(t *testing.T) {
	f := newCAPIFake(t)
	b := newTestBatcher(t, f.client(), WithMaxBatch(100), WithLinger(time.Hour))
	rec := newOutcomeRecorder()
	for i := range 100 {
		id, name := fmt.Sprint(i), "Purchase"
		if i == 17 || i == 63 {
			name = "BAD"
		}
		ev := &Event{EventName: name, EventID: id, EventTime: 1700000000, ActionSource: "website"}
		done := rec.done(id)
		it := Item{PixelID: "1", Event: ev, Done: func(o Outcome) {
			done(o)
			*ev = Event{EventName: "Purchase", EventID: "reused-" + id, EventTime: 1700000000, ActionSource: "website"}
		}}
		if err := b.Submit(context.Background(), it); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.delivered {
		if strings.HasPrefix(id, "reused-") {
			t.Errorf("event %s was sent after its Done", id)
		}
	}
	if len(f.delivered) != 98 {
		t.Errorf("%d events delivered, want 98", len(f.delivered))
	}
}
