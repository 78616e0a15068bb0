package sink

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	p := retryPolicy{min: 10 * time.Millisecond, max: 80 * time.Millisecond, maxElapsed: time.Minute}
	ceilings := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, c := range ceilings {
		n := i + 1
		ceil := c * time.Millisecond
		var top time.Duration
		for range 2000 {
			d := p.backoff(n)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want in [0, %v]", n, d, ceil)
			}
			top = max(top, d)
		}
		// Full jitter: 2,000 draws reach the upper half of the range.
		if top < ceil/2 {
			t.Errorf("backoff(%d) never exceeded %v in 2000 draws (ceiling %v)", n, top, ceil)
		}
	}
	if d := p.backoff(1000); d > p.max {
		t.Errorf("backoff(1000) = %v, want <= %v", d, p.max)
	}
}

func TestRetryBudget(t *testing.T) {
	p := retryPolicy{min: time.Millisecond, max: time.Millisecond, maxElapsed: time.Minute}
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name      string
		state     retryState
		class     Class
		hint      time.Duration
		at        time.Duration // since first attempt
		wantOK    bool
		wantAtost time.Duration // the wait is at least this
	}{
		{name: "transient within budget", class: ClassTransient, at: 30 * time.Second, wantOK: true},
		{name: "transient past budget", class: ClassTransient, at: 61 * time.Second, wantOK: false},
		{name: "transient whose Retry-After overshoots", class: ClassTransient, hint: 45 * time.Second, at: 30 * time.Second, wantOK: false},
		{name: "throttle waits are not charged", state: retryState{throttled: 4 * time.Minute}, class: ClassTransient, at: 4*time.Minute + 30*time.Second, wantOK: true},
		{name: "rate limit beyond maxElapsed", class: ClassRateLimit, hint: 3 * time.Minute, at: 30 * time.Second, wantOK: true, wantAtost: 3 * time.Minute},
		{name: "rate limit beyond the cap", class: ClassRateLimit, hint: 5 * time.Minute, at: 30 * time.Second, wantOK: false},
		{name: "unknown like transient", class: ClassUnknown, at: 61 * time.Second, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.state
			s.first, s.attempts = t0, 1
			wait, ok := p.next(&s, tt.class, tt.hint, t0.Add(tt.at))
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v (wait %v)", ok, tt.wantOK, wait)
			}
			if ok && wait < tt.wantAtost {
				t.Errorf("wait %v, want at least %v", wait, tt.wantAtost)
			}
			if ok && tt.class == ClassRateLimit && s.throttled != tt.state.throttled+wait {
				t.Errorf("throttled = %v, want %v", s.throttled, tt.state.throttled+wait)
			}
		})
	}
}
