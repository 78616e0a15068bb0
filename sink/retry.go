package sink

import (
	"math/rand/v2"
	"time"
)

// Defaults of the retry policy.
const (
	DefaultRetryMin        = 100 * time.Millisecond
	DefaultRetryMax        = 30 * time.Second
	DefaultRetryMaxElapsed = 2 * time.Minute

	// rateLimitElapsedFactor caps how long a batch may wait out throttles, as a multiple of
	// the retry budget. Throttle waits are not charged to the budget itself (see
	// retryPolicy), but a pixel that stays throttled must not hold its events, and with them
	// the batcher's MaxPending shared by every pixel, forever.
	rateLimitElapsedFactor = 5
)

// retryPolicy is exponential backoff with full jitter, bounded by an elapsed-time budget.
//
// Transient failures (and unknown ones) are charged in full: a batch gives up once the time
// since its first attempt, minus the time it spent waiting out throttles, would exceed
// maxElapsed. Rate-limit waits are not charged, because being throttled says nothing about
// whether the request can succeed; they are bounded instead by rateLimitElapsedFactor ×
// maxElapsed of wall-clock time since the first attempt.
type retryPolicy struct {
	min, max, maxElapsed time.Duration
}

// backoff returns the wait before attempt n+1 after n failed attempts (n >= 1): a uniformly
// random duration in [0, min(max, min·2^(n-1))]. Full jitter spreads the retries of many
// batches that failed together (a Graph outage) instead of synchronising them.
func (p retryPolicy) backoff(n int) time.Duration {
	ceil := p.step(n)
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1)
}

// step is the exponential ceiling after n failures: min·2^(n-1), capped at max.
func (p retryPolicy) step(n int) time.Duration {
	ceil := p.min
	for i := 1; i < n && ceil < p.max; i++ {
		ceil *= 2
	}
	return min(ceil, p.max)
}

// endpointBackoff is the endpoint-wide wait after n consecutive unanswered requests: half the
// exponential step plus jitter over the other half, so that it never drops to zero while the
// endpoint is down, yet requests from many relays do not return in lockstep.
func (p retryPolicy) endpointBackoff(n int) time.Duration {
	ceil := p.step(n)
	if ceil <= 0 {
		return 0
	}
	return ceil/2 + rand.N(ceil/2+1)
}

// retryState is the retry bookkeeping of one batch.
type retryState struct {
	attempts  int           // Send calls made for this batch and its ancestors
	first     time.Time     // start of this batch's first attempt; zero before it
	throttled time.Duration // time spent waiting out rate limits since first
}

// next decides what follows a failed attempt of class c at now, hint being the wait Meta's
// headers ask for. It returns the wait before the next attempt, or false when the budget is
// spent and the batch should fail.
func (p retryPolicy) next(s *retryState, c Class, hint time.Duration, now time.Time) (wait time.Duration, ok bool) {
	elapsed := now.Sub(s.first)
	wait = p.backoff(s.attempts)
	if c == ClassRateLimit {
		wait = max(wait, hint)
		if elapsed+wait > rateLimitElapsedFactor*p.maxElapsed {
			return 0, false
		}
		s.throttled += wait
		return wait, true
	}
	wait = max(wait, hint) // a 503 may carry Retry-After too
	if elapsed-s.throttled+wait > p.maxElapsed {
		return 0, false
	}
	return wait, true
}
