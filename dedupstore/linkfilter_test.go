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

// TestLinkFilterBoundAndEviction: the filter never grows past its slots, and a link is
// forgotten only for a later one: the four most recent links are always remembered, since
// each link's eight candidate slots then hold at least four older ones to give up first.
func TestLinkFilterBoundAndEviction(t *testing.T) {
	f := newLinkFilter(16) // 4 buckets of 4
	if len(f.slots) != 16 {
		t.Fatalf("%d slots, want 16", len(f.slots))
	}
	for i := range 1000 {
		f.written(cacheKey(hashedID(i)), "x", int64(i)*int64(time.Second))
		for back := range min(i+1, linkBucket) {
			if !f.fresh(cacheKey(hashedID(i-back)), "x", int64(i)*int64(time.Second), 3600) {
				t.Fatalf("after link %d, link %d is forgotten", i, i-back)
			}
		}
	}
	if n := f.len(); n != 16 {
		t.Fatalf("%d slots in use, want all 16", n)
	}
}

// TestLinkFilterFillsUp: filled to three-quarters of its slots, the filter remembers
// nearly every link (99.3–99.4% in runs). With one bucket per identifier it remembered
// 89–90%: the rest were in buckets five or more shared, evicted in turn, and rewritten on
// every event.
func TestLinkFilterFillsUp(t *testing.T) {
	f := newLinkFilter(1 << 16)
	n := len(f.slots) * 3 / 4
	for i := range n {
		f.written(cacheKey(hashedID(i)), "x", int64(time.Second))
	}
	kept := 0
	for i := range n {
		if f.fresh(cacheKey(hashedID(i)), "x", int64(time.Second), 3600) {
			kept++
		}
	}
	if share := float64(kept) / float64(n); share < 0.985 {
		t.Fatalf("remembered %d of %d links (%.1f%%), want at least 98.5%%", kept, n, 100*share)
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
		n := hook.keyOps.Load()
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
