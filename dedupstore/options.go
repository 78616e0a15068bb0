package dedupstore

import (
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Defaults. The dedup TTL matches the window in which Meta itself deduplicates by
// event_name + event_id; keeping keys longer buys nothing, shorter lets redeliveries through.
const (
	DefaultPrefix         = "capirelay:dedup:"
	DefaultIdentityPrefix = "capirelay:idmap:"
	DefaultLease          = 30 * time.Second
	DefaultTTL            = 48 * time.Hour
	DefaultIdentityTTL    = 30 * 24 * time.Hour
	DefaultBackoffMin     = 50 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second

	// DefaultIdentityCacheSize is how many identifiers a RedisIdentityMap keeps in process
	// memory for lookups: about 140 bytes each (more with long external_ids), so about 3 MB,
	// plus 2 MiB for the record of written links, which covers six times as many.
	DefaultIdentityCacheSize = 20_000
	// DefaultIdentityLookupCacheTTL is how long a RedisIdentityMap answers Lookup from what
	// it last read or wrote, rather than asking Redis. Another replica's newer link for the
	// same identifier goes unseen that long.
	DefaultIdentityLookupCacheTTL = 30 * time.Second
)

// Option configures a store or identity map. Options that do not apply to a constructor are
// ignored by it (WithLease by identity maps, WithClock by the Redis implementations, whose
// clock is the server's). Non-positive durations and empty strings keep the default.
type Option func(*config)

type config struct {
	prefix     string
	lease      time.Duration
	ttl        time.Duration
	owner      string
	failOpen   bool
	chunks     bool
	backoffMin time.Duration
	backoffMax time.Duration
	logger     *slog.Logger
	clock      func() time.Time

	idCacheSize    int
	idRewriteAfter time.Duration // 0: a tenth of ttl
	idLookupTTL    time.Duration
}

func newConfig(prefix string, ttl time.Duration, opts []Option) config {
	c := config{
		prefix:     prefix,
		lease:      DefaultLease,
		ttl:        ttl,
		backoffMin: DefaultBackoffMin,
		backoffMax: DefaultBackoffMax,
		clock:      time.Now,

		idCacheSize: DefaultIdentityCacheSize,
		idLookupTTL: DefaultIdentityLookupCacheTTL,
	}
	for _, o := range opts {
		o(&c)
	}
	if c.owner == "" {
		// The pod name in Kubernetes: tokens then say which replica holds a lease.
		if h, err := os.Hostname(); err == nil && h != "" {
			c.owner = h
		} else {
			c.owner = "capirelay"
		}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.backoffMax < c.backoffMin {
		c.backoffMax = c.backoffMin
	}
	if c.idRewriteAfter <= 0 {
		c.idRewriteAfter = c.ttl / 10
	}
	// A cached link must not outlive the one in Redis: skipping rewrites for a whole TTL
	// would let the link expire while still in use.
	c.idRewriteAfter = min(c.idRewriteAfter, c.ttl/2)
	c.idLookupTTL = min(c.idLookupTTL, c.ttl)
	return c
}

// WithPrefix sets the key prefix (default DefaultPrefix for stores, DefaultIdentityPrefix
// for identity maps). Give each deployment sharing a Redis its own prefix.
func WithPrefix(prefix string) Option {
	return func(c *config) {
		if prefix != "" {
			c.prefix = prefix
		}
	}
}

// WithLease sets how long a claim holds a key before another claim may take it (default
// DefaultLease). It must exceed the longest time a send to CAPI can take, retries included,
// or two senders can overlap; see the package doc.
func WithLease(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.lease = d
		}
	}
}

// WithTTL sets how long a confirmed key reports Duplicate (default DefaultTTL), or, for an
// identity map, how long a link lives (default DefaultIdentityTTL).
func WithTTL(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.ttl = d
		}
	}
}

// WithOwner sets the owner id written into lease tokens, for debugging who holds a key
// (default: the host name, i.e. the pod name).
func WithOwner(owner string) Option {
	return func(c *config) {
		if owner != "" {
			c.owner = owner
		}
	}
}

// WithFailOpen makes Redis errors non-blocking: keys that could not be checked are reported
// Claimed, Confirm/Release/Remember become best-effort and Lookup answers "" for what it
// could not read. Every such case is counted in Stats. It trades duplicates sent to Meta
// (which Meta deduplicates within its own window anyway) for not stalling consumption while
// Redis is down. Without it, calls retry with backoff until their context is done.
func WithFailOpen() Option {
	return func(c *config) { c.failOpen = true }
}

// WithChunkScripts makes Redis stores and identity maps on a client of one server claim,
// confirm and write links by script over chunks of keys instead of one command per key (see
// chunks.go). In BenchmarkRedisClaim500 that costs this process half the CPU per key and the
// server 20–50% more; in the end-to-end bench the relay spent about 8% less CPU per record
// and Redis a third to a half more. Choose it where the relay's cores, not Redis's, are what is
// short. Clients of a cluster or ring ignore it: a script cannot span their nodes.
func WithChunkScripts() Option {
	return func(c *config) { c.chunks = true }
}

// WithBackoff sets the bounds of the exponential, jittered delay between retries while Redis
// errors (default DefaultBackoffMin, DefaultBackoffMax).
func WithBackoff(minDelay, maxDelay time.Duration) Option {
	return func(c *config) {
		if minDelay > 0 {
			c.backoffMin = minDelay
		}
		if maxDelay > 0 {
			c.backoffMax = maxDelay
		}
	}
}

// WithLogger sets the logger for Redis errors and fail-open decisions (default
// slog.Default()). Log records never carry event ids or identifiers, only counts.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithClock sets the clock of the in-memory implementations and of RedisIdentityMap's
// in-process cache, so tests can expire leases, TTLs and cache entries without sleeping.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.clock = now
		}
	}
}

// WithIdentityCache sets how many identifiers a RedisIdentityMap keeps in process memory
// (default DefaultIdentityCacheSize); 0 or less turns the cache off, so every Remember
// writes and every Lookup reads Redis. Memory and stores ignore it.
func WithIdentityCache(entries int) Option {
	return func(c *config) { c.idCacheSize = max(entries, 0) }
}

// WithIdentityRewriteAfter sets how long a RedisIdentityMap skips rewriting a link it wrote
// itself (default a tenth of the link TTL, at most half of it). A link remembered again sooner is not sent to
// Redis, so its TTL is not restarted: a link then lives at least TTL minus this after the
// last time it was remembered, instead of the full TTL.
func WithIdentityRewriteAfter(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.idRewriteAfter = d
		}
	}
}

// WithIdentityLookupCacheTTL sets how long a RedisIdentityMap answers Lookup from a link (or
// the absence of one) it read or wrote, instead of reading Redis (default
// DefaultIdentityLookupCacheTTL, at most the link TTL).
func WithIdentityLookupCacheTTL(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.idLookupTTL = d
		}
	}
}

// Stats counts what the Redis implementations could not do as asked. All counters only
// grow; export them as counters.
type Stats struct {
	// Errors counts failed attempts: a round trip that failed as a whole counts once, one
	// with some failed commands counts once too. Retries in block mode count again.
	Errors uint64
	// Retries counts attempts after the first within one call (block mode only).
	Retries uint64
	// FailOpenClaims counts keys reported Claimed without Redis having been asked
	// successfully: each may be a duplicate sent to Meta.
	FailOpenClaims uint64
	// FailOpenSkips counts Confirm/Release entries, remembered identifiers and looked-up
	// identifiers dropped because Redis failed in fail-open mode.
	FailOpenSkips uint64
	// InvalidIdentifiers counts identity-map identifiers ignored because they were not
	// SHA-256 hex (guarding against raw PII ending up in Redis keys).
	InvalidIdentifiers uint64
	// IdentityWritesSkipped counts identifiers Remember did not write because this process
	// had written the same link recently (see WithIdentityRewriteAfter).
	IdentityWritesSkipped uint64
	// IdentityLookupCacheHits counts identifiers Lookup answered without reading Redis.
	IdentityLookupCacheHits uint64
}

type counters struct {
	errors, retries, failOpenClaims, failOpenSkips, invalidIdentifiers atomic.Uint64
	idWritesSkipped, idLookupHits                                      atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Errors:             c.errors.Load(),
		Retries:            c.retries.Load(),
		FailOpenClaims:     c.failOpenClaims.Load(),
		FailOpenSkips:      c.failOpenSkips.Load(),
		InvalidIdentifiers: c.invalidIdentifiers.Load(),

		IdentityWritesSkipped:   c.idWritesSkipped.Load(),
		IdentityLookupCacheHits: c.idLookupHits.Load(),
	}
}
