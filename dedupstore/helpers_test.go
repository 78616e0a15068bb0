package dedupstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// serviceEnv returns the environment variable name, which says where a real service is.
// Without it the test is skipped, unless CAPIRELAY_REQUIRE_SERVICES=1 says CI must not
// silently skip.
func serviceEnv(tb testing.TB, name, service string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CAPIRELAY_REQUIRE_SERVICES") == "1" {
			tb.Fatalf("%s is unset but CAPIRELAY_REQUIRE_SERVICES=1", name)
		}
		tb.Skipf("%s is unset; skipping test against a real %s", name, service)
	}
	return v
}

// realRedis connects to the Redis at REDIS_ADDR.
func realRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	addr := serviceEnv(tb, "REDIS_ADDR", "Redis")
	c := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		tb.Fatalf("ping Redis at %s: %v", addr, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// realRedisCluster connects to the Redis Cluster whose nodes REDIS_CLUSTER_ADDRS lists
// (comma-separated; scripts/test.sh starts one with three masters).
func realRedisCluster(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	addrs := serviceEnv(tb, "REDIS_CLUSTER_ADDRS", "Redis Cluster")
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
		return n.Ping(ctx).Err()
	}); err != nil {
		_ = c.Close()
		tb.Fatalf("ping Redis Cluster at %s: %v", addrs, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// keysPerMaster counts the keys under prefix on each master of a cluster, by address.
func keysPerMaster(tb testing.TB, c *redis.ClusterClient, prefix string) map[string]int {
	tb.Helper()
	var mu sync.Mutex
	counts := make(map[string]int)
	err := c.ForEachMaster(ctxT(tb, 10*time.Second), func(ctx context.Context, n *redis.Client) error {
		keys, err := scanKeys(ctx, n, prefix)
		mu.Lock()
		counts[n.Options().Addr] = len(keys)
		mu.Unlock()
		return err
	})
	if err != nil {
		tb.Fatalf("count keys per master: %v", err)
	}
	return counts
}

func scanKeys(ctx context.Context, c redis.Cmdable, prefix string) ([]string, error) {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

// testPrefix is unique per test and run, so tests of parallel packages sharing the
// development Redis never see each other's keys.
func testPrefix(tb testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "capirelay-test:" + strings.ReplaceAll(tb.Name(), " ", "_") + ":" + hex.EncodeToString(b[:]) + ":"
}

// deleteByPrefix removes a test's keys from the shared Redis, or from every master of the
// shared cluster, once it ends.
func deleteByPrefix(tb testing.TB, c redis.UniversalClient, prefix string) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if cc, ok := c.(*redis.ClusterClient); ok {
			_ = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
				return deleteKeys(ctx, n, prefix)
			})
			return
		}
		_ = deleteKeys(ctx, c, prefix)
	})
}

// deleteKeys deletes one key per command: a cluster node refuses a DEL of keys in different
// slots, even slots it serves.
func deleteKeys(ctx context.Context, c redis.Cmdable, prefix string) error {
	keys, err := scanKeys(ctx, c, prefix)
	if err != nil || len(keys) == 0 {
		return err
	}
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, k)
		}
		return nil
	})
	return err
}

// fakeClock is a settable clock for the in-memory implementations.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one backend under test. Stores made by one env share state, as the replicas of
// capirelay share one Redis.
type env struct {
	lease, ttl time.Duration
	// store returns a store for owner on the env's shared state.
	store func(owner string, opts ...Option) Store
	// idmap returns an identity map on the env's shared state with a link TTL of ttl.
	idmap func(opts ...Option) IdentityMap
	// advance moves time forward by d: a fake clock, miniredis's clock, or a real sleep.
	advance func(d time.Duration)
	// mini is set for the miniredis backend.
	mini *miniredis.Miniredis
}

type backend struct {
	name  string
	setup func(t *testing.T) *env
}

// backends are the implementations every protocol test runs against. Real Redis cannot
// fast-forward, so it gets a short lease and TTL and tests sleep through them.
var backends = []backend{
	{"memory", func(t *testing.T) *env {
		clock := newFakeClock()
		e := &env{lease: DefaultLease, ttl: DefaultTTL, advance: clock.advance}
		mem := NewMemory(WithClock(clock.now), WithLease(e.lease), WithTTL(e.ttl))
		e.store = func(string, ...Option) Store { return mem }
		e.idmap = func(opts ...Option) IdentityMap {
			return NewMemoryIdentityMap(append([]Option{WithClock(clock.now), WithTTL(e.ttl)}, opts...)...)
		}
		return e
	}},
	{"miniredis", miniredisEnv(false)},
	{"miniredis-chunks", miniredisEnv(true)},
	{"redis", realRedisEnv(false)},
	{"redis-chunks", realRedisEnv(true)},
	{"redis-cluster", realRedisClusterEnv},
}

// miniredisEnv is a backend on miniredis; chunks gives its stores WithChunkScripts.
func miniredisEnv(chunks bool) func(t *testing.T) *env {
	return func(t *testing.T) *env {
		m := miniredis.RunT(t)
		c := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		// The identity map's cache runs on the local clock; it moves with miniredis's.
		clock := newFakeClock()
		advance := func(d time.Duration) { m.FastForward(d); clock.advance(d) }
		e := &env{lease: DefaultLease, ttl: DefaultTTL, advance: advance, mini: m}
		e.store, e.idmap = redisFactories(t, c, e, chunks, WithClock(clock.now))
		return e
	}
}

// realRedisEnv is a backend on the real Redis; chunks gives its stores WithChunkScripts.
func realRedisEnv(chunks bool) func(t *testing.T) *env {
	return func(t *testing.T) *env {
		c := realRedis(t)
		e := &env{lease: time.Second, ttl: 3 * time.Second, advance: time.Sleep} // margins that survive a loaded CI machine
		e.store, e.idmap = redisFactories(t, c, e, chunks)
		return e
	}
}

// realRedisClusterEnv is a backend on the real Redis Cluster, whose keys spread over three
// masters and whose pipelines go out by node. It asks for chunk scripts, which a cluster does
// not run, so its stores must work by key regardless.
func realRedisClusterEnv(t *testing.T) *env {
	c := realRedisCluster(t)
	e := &env{lease: time.Second, ttl: 3 * time.Second, advance: time.Sleep}
	e.store, e.idmap = redisFactories(t, c, e, true)
	return e
}

// redisFactories makes the env's stores and identity maps; idOpts go to every identity map.
// chunks gives them WithChunkScripts.
func redisFactories(t *testing.T, c redis.UniversalClient, e *env, chunks bool, idOpts ...Option) (func(string, ...Option) Store, func(...Option) IdentityMap) {
	prefix := testPrefix(t)
	deleteByPrefix(t, c, prefix)
	store := func(owner string, opts ...Option) Store {
		base := []Option{WithPrefix(prefix + "dedup:"), WithOwner(owner), WithLease(e.lease), WithTTL(e.ttl)}
		if chunks {
			base = append(base, WithChunkScripts())
		}
		return NewRedis(c, append(base, opts...)...)
	}
	idmap := func(opts ...Option) IdentityMap {
		base := append([]Option{WithPrefix(prefix + "idmap:"), WithTTL(e.ttl)}, idOpts...)
		if chunks {
			base = append(base, WithChunkScripts())
		}
		return NewRedisIdentityMap(c, append(base, opts...)...)
	}
	return store, idmap
}

// countHook counts what a go-redis client sends: pipelines and single commands, and the
// per-key operations the pipelined commands ran (keyOps: a chunk script counts its keys, a
// command that hit NOSCRIPT and so ran nothing counts none). The handshake go-redis runs on
// each new connection (HELLO, CLIENT ...) is not counted: it depends on the pool, not on
// the store.
type countHook struct {
	pipelines, commands, pipelinedCommands, keyOps atomic.Int64
}

// keyOpsOf is how many keys cmd operated on: its number of keys for a script, else one.
func keyOpsOf(cmd redis.Cmder) int64 {
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return 0
	}
	switch cmd.Name() {
	case "eval", "evalsha":
		n, err := strconv.Atoi(fmt.Sprint(cmd.Args()[2]))
		if err != nil {
			panic("script command without a key count: " + cmd.String())
		}
		return int64(n)
	}
	return 1
}

func isHandshake(cmds ...redis.Cmder) bool {
	switch cmds[0].Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isHandshake(cmd) {
			h.commands.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !isHandshake(cmds...) {
			h.pipelines.Add(1)
			h.pipelinedCommands.Add(int64(len(cmds)))
			defer func() {
				for _, c := range cmds {
					h.keyOps.Add(keyOpsOf(c))
				}
			}()
		}
		return next(ctx, cmds)
	}
}

func (h *countHook) reset() {
	h.pipelines.Store(0)
	h.commands.Store(0)
	h.pipelinedCommands.Store(0)
	h.keyOps.Store(0)
}

func keysN(tag string, n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{PixelID: "1234567890", EventName: "Purchase", EventID: tag + "-" + strconv.Itoa(i)}
	}
	return keys
}

func statuses(rs []Result) []Status {
	out := make([]Status, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

func claimsOf(rs []Result) []Claim {
	var out []Claim
	for _, r := range rs {
		if r.Status == Claimed {
			out = append(out, r.Claim)
		}
	}
	return out
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// cacheKey converts a valid identifier (64 lowercase hex digits) into its bytes.
func cacheKey(id string) idKey {
	k, ok := parseIdentifier(id)
	if !ok {
		panic("cacheKey: not an identifier: " + id)
	}
	return k
}

// fresh is freshAll for one link.
func (f *linkFilter) fresh(k idKey, ext string, now int64, window uint32) bool {
	return f.freshAll([]idKey{k}, []string{ext}, now, window)[0]
}
