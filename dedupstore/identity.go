package dedupstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// IdentityMap links hashed customer identifiers (email, phone: SHA-256 hex, as Meta wants
// them) to the external_id a web event carried, so offline events that lack an external_id
// can be given one. Identifiers that are not lowercase SHA-256 hex are ignored, so raw PII
// passed by mistake never reaches storage.
type IdentityMap interface {
	// Remember links each identifier (already hashed) to externalID for the TTL.
	Remember(ctx context.Context, links []IdentityLink) error
	// Lookup returns, for each query, the external_id linked to the first of its identifiers that has one, or "".
	Lookup(ctx context.Context, queries [][]string) ([]string, error)
}

// IdentityLink says that every identifier in Identifiers belongs to ExternalID.
type IdentityLink struct {
	Identifiers []string
	ExternalID  string
}

// RedisIdentityMap is the IdentityMap backed by Redis, one key per identifier. A later
// link overwrites an earlier one and restarts its TTL. Each call is one pipelined round
// trip at most; errors follow the same block or fail-open policy as Redis. Safe for
// concurrent use.
//
// It keeps a bounded in-process cache of links (WithIdentityCache) and, sized from it, a
// compact record of the links it wrote (linkFilter), which trade some freshness for most of
// the Redis traffic, within these limits:
//
//   - Remember does not rewrite a link this process wrote less than WithIdentityRewriteAfter
//     ago (default a tenth of the TTL), so a link lives at least 90% of the TTL after it was
//     last remembered rather than the full TTL. Nor does it notice, within that time, that
//     the key vanished (eviction, a flush, a failover that lost writes) or that another
//     replica linked the identifier to another external_id meanwhile (then Redis keeps that
//     replica's link, which is as valid as ours). A Lookup that reads a different answer from
//     Redis ends the skipping for that identifier.
//   - Lookup answers from what this process read or wrote less than
//     WithIdentityLookupCacheTTL ago (default 30 s), absent links included, so a link
//     another replica writes meanwhile is seen that much later.
type RedisIdentityMap struct {
	core  redisCore
	cache *idCache // nil when off
	// links decides which links Remember need not rewrite; nil when the cache is off.
	links *linkFilter
}

// linkFilterSlotsPerCacheEntry sizes the written-links filter from the cache's capacity: a
// slot is 16 bytes against the cache's ~140 per entry, so the filter covers the identifiers
// of several times as many customers for about half the memory (2 MiB by default).
const linkFilterSlotsPerCacheEntry = 6

var _ IdentityMap = (*RedisIdentityMap)(nil)

// NewRedisIdentityMap returns an IdentityMap on client, with keys under
// DefaultIdentityPrefix and links kept for DefaultIdentityTTL unless overridden. It does no
// I/O.
func NewRedisIdentityMap(client redis.UniversalClient, opts ...Option) *RedisIdentityMap {
	cfg := newConfig(DefaultIdentityPrefix, DefaultIdentityTTL, opts)
	return &RedisIdentityMap{
		core:  newRedisCore(client, cfg),
		cache: newIDCache(cfg.idCacheSize),
		links: newLinkFilter(linkFilterSlotsPerCacheEntry * cfg.idCacheSize),
	}
}

// Stats returns the error, fail-open, invalid-identifier and cache counters.
func (m *RedisIdentityMap) Stats() Stats { return m.core.stats.snapshot() }

// Remember implements IdentityMap. In fail-open mode links Redis did not take are dropped
// and counted.
func (m *RedisIdentityMap) Remember(ctx context.Context, links []IdentityLink) error {
	// Sized once: grown by append, these were a tenth of what the relay allocated.
	n := 0
	for _, l := range links {
		n += len(l.Identifiers)
	}
	keys, values := make([]string, 0, n), make([]string, 0, n)
	var ckeys []idKey
	if m.cache != nil {
		ckeys = make([]idKey, 0, n)
	}
	invalid, skipped := 0, 0
	now := m.core.cfg.clock().UnixNano()
	window := uint32(m.core.cfg.idRewriteAfter / time.Second)
	for _, l := range links {
		if l.ExternalID == "" {
			continue
		}
		for _, id := range l.Identifiers {
			k, ok := parseIdentifier(id)
			if !ok {
				invalid++
				continue
			}
			if m.cache != nil {
				ckeys = append(ckeys, k)
			}
			keys = append(keys, id)
			values = append(values, l.ExternalID)
		}
	}
	if m.cache != nil && len(ckeys) > 0 {
		// Links written recently are not written again; keep the others, in order.
		fresh := m.links.freshAll(ckeys, values, now, window)
		n := 0
		for i := range ckeys {
			if fresh[i] {
				continue
			}
			ckeys[n], keys[n], values[n] = ckeys[i], keys[i], values[i]
			n++
		}
		skipped = len(ckeys) - n
		ckeys, keys, values = ckeys[:n], keys[:n], values[:n]
	}
	for i, id := range keys {
		keys[i] = m.core.cfg.prefix + id
	}
	m.countInvalid(ctx, "remember", invalid)
	m.core.stats.idWritesSkipped.Add(uint64(skipped))
	if len(keys) == 0 {
		return nil
	}
	ttl := m.core.cfg.ttl
	failed, err := m.core.run(ctx, "identity remember", len(keys), func(ctx context.Context, pending []int) ([]int, error) {
		return m.core.setKeys(ctx, pending, keys, func(i int) *string { return &values[i] }, false, ttl)
	})
	if err != nil {
		return err
	}
	m.core.stats.failOpenSkips.Add(uint64(len(failed)))
	if m.cache != nil {
		// Entries are cached in batch order, so when an identifier appears twice the later
		// link, the one Redis kept, wins. The time is from before the writes: the TTL Redis
		// gave them started no earlier.
		skip := indexSet(len(ckeys), failed)
		for i, k := range ckeys {
			if !skip[i] {
				m.cache.put(k, idEntry{value: values[i], at: now, written: true})
				m.links.written(k, values[i], now)
			}
		}
	}
	return nil
}

// Lookup implements IdentityMap. In fail-open mode identifiers Redis could not read count
// as unlinked.
func (m *RedisIdentityMap) Lookup(ctx context.Context, queries [][]string) ([]string, error) {
	out := make([]string, len(queries))
	index := make(map[string]int) // identifier -> position in ids; each is read once.
	var ids []string
	var found []string
	var ckeys []idKey
	var pending []int // positions in ids that the cache could not answer
	invalid, hits := 0, 0
	now := m.core.cfg.clock().UnixNano()
	lookupTTL := m.core.cfg.idLookupTTL.Nanoseconds()
	for _, q := range queries {
		for _, id := range q {
			k, ok := parseIdentifier(id)
			if !ok {
				invalid++
				continue
			}
			if _, ok := index[id]; ok {
				continue
			}
			index[id] = len(ids)
			ids = append(ids, id)
			found = append(found, "")
			if m.cache != nil {
				ckeys = append(ckeys, k)
				if e, ok := m.cache.get(k); ok && now-e.at < lookupTTL {
					found[len(found)-1] = e.value
					hits++
					continue
				}
			}
			pending = append(pending, len(ids)-1)
		}
	}
	m.countInvalid(ctx, "lookup", invalid)
	m.core.stats.idLookupHits.Add(uint64(hits))
	if len(pending) > 0 {
		failed, err := m.core.run(ctx, "identity lookup", len(pending), func(ctx context.Context, todo []int) ([]int, error) {
			pipe := m.core.client.Pipeline()
			cmds := make([]*redis.StringCmd, len(todo))
			for j, p := range todo {
				cmds[j] = pipe.Get(ctx, m.core.cfg.prefix+ids[pending[p]])
			}
			_, _ = pipe.Exec(ctx)
			for j, p := range todo {
				if v, err := cmds[j].Result(); err == nil {
					found[pending[p]] = v
				}
			}
			return collectFailed(todo, cmds)
		})
		if err != nil {
			return nil, err
		}
		m.core.stats.failOpenSkips.Add(uint64(len(failed)))
		if m.cache != nil {
			// Absent links are cached too: offline events of customers never seen on the
			// web would otherwise read Redis every time.
			skip := indexSet(len(pending), failed)
			for p, i := range pending {
				if !skip[p] {
					m.cache.put(ckeys[i], idEntry{value: found[i], at: now})
					// Redis holds another link (or none): ours must be written again.
					m.links.contradicted(ckeys[i], found[i])
				}
			}
		}
	}
	for qi, q := range queries {
		out[qi] = firstLinked(q, func(id string) string {
			if i, ok := index[id]; ok {
				return found[i]
			}
			return ""
		})
	}
	return out, nil
}

// indexSet marks the indexes in idx among n.
func indexSet(n int, idx []int) []bool {
	set := make([]bool, n)
	for _, i := range idx {
		set[i] = true
	}
	return set
}

func (m *RedisIdentityMap) countInvalid(ctx context.Context, op string, n int) {
	if n == 0 {
		return
	}
	m.core.stats.invalidIdentifiers.Add(uint64(n))
	// The identifiers themselves are not logged: they may be raw PII.
	m.core.cfg.logger.WarnContext(ctx, "dedupstore: ignored identifiers that are not SHA-256 hex",
		"op", op, "count", n)
}

func firstLinked(ids []string, linked func(string) string) string {
	for _, id := range ids {
		if !validIdentifier(id) {
			continue
		}
		if v := linked(id); v != "" {
			return v
		}
	}
	return ""
}

// MemoryIdentityMap is the IdentityMap kept in process memory, with the same semantics as
// RedisIdentityMap. WithClock lets tests move time. Safe for concurrent use.
type MemoryIdentityMap struct {
	cfg config

	mu sync.Mutex
	m  *expiring[string]
}

var _ IdentityMap = (*MemoryIdentityMap)(nil)

// NewMemoryIdentityMap returns an empty in-memory IdentityMap.
func NewMemoryIdentityMap(opts ...Option) *MemoryIdentityMap {
	return &MemoryIdentityMap{
		cfg: newConfig(DefaultIdentityPrefix, DefaultIdentityTTL, opts),
		m:   newExpiring[string](),
	}
}

// Remember implements IdentityMap.
func (m *MemoryIdentityMap) Remember(ctx context.Context, links []IdentityLink) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dedupstore: identity remember of %d links not attempted: %w", len(links), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.clock()
	for _, l := range links {
		if l.ExternalID == "" {
			continue
		}
		for _, id := range l.Identifiers {
			if validIdentifier(id) {
				m.m.set(id, l.ExternalID, m.cfg.ttl, now)
			}
		}
	}
	return nil
}

// Lookup implements IdentityMap.
func (m *MemoryIdentityMap) Lookup(ctx context.Context, queries [][]string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dedupstore: identity lookup of %d queries not attempted: %w", len(queries), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.clock()
	out := make([]string, len(queries))
	for qi, q := range queries {
		out[qi] = firstLinked(q, func(id string) string {
			v, _ := m.m.get(id, now)
			return v
		})
	}
	return out, nil
}
