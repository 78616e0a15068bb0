package dedupstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// chunkClients are the one-server clients the chunk tests run on: miniredis, whose Lua is
// gopher-lua, and the real server.
var chunkClients = []struct {
	name   string
	client func(t *testing.T) *redis.Client
}{
	{"miniredis", func(t *testing.T) *redis.Client {
		return clientOf(t, "standalone", miniredis.RunT(t)).(*redis.Client)
	}},
	{"redis", func(t *testing.T) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: realRedis(t).Options().Addr})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}},
}

// onChunkClients runs test on each of chunkClients in parallel, with a key prefix of its own.
func onChunkClients(t *testing.T, test func(t *testing.T, c *redis.Client, prefix string)) {
	for _, cc := range chunkClients {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			c := cc.client(t)
			prefix := testPrefix(t)
			deleteByPrefix(t, c, prefix)
			test(t, c, prefix)
		})
	}
}

// TestChunksSpanBatches: a batch longer than a chunk gets each key's own status, value and
// expiry, whichever chunk it falls in, including a key repeated across a chunk boundary.
func TestChunksSpanBatches(t *testing.T) {
	onChunkClients(t, func(t *testing.T, c *redis.Client, prefix string) {
		ctx := ctxT(t, 30*time.Second)
		opts := []Option{WithPrefix(prefix + "dedup:"), WithTTL(time.Hour), WithLease(time.Minute), WithLogger(quiet),
			WithChunkScripts()}
		s, other := NewRedis(c, opts...), NewRedis(c, opts...)
		if !s.core.chunked {
			t.Fatal("store on a one-server client does not use chunk scripts")
		}

		n := 2*scriptChunk + 44
		keys := keysN("span", n)
		keys[scriptChunk] = keys[scriptChunk-1] // across the first boundary
		keys[200] = keys[0]                     // two chunks apart
		sent := []int{5, scriptChunk + 1, n - 1}
		held := 250
		pre := []Key{keys[sent[0]], keys[sent[1]], keys[sent[2]], keys[held]}
		rs, err := other.Claim(ctx, pre)
		if err != nil || !slices.Equal(statuses(rs), []Status{Claimed, Claimed, Claimed, Claimed}) {
			t.Fatalf("other's claim = %v, %v", statuses(rs), err)
		}
		if err := other.Confirm(ctx, claimsOf(rs)[:3]); err != nil {
			t.Fatal(err)
		}

		want := make([]Status, n)
		for i := range want {
			want[i] = Claimed
		}
		for _, i := range sent {
			want[i] = Duplicate
		}
		want[held], want[scriptChunk], want[200] = Held, Held, Held
		rs, err = s.Claim(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(rs); !slices.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("key %d: %v, want %v", i, got[i], want[i])
				}
			}
			t.FailNow()
		}
		claims := claimsOf(rs)
		for _, cl := range claims {
			k := s.keyOf(cl)
			if v := c.Get(ctx, k).Val(); v != leasePrefix+cl.Token {
				t.Fatalf("claimed key holds %q, want its lease", v)
			}
			if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
				t.Fatalf("lease TTL %v, want up to the one-minute lease", ttl)
			}
		}
		if err := s.Confirm(ctx, claims); err != nil {
			t.Fatal(err)
		}
		for _, cl := range claims {
			k := s.keyOf(cl)
			if v := c.Get(ctx, k).Val(); v != valueSent {
				t.Fatalf("confirmed key holds %q", v)
			}
			if ttl := c.PTTL(ctx, k).Val(); ttl <= time.Minute || ttl > time.Hour {
				t.Fatalf("confirmed key's TTL %v, want the one-hour TTL", ttl)
			}
		}

		// Links: each identifier keeps its own external_id across chunks.
		idm := NewRedisIdentityMap(c, WithPrefix(prefix+"idmap:"), WithTTL(time.Hour), WithChunkScripts())
		links := make([]IdentityLink, n)
		for i := range links {
			links[i] = IdentityLink{Identifiers: []string{hashedID(i)}, ExternalID: "ext-" + strconv.Itoa(i)}
		}
		if err := idm.Remember(ctx, links); err != nil {
			t.Fatal(err)
		}
		for i := range links {
			k := prefix + "idmap:" + hashedID(i)
			if v := c.Get(ctx, k).Val(); v != links[i].ExternalID {
				t.Fatalf("link %d holds %q, want %q", i, v, links[i].ExternalID)
			}
			if ttl := c.TTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
				t.Fatalf("link %d TTL %v", i, ttl)
			}
		}
	})
}

// TestSetKeysExpiry: the chunk script sets expiries as go-redis's Set would: EX for whole
// seconds, PX otherwise, none at all for a non-positive TTL.
func TestSetKeysExpiry(t *testing.T) {
	onChunkClients(t, func(t *testing.T, c *redis.Client, prefix string) {
		ctx := ctxT(t, 10*time.Second)
		core := redisCore{client: c, cfg: newConfig(prefix, time.Hour, nil), chunked: true}
		for _, tc := range []struct {
			ttl  time.Duration
			same bool
		}{{0, true}, {-time.Second, false}, {1500 * time.Millisecond, false}, {90 * time.Second, true}} {
			name := fmt.Sprintf("%s%v-%v", prefix, tc.ttl, tc.same)
			keys := []string{name + ":a", name + ":b", name + ":c"}
			values := []string{"va", "vb", "vc"}
			failed, err := core.setKeys(ctx, []int{0, 1, 2}, keys, func(i int) *string { return &values[i] }, tc.same, tc.ttl)
			if len(failed) != 0 || err != nil {
				t.Fatalf("ttl %v: failed %v, %v", tc.ttl, failed, err)
			}
			for i, k := range keys {
				want := values[i]
				if tc.same {
					want = values[0]
				}
				if v := c.Get(ctx, k).Val(); v != want {
					t.Fatalf("ttl %v: %s holds %q, want %q", tc.ttl, k, v, want)
				}
				ttl := c.PTTL(ctx, k).Val()
				if tc.ttl <= 0 && ttl != -1 {
					t.Fatalf("ttl %v: %s expires in %v, want never", tc.ttl, k, ttl)
				}
				if tc.ttl > 0 && (ttl <= tc.ttl-250*time.Millisecond || ttl > tc.ttl) {
					t.Fatalf("%s expires in %v, want %v", k, ttl, tc.ttl)
				}
			}
		}
	})
}

// failSecondScript fails the second script command of the first pipeline holding more than
// one, without sending it, and records how many keys each script command it passes covers.
type failSecondScript struct {
	mu     sync.Mutex
	failed bool
	keys   [][]int // per pipeline
}

func (*failSecondScript) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*failSecondScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *failSecondScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || isHandshake(cmds...) {
			return next(ctx, cmds)
		}
		h.mu.Lock()
		var rest []redis.Cmder
		var keys []int
		for i, c := range cmds {
			if !h.failed && i == 1 && len(cmds) > 1 {
				h.failed = true
				c.SetErr(fmt.Errorf("injected failure"))
				continue
			}
			rest = append(rest, c)
			if n := keyOpsOf(c); c.Name() == "evalsha" || c.Name() == "eval" {
				keys = append(keys, int(n))
			}
		}
		h.keys = append(h.keys, keys)
		h.mu.Unlock()
		return next(ctx, rest)
	}
}

// TestChunkFailureRetriesItsKeys: a chunk that fails is retried on its own, and its keys,
// not its neighbours', are the ones retried.
func TestChunkFailureRetriesItsKeys(t *testing.T) {
	mr := miniredis.RunT(t)
	c := clientOf(t, "standalone", mr)
	hook := &failSecondScript{}
	c.AddHook(hook)
	// Scripts cached first, so the claim's pipeline is EVALSHA only.
	for _, src := range []string{claimChunkSrc, setChunkSrc} {
		if err := c.ScriptLoad(context.Background(), src).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s := NewRedis(c, WithBackoff(time.Millisecond, time.Millisecond), WithLogger(quiet), WithChunkScripts())
	n := 2*scriptChunk + 10
	keys := keysN("retry", n)
	rs, err := s.Claim(ctxT(t, 10*time.Second), keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Status != Claimed {
			t.Fatalf("key %d: %v", i, r.Status)
		}
		if v, _ := mr.Get(s.keyOf(r.Claim)); v != leasePrefix+r.Claim.Token {
			t.Fatalf("key %d holds %q, want its lease", i, v)
		}
	}
	if st := s.Stats(); st.Errors != 1 || st.Retries != 1 {
		t.Fatalf("stats = %+v, want one error and one retry", st)
	}
	want := [][]int{{scriptChunk, 10}, {scriptChunk}}
	if len(hook.keys) != len(want) || !slices.Equal(hook.keys[0], want[0]) || !slices.Equal(hook.keys[1], want[1]) {
		t.Fatalf("script keys per pipeline = %v, want %v (the failed chunk alone retried)", hook.keys, want)
	}
}
