package dedupstore

import (
	"hash/maphash"
	"math/bits"
	"sync"
)

// linkFilter remembers which identity links this process wrote to Redis, and when, in
// fixed memory: 16 bytes per identifier and no pointers, so it holds several times the
// identifiers idCache does for the same memory and costs the collector nothing to scan.
// Remember consults it to skip rewriting a link it wrote recently. Web events repeat the
// same customers' hashed email and phone constantly; with only idCache's entries to go by,
// a shop whose active customers outnumber the cache rewrote both keys on every event —
// two Redis SETs that were the largest Redis cost per event.
//
// An identifier maps to a bucket of four slots; a new identifier takes an empty slot or
// the oldest one, so the filter forgets the least recently written links first. A slot
// keeps 64 bits of the identifier's hash and 32 bits of the external_id's: a collision
// could at worst skip one rewrite, which the link's TTL (ten times the rewrite window)
// makes harmless.
type linkFilter struct {
	seed maphash.Seed
	mask uint64 // buckets - 1

	mu    sync.Mutex
	slots []linkSlot // 4 per bucket
}

type linkSlot struct {
	id  uint64 // 0: empty
	ext uint32
	at  uint32 // Unix seconds by the config clock
}

const linkBucket = 4

// newLinkFilter returns a filter with room for about capacity identifiers (rounded up to
// a power of two), or nil when capacity is not positive.
func newLinkFilter(capacity int) *linkFilter {
	if capacity <= 0 {
		return nil
	}
	buckets := uint64(1) << bits.Len64(uint64(max(capacity/linkBucket, 1)-1))
	return &linkFilter{seed: maphash.MakeSeed(), mask: buckets - 1, slots: make([]linkSlot, buckets*linkBucket)}
}

// hashes returns the identifier's and the external_id's fingerprints.
func (f *linkFilter) hashes(k idKey, ext string) (uint64, uint32) {
	id := maphash.Bytes(f.seed, k[:]) | 1 // never 0, which marks an empty slot
	return id, uint32(maphash.String(f.seed, ext))
}

func (f *linkFilter) bucket(id uint64) []linkSlot {
	b := (id >> 2) & f.mask // the low bits are forced above
	return f.slots[b*linkBucket : (b+1)*linkBucket]
}

// seconds converts a config-clock time (Unix nanoseconds) to the slots' unit.
func seconds(unixNano int64) uint32 { return uint32(unixNano / 1e9) }

// fresh reports whether this process wrote k → ext less than window seconds before now.
func (f *linkFilter) fresh(k idKey, ext string, now int64, window uint32) bool {
	id, e := f.hashes(k, ext)
	sec := seconds(now)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.bucket(id) {
		if s.id == id {
			return s.ext == e && sec-s.at < window
		}
	}
	return false
}

// written records that k → ext was written at now.
func (f *linkFilter) written(k idKey, ext string, now int64) {
	id, e := f.hashes(k, ext)
	sec := seconds(now)
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bucket(id)
	victim := 0
	for i, s := range b {
		if s.id == id || s.id == 0 {
			victim = i
			break
		}
		if s.at < b[victim].at {
			victim = i
		}
	}
	b[victim] = linkSlot{id: id, ext: e, at: sec}
}

// contradicted forgets k's link unless Redis (read by a Lookup) holds the same external_id:
// another replica linked the identifier elsewhere, so ours must be written again.
func (f *linkFilter) contradicted(k idKey, ext string) {
	id, e := f.hashes(k, ext)
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bucket(id)
	for i, s := range b {
		if s.id == id && s.ext != e {
			b[i] = linkSlot{}
		}
	}
}

// len counts the slots in use, for tests.
func (f *linkFilter) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.slots {
		if s.id != 0 {
			n++
		}
	}
	return n
}
