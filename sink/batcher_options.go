package sink

import (
	"fmt"
	"log/slog"
	"time"
	"unicode"
)

// Defaults and limits of the Batcher.
const (
	// DefaultMaxBatch is the default number of events per request. Meta accepts 1,000, but
	// one invalid event fails the whole request, so smaller batches limit the damage.
	DefaultMaxBatch = 500
	// MaxBatchLimit is Meta's limit on events per request.
	MaxBatchLimit = 1000
	// DefaultLinger is how long a partly filled batch waits for more events.
	DefaultLinger = 200 * time.Millisecond
	// DefaultMaxInFlight is the default number of concurrent requests across all pixels.
	DefaultMaxInFlight = 8
)

// A BatcherOption configures a Batcher.
type BatcherOption func(*batcherConfig)

type batcherConfig struct {
	maxBatch      int
	linger        time.Duration
	maxInFlight   int
	maxPending    int // 0: derived from maxBatch and maxInFlight
	partnerAgent  string
	testEventCode func(pixelID string) string
	retry         retryPolicy
	logger        *slog.Logger
}

func defaultBatcherConfig() batcherConfig {
	return batcherConfig{
		maxBatch:    DefaultMaxBatch,
		linger:      DefaultLinger,
		maxInFlight: DefaultMaxInFlight,
		retry:       retryPolicy{min: DefaultRetryMin, max: DefaultRetryMax, maxElapsed: DefaultRetryMaxElapsed},
	}
}

// WithMaxBatch sets the most events per request, 1 to MaxBatchLimit. The default is
// DefaultMaxBatch.
func WithMaxBatch(n int) BatcherOption { return func(c *batcherConfig) { c.maxBatch = n } }

// WithLinger sets how long the first event of a partly filled batch waits for more before
// the batch is sent anyway. 0 sends whatever is buffered as soon as possible. The default
// is DefaultLinger.
func WithLinger(d time.Duration) BatcherOption { return func(c *batcherConfig) { c.linger = d } }

// WithMaxInFlight sets the most requests in flight at once, across all pixels. A batch
// waiting for a retry does not hold a slot. The default is DefaultMaxInFlight.
func WithMaxInFlight(n int) BatcherOption { return func(c *batcherConfig) { c.maxInFlight = n } }

// WithMaxPending sets the most events accepted but not yet done (buffered, in flight or
// waiting for a retry). Submit blocks while it is reached, which is how a slow Meta slows the
// Kafka consumer down. Events of a pixel under a rate limit do not count, so that a throttled
// advertiser cannot stall the others; the caller bounds those by its own limit on records in
// flight. The default is 2 × MaxBatch × MaxInFlight.
func WithMaxPending(n int) BatcherOption { return func(c *batcherConfig) { c.maxPending = n } }

// WithPartnerAgent sets partner_agent, sent top-level in every request. Meta requires it to
// be shorter than 23 characters with at least two letters.
func WithPartnerAgent(agent string) BatcherOption {
	return func(c *batcherConfig) { c.partnerAgent = agent }
}

// WithTestEventCode sets a function that returns the test_event_code for a pixel, or "" for
// none. Events sent with a code still count in production, so it is meant for pixels being
// onboarded.
func WithTestEventCode(code func(pixelID string) string) BatcherOption {
	return func(c *batcherConfig) { c.testEventCode = code }
}

// WithRetry sets the retry policy: the backoff before the second attempt is up to min,
// doubling up to max, with full jitter, and a batch fails with ReasonRetriesExhausted once
// retrying would take it past maxElapsed since its first attempt. Waits imposed by rate
// limits are not charged to maxElapsed but are capped at 5 × maxElapsed. The defaults are
// DefaultRetryMin, DefaultRetryMax and DefaultRetryMaxElapsed.
func WithRetry(min, max, maxElapsed time.Duration) BatcherOption {
	return func(c *batcherConfig) { c.retry = retryPolicy{min: min, max: max, maxElapsed: maxElapsed} }
}

// WithLogger sets the logger for failed and retried requests. The default discards.
func WithLogger(l *slog.Logger) BatcherOption { return func(c *batcherConfig) { c.logger = l } }

func (c *batcherConfig) validate() error {
	if c.maxBatch < 1 || c.maxBatch > MaxBatchLimit {
		return fmt.Errorf("sink: MaxBatch %d out of range [1, %d]", c.maxBatch, MaxBatchLimit)
	}
	if c.linger < 0 {
		return fmt.Errorf("sink: negative Linger %v", c.linger)
	}
	if c.maxInFlight < 1 {
		return fmt.Errorf("sink: MaxInFlight %d < 1", c.maxInFlight)
	}
	if c.maxPending < 0 {
		return fmt.Errorf("sink: MaxPending %d < 0", c.maxPending)
	}
	if r := c.retry; r.min <= 0 || r.max < r.min || r.maxElapsed <= 0 {
		return fmt.Errorf("sink: retry policy needs 0 < min (%v) <= max (%v) and maxElapsed (%v) > 0", r.min, r.max, r.maxElapsed)
	}
	if a := c.partnerAgent; a != "" {
		letters := 0
		for _, r := range a {
			if unicode.IsLetter(r) {
				letters++
			}
		}
		if len(a) >= 23 || letters < 2 {
			return fmt.Errorf("sink: partner_agent %q must be shorter than 23 characters with at least two letters", a)
		}
	}
	return nil
}
