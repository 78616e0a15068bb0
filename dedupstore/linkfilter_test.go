package dedupstore

import (
	"testing"
	"time"
)

func TestLinkFilter(t *testing.T) {
	const sec = int64(time.Second)
	f := newLinkFilter(64)
	k1, k2 := cacheKey(hashedID(1)), cacheKey(hashedID(2))
	tests := []struct {
		name string
		do   func()
		k    idKey
		ext  string
		at   int64
		want bool
	}{
		{"nothing written", func() {}, k1, "a", 100 * sec, false},
		{"written", func() { f.written(k1, "a", 100*sec) }, k1, "a", 100 * sec, true},
		{"inside the window", func() {}, k1, "a", 159 * sec, true},
		{"at the end of the window", func() {}, k1, "a", 160 * sec, false},
		{"other external_id", func() {}, k1, "b", 101 * sec, false},
		{"other identifier", func() {}, k2, "a", 101 * sec, false},
		{"relinked", func() { f.written(k1, "b", 120*sec) }, k1, "a", 121 * sec, false},
		{"the new link", func() {}, k1, "b", 121 * sec, true},
		{"Redis agrees", func() { f.contradicted(k1, "b") }, k1, "b", 121 * sec, true},
		{"Redis holds another", func() { f.contradicted(k1, "z") }, k1, "b", 121 * sec, false},
	}
	for _, tt := range tests {
		tt.do()
		if got := f.fresh(tt.k, tt.ext, tt.at, 60); got != tt.want {
			t.Errorf("%s: fresh = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestLinkFilterBoundAndEviction: the filter never grows past its slots, and a full bucket
// forgets its least recently written link.
func TestLinkFilterBoundAndEviction(t *testing.T) {
	f := newLinkFilter(16) // 4 buckets of 4
	if len(f.slots) != 16 {
		t.Fatalf("%d slots, want 16", len(f.slots))
	}
	for i := range 1000 {
		f.written(cacheKey(hashedID(i)), "x", int64(i)*int64(time.Second))
	}
	if n := f.len(); n != 16 {
		t.Fatalf("%d slots in use, want all 16", n)
	}
	// Each bucket keeps its four most recent links: a link is remembered exactly when fewer
	// than four later links went to its bucket.
	bucketOf := func(i int) uint64 {
		id, _ := f.hashes(cacheKey(hashedID(i)), "x")
		return (id >> 2) & f.mask
	}
	later := map[uint64]int{}
	for i := 999; i >= 0; i-- {
		b := bucketOf(i)
		want := later[b] < linkBucket
		if got := f.fresh(cacheKey(hashedID(i)), "x", 1000*int64(time.Second), 3600); got != want {
			t.Fatalf("link %d remembered = %v, want %v (%d later links in its bucket)", i, got, want, later[b])
		}
		later[b]++
	}
}

// TestRedisIdentityMapSkipsRewritesBeyondTheCache: customers who outnumber the cache still
// cost one write per rewrite window, not one per event.
func TestRedisIdentityMapSkipsRewritesBeyondTheCache(t *testing.T) {
	// Filter: 6 × 200 slots, rounded up to 512 buckets of 4, so about 1% of 400 identifiers
	// share a bucket with four others and are rewritten; the bound below leaves 5× room.
	idm, hook, clock, _ := cachedIDMap(t, WithIdentityCache(200))
	ctx := ctxT(t, 10*time.Second)
	links := make([]IdentityLink, 400) // 400 identifiers: twice the cache
	for i := range links {
		links[i] = IdentityLink{Identifiers: []string{hashedID(i)}, ExternalID: "ext"}
	}
	for round := range 3 {
		hook.reset()
		for _, l := range links {
			if err := idm.Remember(ctx, []IdentityLink{l}); err != nil {
				t.Fatal(err)
			}
		}
		n := hook.pipelinedCommands.Load()
		if round == 0 && n != 400 {
			t.Fatalf("first round wrote %d links, want 400", n)
		}
		if round > 0 && n > 40 {
			t.Fatalf("round %d rewrote %d of 400 links within the window", round, n)
		}
		clock.advance(time.Minute)
	}
	if n := idm.cache.len(); n > 200 {
		t.Fatalf("cache holds %d entries, bound 200", n)
	}
}
