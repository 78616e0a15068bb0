package sink

import (
	"context"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// newTestBatcher returns a Batcher that the test closes (with a generous deadline) when it
// ends, if the test did not.
func newTestBatcher(t testing.TB, s Sender, opts ...BatcherOption) *Batcher {
	t.Helper()
	b, err := NewBatcher(s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil && err != ErrBatcherClosed {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// outcomeRecorder collects Outcomes by event id and fails the test on a second Done.
type outcomeRecorder struct {
	mu      sync.Mutex
	byID    map[string]Outcome
	twice   []string
	changed chan struct{}
}

func newOutcomeRecorder() *outcomeRecorder {
	return &outcomeRecorder{byID: make(map[string]Outcome), changed: make(chan struct{}, 1)}
}

func (r *outcomeRecorder) done(id string) func(Outcome) {
	return func(o Outcome) {
		r.mu.Lock()
		if _, ok := r.byID[id]; ok {
			r.twice = append(r.twice, id)
		}
		r.byID[id] = o
		r.mu.Unlock()
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
}

func (r *outcomeRecorder) get(id string) (Outcome, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.byID[id]
	return o, ok
}

func (r *outcomeRecorder) all() map[string]Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]Outcome, len(r.byID))
	for k, v := range r.byID {
		m[k] = v
	}
	return m
}

// wait blocks until ids all have outcomes, failing the test after a generous timeout.
func (r *outcomeRecorder) wait(t testing.TB, ids ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		missing := 0
		for _, id := range ids {
			if _, ok := r.byID[id]; !ok {
				missing++
			}
		}
		twice := r.twice
		r.mu.Unlock()
		if len(twice) > 0 {
			t.Fatalf("Done called twice for %v", twice)
		}
		if missing == 0 {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("%d of %d outcomes missing", missing, len(ids))
		}
	}
}

func submit(t testing.TB, b *Batcher, rec *outcomeRecorder, pixel, id, name string) {
	t.Helper()
	it := Item{PixelID: pixel, Event: &Event{EventName: name, EventID: id, EventTime: 1700000000, ActionSource: "website"}, Done: rec.done(id)}
	if err := b.Submit(context.Background(), it); err != nil {
		t.Fatalf("Submit(%s): %v", id, err)
	}
}

// senderFunc adapts a function to Sender.
type senderFunc func(ctx context.Context, pixelID string, req *Request) (*Response, error)

func (f senderFunc) Send(ctx context.Context, pixelID string, req *Request) (*Response, error) {
	return f(ctx, pixelID, req)
}

func acceptAll(_ context.Context, _ string, req *Request) (*Response, error) {
	return &Response{EventsReceived: len(req.Data)}, nil
}

// lockedWriter serialises writes from concurrent loggers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// checkNoGoroutineLeak fails the test if the goroutine count does not return to before
// within a generous bound.
func checkNoGoroutineLeak(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
