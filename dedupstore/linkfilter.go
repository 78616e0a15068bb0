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
// An identifier may sit in either of two buckets of four slots, picked by two parts of its
// hash; a new identifier takes an empty slot of the emptier one, or else the oldest of the
// eight, so the filter forgets the least recently written links first. With one bucket
// per identifier, a filter three-quarters full lost about a tenth of its links: those in
// buckets that five or more shared, which then evicted each other in turn and were
// rewritten on every event (the bench, 1M records of 50,000 customers: 308,000 identity
// SETs, counted with MONITOR). Two choices lose under 1% at that load
// (TestLinkFilterFillsUp); the bench now writes 90,000.
//
// A slot keeps 64 bits of the identifier's hash and 32 bits of the external_id's: a collision
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
	buckets := uint64(1) << min(bits.Len64(uint64(max(capacity/linkBucket, 1)-1)), 30)
	return &linkFilter{seed: maphash.MakeSeed(), mask: buckets - 1, slots: make([]linkSlot, buckets*linkBucket)}
}

// hashes returns the identifier's and the external_id's fingerprints.
func (f *linkFilter) hashes(k idKey, ext string) (uint64, uint32) {
	id := maphash.Bytes(f.seed, k[:]) | 1 // never 0, which marks an empty slot
	return id, uint32(maphash.String(f.seed, ext))
}

// candidates returns the identifier's eight slots: its two buckets, or one bucket twice
// when both parts of the hash pick the same one. The low bits of id are forced (see
// hashes) and the filter has at most 2^30 buckets, so the two parts do not overlap.
func (f *linkFilter) candidates(id uint64) (a, b []linkSlot) {
	i, j := (id>>2)&f.mask, (id>>34)&f.mask
	return f.slots[i*linkBucket : (i+1)*linkBucket], f.slots[j*linkBucket : (j+1)*linkBucket]
}

// find returns the slot that holds id, or nil.
func (f *linkFilter) find(id uint64) *linkSlot {
	a, b := f.candidates(id)
	for _, bucket := range [2][]linkSlot{a, b} {
		for i := range bucket {
			if bucket[i].id == id {
				return &bucket[i]
			}
		}
	}
	return nil
}

// seconds converts a config-clock time (Unix nanoseconds) to the slots' unit.
func seconds(unixNano int64) uint32 { return uint32(unixNano / 1e9) }

// freshAll reports, for each i, whether this process wrote ks[i] → exts[i] less than window
// seconds before now. It takes the lock once for the batch: Remember took it once per
// identifier, and these lookups, random reads of the slots, were three quarters of its cost.
func (f *linkFilter) freshAll(ks []idKey, exts []string, now int64, window uint32) []bool {
	ids := make([]uint64, len(ks))
	es := make([]uint32, len(ks))
	for i := range ks {
		ids[i], es[i] = f.hashes(ks[i], exts[i])
	}
	sec := seconds(now)
	fresh := make([]bool, len(ks))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, id := range ids {
		s := f.find(id)
		fresh[i] = s != nil && s.ext == es[i] && sec-s.at < window
	}
	return fresh
}

// written records that k → ext was written at now.
func (f *linkFilter) written(k idKey, ext string, now int64) {
	id, e := f.hashes(k, ext)
	sec := seconds(now)
	f.mu.Lock()
	defer f.mu.Unlock()
	slot := f.find(id)
	if slot == nil {
		slot = f.victim(id)
	}
	*slot = linkSlot{id: id, ext: e, at: sec}
}

// victim is the slot a new identifier takes: an empty one in the emptier of its buckets
// (filling the emptier one keeps both loads low, which is what makes two choices work), or
// else the oldest of the eight.
func (f *linkFilter) victim(id uint64) *linkSlot {
	a, b := f.candidates(id)
	var emptiest *linkSlot
	mostFree := 0
	oldest := &a[0]
	for _, bucket := range [2][]linkSlot{a, b} {
		free := 0
		var empty *linkSlot
		for i := range bucket {
			switch {
			case bucket[i].id == 0:
				free++
				empty = &bucket[i]
			case bucket[i].at < oldest.at:
				oldest = &bucket[i]
			}
		}
		if free > mostFree {
			emptiest, mostFree = empty, free
		}
	}
	if emptiest != nil {
		return emptiest
	}
	return oldest
}

// contradicted forgets k's link unless Redis (read by a Lookup) holds the same external_id:
// another replica linked the identifier elsewhere, so ours must be written again.
func (f *linkFilter) contradicted(k idKey, ext string) {
	id, e := f.hashes(k, ext)
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.find(id); s != nil && s.ext != e {
		*s = linkSlot{}
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
