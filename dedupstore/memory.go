package dedupstore

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// expiring is a map whose entries vanish after their TTL, by the caller's clock. Expired
// entries are dropped when read, and all at once whenever the map has doubled since the last
// sweep, so memory stays bounded by about twice the live entries at O(1) amortised cost.
type expiring[K comparable] struct {
	m         map[K]expEntry
	nextSweep int
}

type expEntry struct {
	value   string
	expires time.Time
}

const minSweep = 1024

func newExpiring[K comparable]() *expiring[K] {
	return &expiring[K]{m: make(map[K]expEntry), nextSweep: minSweep}
}

func (e *expiring[K]) get(k K, now time.Time) (string, bool) {
	ent, ok := e.m[k]
	if !ok {
		return "", false
	}
	if !now.Before(ent.expires) {
		delete(e.m, k)
		return "", false
	}
	return ent.value, true
}

func (e *expiring[K]) set(k K, v string, ttl time.Duration, now time.Time) {
	e.m[k] = expEntry{value: v, expires: now.Add(ttl)}
	if len(e.m) >= e.nextSweep {
		for k, ent := range e.m {
			if !now.Before(ent.expires) {
				delete(e.m, k)
			}
		}
		e.nextSweep = max(minSweep, 2*len(e.m))
	}
}

// Memory is the Store kept in process memory, with the same semantics as Redis, for the
// embedded demo and tests. It deduplicates only within one process. Safe for concurrent use.
type Memory struct {
	cfg    config
	tokens *tokenSource

	mu sync.Mutex
	m  *expiring[Key]
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store. WithClock lets tests move time.
func NewMemory(opts ...Option) *Memory {
	cfg := newConfig(DefaultPrefix, DefaultTTL, opts)
	return &Memory{cfg: cfg, tokens: newTokenSource(cfg.owner), m: newExpiring[Key]()}
}

// Lease is the configured lease duration.
func (s *Memory) Lease() time.Duration { return s.cfg.lease }

// Claim implements Store.
func (s *Memory) Claim(ctx context.Context, keys []Key) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dedupstore: claim of %d keys not attempted: %w", len(keys), err)
	}
	results := make([]Result, len(keys))
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.clock()
	for i, k := range keys {
		v, ok := s.m.get(k, now)
		switch {
		case !ok:
			tok := s.tokens.next()
			s.m.set(k, leasePrefix+tok, s.cfg.lease, now)
			results[i] = Result{Status: Claimed, Claim: Claim{Key: k, Token: tok}}
		case v == valueSent:
			results[i].Status = Duplicate
		default:
			results[i].Status = Held
		}
	}
	return results, nil
}

// Confirm implements Store.
func (s *Memory) Confirm(ctx context.Context, claims []Claim) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dedupstore: confirm of %d claims not attempted: %w", len(claims), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.clock()
	for _, c := range claims {
		s.m.set(c.Key, valueSent, s.cfg.ttl, now)
	}
	return nil
}

// Release implements Store.
func (s *Memory) Release(ctx context.Context, claims []Claim) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dedupstore: release of %d claims not attempted: %w", len(claims), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.clock()
	for _, c := range claims {
		if v, ok := s.m.get(c.Key, now); ok && v == leasePrefix+c.Token {
			delete(s.m.m, c.Key)
		}
	}
	return nil
}

// Extend implements Store.
func (s *Memory) Extend(ctx context.Context, claims []Claim) ([]Claim, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dedupstore: extend of %d claims not attempted: %w", len(claims), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.clock()
	var lost []Claim
	for _, c := range claims {
		if v, ok := s.m.get(c.Key, now); ok && v == leasePrefix+c.Token {
			s.m.set(c.Key, v, s.cfg.lease, now)
			continue
		}
		lost = append(lost, c)
	}
	return lost, nil
}
