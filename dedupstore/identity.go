package dedupstore

import (
	"context"
	"fmt"
	"sync"

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
// trip; errors follow the same block or fail-open policy as Redis. Safe for concurrent use.
type RedisIdentityMap struct {
	core redisCore
}

var _ IdentityMap = (*RedisIdentityMap)(nil)

// NewRedisIdentityMap returns an IdentityMap on client, with keys under
// DefaultIdentityPrefix and links kept for DefaultIdentityTTL unless overridden. It does no
// I/O.
func NewRedisIdentityMap(client redis.UniversalClient, opts ...Option) *RedisIdentityMap {
	return &RedisIdentityMap{core: redisCore{
		client: client,
		cfg:    newConfig(DefaultIdentityPrefix, DefaultIdentityTTL, opts),
	}}
}

// Stats returns the error, fail-open and invalid-identifier counters.
func (m *RedisIdentityMap) Stats() Stats { return m.core.stats.snapshot() }

// Remember implements IdentityMap. In fail-open mode links Redis did not take are dropped
// and counted.
func (m *RedisIdentityMap) Remember(ctx context.Context, links []IdentityLink) error {
	var keys, values []string
	invalid := 0
	for _, l := range links {
		if l.ExternalID == "" {
			continue
		}
		for _, id := range l.Identifiers {
			if !validIdentifier(id) {
				invalid++
				continue
			}
			keys = append(keys, m.core.cfg.prefix+id)
			values = append(values, l.ExternalID)
		}
	}
	m.countInvalid(ctx, "remember", invalid)
	if len(keys) == 0 {
		return nil
	}
	ttl := m.core.cfg.ttl
	failed, err := m.core.run(ctx, "identity remember", len(keys), func(ctx context.Context, pending []int) ([]int, error) {
		pipe := m.core.client.Pipeline()
		cmds := make([]*redis.StatusCmd, len(pending))
		for j, i := range pending {
			cmds[j] = pipe.Set(ctx, keys[i], values[i], ttl)
		}
		_, _ = pipe.Exec(ctx)
		return collectFailed(pending, cmds)
	})
	if err != nil {
		return err
	}
	m.core.stats.failOpenSkips.Add(uint64(len(failed)))
	return nil
}

// Lookup implements IdentityMap. In fail-open mode identifiers Redis could not read count
// as unlinked.
func (m *RedisIdentityMap) Lookup(ctx context.Context, queries [][]string) ([]string, error) {
	out := make([]string, len(queries))
	index := make(map[string]int) // identifier -> position in ids; each is read once.
	var ids []string
	invalid := 0
	for _, q := range queries {
		for _, id := range q {
			if !validIdentifier(id) {
				invalid++
				continue
			}
			if _, ok := index[id]; !ok {
				index[id] = len(ids)
				ids = append(ids, id)
			}
		}
	}
	m.countInvalid(ctx, "lookup", invalid)
	if len(ids) == 0 {
		return out, nil
	}
	found := make([]string, len(ids))
	failed, err := m.core.run(ctx, "identity lookup", len(ids), func(ctx context.Context, pending []int) ([]int, error) {
		pipe := m.core.client.Pipeline()
		cmds := make([]*redis.StringCmd, len(pending))
		for j, i := range pending {
			cmds[j] = pipe.Get(ctx, m.core.cfg.prefix+ids[i])
		}
		_, _ = pipe.Exec(ctx)
		for j, i := range pending {
			if v, err := cmds[j].Result(); err == nil {
				found[i] = v
			}
		}
		return collectFailed(pending, cmds)
	})
	if err != nil {
		return nil, err
	}
	m.core.stats.failOpenSkips.Add(uint64(len(failed)))
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
