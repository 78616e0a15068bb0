package dedupstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func hashedID(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return hex.EncodeToString(sum[:])
}

func TestIDCacheHitAndPromotion(t *testing.T) {
	c := newIDCache(4) // 2 shards of 2 generations of 1 entry
	k := cacheKey(hashedID(1))
	if _, ok := c.get(k); ok {
		t.Fatal("hit in an empty cache")
	}
	c.put(k, idEntry{value: "x", at: 1, written: true})
	if e, ok := c.get(k); !ok || e.value != "x" || !e.written || e.at != 1 {
		t.Fatalf("get = %+v, %v", e, ok)
	}
}

func TestIDCacheBound(t *testing.T) {
	for _, capacity := range []int{2, 10, 100, 1000, 100_000} {
		c := newIDCache(capacity)
		for i := range 3 * capacity {
			c.put(cacheKey(hashedID(i)), idEntry{value: "v", at: int64(i)})
			if n := c.len(); n > capacity {
				t.Fatalf("capacity %d: %d entries after %d puts", capacity, n, i+1)
			}
		}
		// The most recent entries survive.
		if _, ok := c.get(cacheKey(hashedID(3*capacity - 1))); !ok {
			t.Errorf("capacity %d: the last entry was evicted", capacity)
		}
	}
	if newIDCache(0) != nil || newIDCache(-1) != nil {
		t.Fatal("a non-positive capacity must turn the cache off")
	}
}

// TestIDCacheKeepsUsedEntries: an entry read while in the older generation moves forward,
// so a hot identifier outlives a stream of one-off ones.
func TestIDCacheKeepsUsedEntries(t *testing.T) {
	c := newIDCache(1000)
	hot := cacheKey(hashedID(-1))
	c.put(hot, idEntry{value: "hot"})
	for i := range 10_000 {
		c.put(cacheKey(hashedID(i)), idEntry{value: "cold"})
		if i%100 == 0 {
			if _, ok := c.get(hot); !ok {
				t.Fatalf("hot entry evicted after %d puts", i)
			}
		}
	}
}

func TestIDCachePutOrdering(t *testing.T) {
	c := newIDCache(100)
	k := cacheKey(hashedID(1))
	c.put(k, idEntry{value: "written", at: 10, written: true})
	// An older read (a Lookup that started before the write) does not replace it.
	c.put(k, idEntry{value: "", at: 5})
	if e, _ := c.get(k); e.value != "written" || !e.written {
		t.Fatalf("older read replaced the write: %+v", e)
	}
	// A newer read of the same value keeps the knowledge that we wrote it.
	c.put(k, idEntry{value: "written", at: 20})
	if e, _ := c.get(k); !e.written || e.at != 10 {
		t.Fatalf("confirming read lost the write: %+v", e)
	}
	// A newer read of another value replaces it.
	c.put(k, idEntry{value: "other", at: 30})
	if e, _ := c.get(k); e.value != "other" || e.written {
		t.Fatalf("newer read ignored: %+v", e)
	}
}

func TestIDCacheConcurrent(t *testing.T) {
	c := newIDCache(500)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				k := cacheKey(hashedID((i * (g + 1)) % 2000))
				if e, ok := c.get(k); ok && e.value == "" {
					t.Error("empty value cached")
					return
				}
				c.put(k, idEntry{value: "v" + strconv.Itoa(g), at: int64(i)})
			}
		})
	}
	wg.Wait()
	if n := c.len(); n > 500 {
		t.Fatalf("%d entries, capacity 500", n)
	}
}

// cachedIDMap is a RedisIdentityMap on miniredis whose cache runs on a fake clock, with a
// hook counting what is sent and the keys it touches.
func cachedIDMap(t *testing.T, opts ...Option) (*RedisIdentityMap, *countHook, *fakeClock, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	hook := &countHook{}
	c.AddHook(hook)
	clock := newFakeClock()
	base := []Option{WithClock(clock.now), WithTTL(100 * time.Hour), WithLogger(quiet),
		WithBackoff(5*time.Millisecond, 20*time.Millisecond)}
	return NewRedisIdentityMap(c, append(base, opts...)...), hook, clock, m
}

func TestRedisIdentityMapSkipsRecentRewrites(t *testing.T) {
	idm, hook, clock, mr := cachedIDMap(t) // TTL 100 h: rewrites skipped for 10 h
	ctx := ctxT(t, 10*time.Second)
	em, ph := hashedID(1), hashedID(2)
	remember := func(ext string, ids ...string) int64 {
		t.Helper()
		hook.reset()
		if err := idm.Remember(ctx, []IdentityLink{{Identifiers: ids, ExternalID: ext}}); err != nil {
			t.Fatal(err)
		}
		return hook.keyOps.Load()
	}
	if n := remember("ext1", em, ph); n != 2 {
		t.Fatalf("first remember sent %d keys, want 2", n)
	}
	clock.advance(time.Hour)
	if n := remember("ext1", em, ph); n != 0 {
		t.Fatalf("repeat within the rewrite window sent %d keys, want 0", n)
	}
	if st := idm.Stats(); st.IdentityWritesSkipped != 2 {
		t.Fatalf("stats = %+v, want 2 skipped writes", st)
	}
	// A new external_id for one identifier is written at once.
	if n := remember("ext2", em, ph); n != 2 {
		t.Fatalf("changed link sent %d keys, want 2", n)
	}
	if v, _ := mr.Get("capirelay:idmap:" + em); v != "ext2" {
		t.Fatalf("Redis holds %q, want ext2", v)
	}
	// After the window the link is rewritten, restarting its TTL.
	clock.advance(10 * time.Hour)
	if n := remember("ext2", em); n != 1 {
		t.Fatalf("remember after the window sent %d keys, want 1", n)
	}
	// In a batch mixing fresh and new links, only the new ones are written, each with its
	// own external_id.
	hook.reset()
	id3, id4 := hashedID(3), hashedID(4)
	if err := idm.Remember(ctx, []IdentityLink{{Identifiers: []string{em, id3}, ExternalID: "ext2"}, {Identifiers: []string{id4}, ExternalID: "ext4"}}); err != nil {
		t.Fatal(err)
	}
	if n := hook.keyOps.Load(); n != 2 {
		t.Fatalf("mixed batch sent %d keys, want 2", n)
	}
	for id, want := range map[string]string{id3: "ext2", id4: "ext4"} {
		if v, _ := mr.Get("capirelay:idmap:" + id); v != want {
			t.Fatalf("Redis holds %q for %s, want %q", v, id, want)
		}
	}
	// Within one batch the later link wins, in Redis and in the cache.
	hook.reset()
	if err := idm.Remember(ctx, []IdentityLink{{Identifiers: []string{ph}, ExternalID: "b"}, {Identifiers: []string{ph}, ExternalID: "c"}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := mr.Get("capirelay:idmap:" + ph); v != "c" {
		t.Fatalf("Redis holds %q, want c", v)
	}
	if n := remember("c", ph); n != 0 {
		t.Fatalf("repeat of the batch's last link sent %d keys, want 0", n)
	}
}

func TestRedisIdentityMapLookupCache(t *testing.T) {
	idm, hook, clock, mr := cachedIDMap(t, WithIdentityLookupCacheTTL(time.Minute))
	ctx := ctxT(t, 10*time.Second)
	em, ph, unknown := hashedID(1), hashedID(2), hashedID(3)
	lookup := func(want string, ids ...string) int64 {
		t.Helper()
		hook.reset()
		got, err := idm.Lookup(ctx, [][]string{ids})
		if err != nil || got[0] != want {
			t.Fatalf("Lookup(%v) = %q, %v; want %q", ids, got, err, want)
		}
		return hook.keyOps.Load()
	}
	if err := idm.Remember(ctx, []IdentityLink{{Identifiers: []string{em}, ExternalID: "ext1"}}); err != nil {
		t.Fatal(err)
	}
	if n := lookup("ext1", em); n != 0 {
		t.Fatalf("lookup of a link just written sent %d keys", n)
	}
	// Absent links are cached as well.
	if n := lookup("", unknown); n != 1 {
		t.Fatalf("first lookup sent %d keys, want 1", n)
	}
	if n := lookup("", unknown); n != 0 {
		t.Fatalf("repeat lookup sent %d keys, want 0", n)
	}
	// Another replica links ph and relinks em: unseen until the lookup TTL passes.
	mr.Set("capirelay:idmap:"+ph, "other")
	mr.Set("capirelay:idmap:"+em, "ext9")
	if n := lookup("ext1", em); n != 0 {
		t.Fatalf("cached lookup sent %d keys", n)
	}
	clock.advance(time.Minute)
	if n := lookup("ext9", em, ph); n != 2 {
		t.Fatalf("lookup after the TTL sent %d keys, want 2", n)
	}
	if st := idm.Stats(); st.IdentityLookupCacheHits != 3 {
		t.Fatalf("stats = %+v, want 3 lookup cache hits", st)
	}
	// Having read another replica's link, Remember writes ours again at once.
	hook.reset()
	if err := idm.Remember(ctx, []IdentityLink{{Identifiers: []string{em}, ExternalID: "ext1"}}); err != nil {
		t.Fatal(err)
	}
	if n := hook.keyOps.Load(); n != 1 {
		t.Fatalf("remember after reading a different link sent %d keys, want 1", n)
	}
}

func TestRedisIdentityMapCacheOff(t *testing.T) {
	idm, hook, _, _ := cachedIDMap(t, WithIdentityCache(0))
	ctx := ctxT(t, 10*time.Second)
	links := []IdentityLink{{Identifiers: []string{hashedID(1)}, ExternalID: "x"}}
	for range 3 {
		if err := idm.Remember(ctx, links); err != nil {
			t.Fatal(err)
		}
		if _, err := idm.Lookup(ctx, [][]string{{hashedID(1)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := hook.keyOps.Load(); n != 6 {
		t.Fatalf("%d keys, want 6 with the cache off", n)
	}
}

func TestRedisIdentityMapCacheBounded(t *testing.T) {
	idm, _, _, _ := cachedIDMap(t, WithIdentityCache(100))
	ctx := ctxT(t, 10*time.Second)
	var ids []string
	for i := range 1000 {
		ids = append(ids, hashedID(i))
	}
	if err := idm.Remember(ctx, []IdentityLink{{Identifiers: ids, ExternalID: "x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := idm.Lookup(ctx, [][]string{ids[:500], ids[500:]}); err != nil {
		t.Fatal(err)
	}
	if n := idm.cache.len(); n > 100 {
		t.Fatalf("cache holds %d entries, bound 100", n)
	}
}

// TestRedisIdentityMapFailOpenNotCached: a link Redis did not take must be written again
// next time, and an unread identifier must be read again.
func TestRedisIdentityMapFailOpenNotCached(t *testing.T) {
	idm, hook, _, mr := cachedIDMap(t, WithFailOpen())
	ctx := ctxT(t, 10*time.Second)
	links := []IdentityLink{{Identifiers: []string{hashedID(1)}, ExternalID: "x"}}
	mr.SetError("down")
	if err := idm.Remember(ctx, links); err != nil {
		t.Fatal(err)
	}
	if got, err := idm.Lookup(ctx, [][]string{{hashedID(2)}}); err != nil || got[0] != "" {
		t.Fatalf("Lookup = %q, %v", got, err)
	}
	mr.SetError("")
	hook.reset()
	if err := idm.Remember(ctx, links); err != nil {
		t.Fatal(err)
	}
	if _, err := idm.Lookup(ctx, [][]string{{hashedID(2)}}); err != nil {
		t.Fatal(err)
	}
	if n := hook.keyOps.Load(); n != 2 {
		t.Fatalf("%d keys after recovery, want 2 (nothing cached from the failures)", n)
	}
}

// TestRedisIdentityMapConcurrent runs Remember and Lookup from many goroutines on one map,
// for the race detector, and checks every answer is a link that was written.
func TestRedisIdentityMapConcurrent(t *testing.T) {
	idm, _, clock, _ := cachedIDMap(t, WithIdentityCache(50))
	ctx := ctxT(t, 30*time.Second)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 100 {
				id := hashedID(i % 80)
				ext := "ext" + strconv.Itoa(i%80)
				if err := idm.Remember(ctx, []IdentityLink{{Identifiers: []string{id}, ExternalID: ext}}); err != nil {
					t.Error(err)
					return
				}
				got, err := idm.Lookup(ctx, [][]string{{id}})
				if err != nil || got[0] != ext {
					t.Errorf("goroutine %d: Lookup = %q, %v; want %q", g, got, err, ext)
					return
				}
				if i%25 == 0 {
					clock.advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
}

// setGetRejected makes the server look like Redis before 7.0, which rejects SET with both
// NX and GET.
type setGetRejected struct{}

type syntaxError string

func (e syntaxError) Error() string { return string(e) }
func (syntaxError) RedisError()     {}

func (setGetRejected) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (setGetRejected) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (setGetRejected) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var rest []redis.Cmder
		for _, c := range cmds {
			if c.Name() == "set" && slices.Contains(c.Args(), any("get")) {
				c.SetErr(syntaxError("ERR syntax error"))
				continue
			}
			rest = append(rest, c)
		}
		if len(rest) == 0 {
			return nil
		}
		return next(ctx, rest)
	}
}

// TestRedisClaimFallsBackToScript: on a server without SET NX GET, claims by one command
// per key work (by script) from the first rejection on, on one server and on a cluster
// alike. Claims by chunk script never send SET NX GET, so need no fallback.
func TestRedisClaimFallsBackToScript(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		chunks bool
	}{{"standalone", false}, {"cluster", false}, {"standalone", true}} {
		name := tc.kind
		if tc.chunks {
			name += "-chunks"
		}
		t.Run(name, func(t *testing.T) {
			mr := miniredis.RunT(t)
			c := clientOf(t, tc.kind, mr)
			c.AddHook(setGetRejected{})
			opts := []Option{WithLogger(quiet)}
			if tc.chunks {
				opts = append(opts, WithChunkScripts())
			}
			s := NewRedis(c, opts...)
			ctx := ctxT(t, 10*time.Second)
			keys := keysN("old", 3)
			rs, err := s.Claim(ctx, keys)
			if err != nil || !slices.Equal(statuses(rs), []Status{Claimed, Claimed, Claimed}) {
				t.Fatalf("claim = %v, %v", statuses(rs), err)
			}
			if s.scriptClaim.Load() == tc.chunks {
				t.Fatalf("store switched to the per-key script: %v, want %v", s.scriptClaim.Load(), !tc.chunks)
			}
			if err := s.Confirm(ctx, claimsOf(rs)[:1]); err != nil {
				t.Fatal(err)
			}
			rs, err = s.Claim(ctx, keys)
			if err != nil || !slices.Equal(statuses(rs), []Status{Duplicate, Held, Held}) {
				t.Fatalf("second claim = %v, %v", statuses(rs), err)
			}
			if st := s.Stats(); st.Errors != 0 {
				t.Fatalf("stats = %+v: the fallback must not count as an error", st)
			}
			if v, _ := mr.Get(redisKey(s.core.cfg.prefix, keys[0])); v != valueSent {
				t.Fatalf("confirmed key holds %q", v)
			}
		})
	}
}

// clientOf is a client of kind "standalone" or "cluster" on m, which answers CLUSTER
// commands as a one-node cluster.
func clientOf(t *testing.T, kind string, m *miniredis.Miniredis) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	switch kind {
	case "standalone":
		c = redis.NewClient(&redis.Options{Addr: m.Addr()})
	case "cluster":
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{m.Addr()}})
	default:
		t.Fatalf("unknown client kind %q", kind)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedisClaimOwnLeaseRestarted: a retried claim that finds its own lease (the first
// reply was lost) reports Claimed and restarts the lease, whichever way it claims.
func TestRedisClaimOwnLeaseRestarted(t *testing.T) {
	type claimFunc func(s *Redis, ctx context.Context, pending []int, rkeys, leases []string, leaseMS int64, results []Result) ([]int, error)
	for _, tc := range []struct {
		name     string
		claim    claimFunc
		scripted bool // s.scriptClaim
	}{
		{"set-nx-get", (*Redis).claimBySet, false},
		{"script", (*Redis).claimByScript, true},
		{"chunks", (*Redis).claimByChunks, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mr, s := miniStore(t, WithLease(30*time.Second))
			s.scriptClaim.Store(tc.scripted)
			ctx := ctxT(t, 10*time.Second)
			key := redisKey(s.core.cfg.prefix, Key{PixelID: "1", EventName: "Purchase", EventID: "x"})
			lease := leasePrefix + "tok"
			mr.Set(key, lease)
			mr.SetTTL(key, 5*time.Second) // most of the lease spent before the retry
			results := make([]Result, 1)
			failed, err := tc.claim(s, ctx, []int{0}, []string{key}, []string{lease}, 30_000, results)
			if len(failed) != 0 || err != nil || results[0].Status != Claimed {
				t.Fatalf("claim = %v, %v, %+v", failed, err, results[0])
			}
			if ttl := mr.TTL(key); ttl < 29*time.Second {
				t.Fatalf("lease TTL %v after the retry, want it restarted to 30s", ttl)
			}
			// Another claim's lease: Held, and left alone.
			mr.Set(key, leasePrefix+"someone-else")
			mr.SetTTL(key, 5*time.Second)
			failed, err = tc.claim(s, ctx, []int{0}, []string{key}, []string{lease}, 30_000, results)
			if len(failed) != 0 || err != nil || results[0].Status != Held {
				t.Fatalf("claim on another lease = %v, %v, %+v", failed, err, results[0])
			}
			if v, _ := mr.Get(key); v != leasePrefix+"someone-else" || mr.TTL(key) != 5*time.Second {
				t.Fatalf("other lease became %q with TTL %v", v, mr.TTL(key))
			}
			// A free key is ours, with the lease as its TTL.
			mr.Del(key)
			failed, err = tc.claim(s, ctx, []int{0}, []string{key}, []string{lease}, 30_000, results)
			if v, _ := mr.Get(key); len(failed) != 0 || err != nil || results[0].Status != Claimed || v != lease || mr.TTL(key) != 30*time.Second {
				t.Fatalf("claim of a free key = %v, %v, %+v; key holds %q for %v", failed, err, results[0], v, mr.TTL(key))
			}
		})
	}
}
