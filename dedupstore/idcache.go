package dedupstore

import (
	"strings"
	"sync"
	"time"
)

// idCache is RedisIdentityMap's in-process memory of links, so that the same customer
// seen again does not cost Redis a SET per identifier (web events repeat their hashed
// email and phone constantly) and offline events do not GET what was just read.
//
// An entry records what this process last knew of an identifier: the external_id (""
// for "no link"), when it learned it, and whether it wrote the link itself. Only a link
// this process wrote lets Remember skip a rewrite, since only then is the key's remaining
// TTL known; a link read by Lookup may be about to expire.
//
// The bound is exact: the cache holds at most its capacity. Each shard keeps two
// generations of maps; when the current one fills up, the older one is dropped whole and
// the current one becomes the older. A hit in the older generation moves the entry forward,
// so identifiers in steady use survive, an approximation of LRU at O(1) cost without lists
// or per-entry pointers. Identifiers are SHA-256 hex, so their first byte picks the shard
// uniformly, and they are stored as 32 raw bytes, which neither doubles their size nor pins
// the caller's buffers.
type idCache struct {
	shards []idShard
	// genCap is the capacity of one generation of one shard; a shard holds up to twice it.
	genCap int
}

type idKey [32]byte

type idEntry struct {
	value   string
	at      int64 // when this process learned value, Unix nanoseconds by the config clock
	written bool  // this process wrote the link to Redis at 'at'
}

type idShard struct {
	mu       sync.Mutex
	cur, old map[idKey]idEntry
}

// idCacheShards spreads lock contention; with the default capacity each shard holds
// about 1,500 entries.
const idCacheShards = 64

// newIDCache returns a cache of at most capacity entries, or nil (caching off) when
// capacity is not positive.
func newIDCache(capacity int) *idCache {
	if capacity <= 0 {
		return nil
	}
	n := min(idCacheShards, max(1, capacity/2))
	c := &idCache{shards: make([]idShard, n), genCap: max(1, capacity/(2*n))}
	for i := range c.shards {
		c.shards[i].cur = make(map[idKey]idEntry)
	}
	return c
}

func (c *idCache) shard(k *idKey) *idShard {
	return &c.shards[int(k[0])%len(c.shards)]
}

func (c *idCache) get(k idKey) (idEntry, bool) {
	s := c.shard(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.cur[k]; ok {
		return e, true
	}
	e, ok := s.old[k]
	if ok {
		delete(s.old, k)
		s.putLocked(k, e, c.genCap)
	}
	return e, ok
}

// put stores e for k unless the entry already there is newer: a Lookup that started
// before a concurrent Remember must not replace the link that Remember wrote with the
// older answer it read.
func (c *idCache) put(k idKey, e idEntry) {
	s := c.shard(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.cur[k]; ok {
		if old.at > e.at {
			return
		}
		if old.written && !e.written && old.value == e.value {
			return // a read that confirms our own write: keep knowing that we wrote it
		}
	} else if old, ok := s.old[k]; ok {
		delete(s.old, k)
		if old.at > e.at || old.written && !e.written && old.value == e.value {
			e = old
		}
	}
	// Values come from decoded events; a clone keeps a cached link from pinning them.
	e.value = strings.Clone(e.value)
	s.putLocked(k, e, c.genCap)
}

func (s *idShard) putLocked(k idKey, e idEntry, genCap int) {
	if _, ok := s.cur[k]; !ok && len(s.cur) >= genCap {
		s.old = s.cur
		s.cur = make(map[idKey]idEntry, genCap)
	}
	s.cur[k] = e
}

// len counts the entries, expired ones included, for tests.
func (c *idCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.old)
		s.mu.Unlock()
	}
	return n
}

// idCacheConfig is when cached knowledge may stand in for Redis.
type idCacheConfig struct {
	// rewriteAfter: Remember skips a link this process wrote less than this long ago.
	rewriteAfter time.Duration
	// lookupTTL: Lookup answers from an entry learned less than this long ago.
	lookupTTL time.Duration
}
