package dedupstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// miniStore returns a miniredis, a client on it and a store with fast backoff.
func miniStore(t *testing.T, opts ...Option) (*miniredis.Miniredis, *Redis) {
	t.Helper()
	m := miniredis.RunT(t)
	// One dial attempt per call, so the store's own retries (what is under test) happen.
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	base := []Option{WithBackoff(5*time.Millisecond, 50*time.Millisecond), WithLogger(quiet), WithOwner("test")}
	return m, NewRedis(c, append(base, opts...)...)
}

// TestRedisBlocksWhileDown: in the default mode nothing proceeds unchecked; each call
// retries until its context ends, and completes once Redis is back.
func TestRedisBlocksWhileDown(t *testing.T) {
	key := Key{PixelID: "1", EventName: "Purchase", EventID: "down"}
	tests := []struct {
		name string
		call func(ctx context.Context, s *Redis, c Claim) error
	}{
		{"claim", func(ctx context.Context, s *Redis, _ Claim) error {
			rs, err := s.Claim(ctx, []Key{{PixelID: "1", EventName: "Purchase", EventID: "other"}})
			if err == nil && rs[0].Status != Claimed {
				return errors.New("claim after recovery: status " + rs[0].Status.String())
			}
			return err
		}},
		{"confirm", func(ctx context.Context, s *Redis, c Claim) error { return s.Confirm(ctx, []Claim{c}) }},
		{"release", func(ctx context.Context, s *Redis, c Claim) error { return s.Release(ctx, []Claim{c}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, s := miniStore(t)
			rs, err := s.Claim(ctxT(t, 10*time.Second), []Key{key})
			if err != nil || rs[0].Status != Claimed {
				t.Fatalf("claim with Redis up: %v %v", rs, err)
			}
			claim := rs[0].Claim

			m.Close()
			const deadline = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			start := time.Now()
			err = tc.call(ctx, s, claim)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s with Redis down = %v, want context.DeadlineExceeded", tc.name, err)
			}
			if took := time.Since(start); took < deadline-10*time.Millisecond {
				t.Fatalf("%s gave up after %v, before its deadline %v", tc.name, took, deadline)
			}
			if st := s.Stats(); st.Errors == 0 || st.Retries == 0 || st.FailOpenClaims != 0 || st.FailOpenSkips != 0 {
				t.Fatalf("stats after blocking = %+v, want errors and retries only", st)
			}

			// Redis comes back while a call is blocked: the call completes.
			done := make(chan error, 1)
			go func() { done <- tc.call(ctxT(t, 10*time.Second), s, claim) }()
			time.Sleep(150 * time.Millisecond)
			select {
			case err := <-done:
				t.Fatalf("%s returned %v while Redis was down", tc.name, err)
			default:
			}
			if err := m.Restart(); err != nil {
				t.Fatalf("restart miniredis: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatalf("%s after Redis came back: %v", tc.name, err)
			}
			switch tc.name {
			case "confirm":
				if v, _ := m.Get(redisKey(DefaultPrefix, key)); v != valueSent {
					t.Fatalf("key holds %q after confirm, want %q", v, valueSent)
				}
			case "release":
				if m.Exists(redisKey(DefaultPrefix, key)) {
					t.Fatal("key still exists after release")
				}
			}
		})
	}
}

func TestRedisUnreachableBlocksUntilDeadline(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	s := NewRedis(c, WithBackoff(5*time.Millisecond, 20*time.Millisecond), WithLogger(quiet))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	rs, err := s.Claim(ctx, keysN("closed", 3))
	if !errors.Is(err, context.DeadlineExceeded) || rs != nil {
		t.Fatalf("Claim on a closed port = %v, %v; want nil, DeadlineExceeded", rs, err)
	}
}

func TestRedisFailOpen(t *testing.T) {
	m, s := miniStore(t, WithFailOpen())
	ctx := ctxT(t, 10*time.Second)
	sent := Key{PixelID: "1", EventName: "Purchase", EventID: "sent"}
	rs, err := s.Claim(ctx, []Key{sent})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Confirm(ctx, claimsOf(rs)); err != nil {
		t.Fatal(err)
	}
	// With Redis up, fail-open mode still answers honestly.
	if rs, err := s.Claim(ctx, []Key{sent}); err != nil || rs[0].Status != Duplicate {
		t.Fatalf("claim of a sent key with Redis up = %v, %v; want duplicate", rs, err)
	}

	m.Close()
	keys := append([]Key{sent}, keysN("open", 4)...)
	start := time.Now()
	rs, err = s.Claim(ctx, keys)
	if err != nil {
		t.Fatalf("fail-open Claim with Redis down: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("fail-open Claim took %v; it must not block", took)
	}
	for i, r := range rs {
		if r.Status != Claimed || !FailedOpen(r.Claim) || r.Claim.Key != keys[i] {
			t.Fatalf("result %d = %+v, want Claimed with a fail-open token", i, r)
		}
	}
	if got := s.Stats().FailOpenClaims; got != uint64(len(keys)) {
		t.Fatalf("FailOpenClaims = %d, want %d", got, len(keys))
	}
	if err := s.Confirm(ctx, claimsOf(rs)); err != nil {
		t.Fatalf("fail-open Confirm with Redis down: %v", err)
	}
	if err := s.Release(ctx, claimsOf(rs)); err != nil {
		t.Fatalf("fail-open Release with Redis down: %v", err)
	}
	// Confirms were attempted and dropped; releases of fail-open claims need no Redis.
	if st := s.Stats(); st.FailOpenSkips != uint64(len(keys)) || st.Errors == 0 || st.Retries != 0 {
		t.Fatalf("stats = %+v, want %d fail-open skips, some errors, no retries", st, len(keys))
	}

	// A caller giving up is still an error, not a licence to proceed.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Claim(cctx, keys); !errors.Is(err, context.Canceled) {
		t.Fatalf("fail-open Claim with a done context = %v, want context.Canceled", err)
	}

	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	rs, err = s.Claim(ctx, keys[:2])
	if err != nil || rs[0].Status != Duplicate || rs[1].Status != Claimed || FailedOpen(rs[1].Claim) {
		t.Fatalf("claims after recovery = %+v, %v; want duplicate, then a real claim", rs, err)
	}
}

// TestOneRoundTripPerBatch: every call is one pipeline of one command per key, whatever
// the batch size (two pipelines the first time a server lacks a script), on one server and
// on a cluster.
func TestOneRoundTripPerBatch(t *testing.T) {
	const n = 500
	clients := []struct {
		name   string
		client func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis)
		chunks bool // WithChunkScripts
	}{
		{"miniredis", func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis) {
			m := miniredis.RunT(t)
			return clientOf(t, "standalone", m), m
		}, false},
		{"miniredis-chunks", func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis) {
			m := miniredis.RunT(t)
			return clientOf(t, "standalone", m), m
		}, true},
		{"miniredis-cluster", func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis) {
			m := miniredis.RunT(t)
			return clientOf(t, "cluster", m), m
		}, true}, // asked for, but a cluster cannot have them
		{"redis", func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis) {
			c := realRedis(t)
			return redis.NewClient(&redis.Options{Addr: c.Options().Addr}), nil
		}, false},
		{"redis-chunks", func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis) {
			c := realRedis(t)
			return redis.NewClient(&redis.Options{Addr: c.Options().Addr}), nil
		}, true},
		{"redis-cluster", func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis) {
			c := realRedisCluster(t)
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Options().Addrs}), nil
		}, true}, // asked for, but a cluster cannot have them
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel()
			c, m := cl.client(t)
			t.Cleanup(func() { _ = c.Close() })
			prefix := testPrefix(t)
			deleteByPrefix(t, c, prefix)
			hook := &countHook{}
			c.AddHook(hook)
			opts := []Option{WithTTL(time.Minute)}
			if cl.chunks {
				opts = append(opts, WithChunkScripts())
			}
			s := NewRedis(c, append([]Option{WithPrefix(prefix + "dedup:")}, opts...)...)
			idm := NewRedisIdentityMap(c, append([]Option{WithPrefix(prefix + "idmap:")}, opts...)...)
			// Lookups come from another replica: idm's cache would answer them without Redis.
			idmOther := NewRedisIdentityMap(c, WithPrefix(prefix+"idmap:"), WithTTL(time.Minute))
			if want := oneServer(c) && cl.chunks; s.core.chunked != want || idm.core.chunked != want {
				t.Fatalf("chunk scripts on: store %v, identity map %v; want %v", s.core.chunked, idm.core.chunked, want)
			}
			// With chunk scripts on one server, claims, confirms and links go by chunk;
			// otherwise, and for releases and lookups always, by key.
			byChunk := func(n int) int {
				if s.core.chunked {
					return (n + scriptChunk - 1) / scriptChunk
				}
				return n
			}
			ctx := ctxT(t, 30*time.Second)

			// A server that has never seen a script answers NOSCRIPT: one more round trip
			// with EVAL, and correct results. Claims by key need no script (SET NX GET);
			// claims by chunk do. Each node of a cluster keeps its own scripts, so the
			// releases that warm them up span 63 keys: all three masters, but for a chance
			// of 3 × (2/3)^63.
			warm := keysN("warm", 64)
			rs, err := s.Claim(ctx, warm)
			if err != nil || len(claimsOf(rs)) != len(warm) {
				t.Fatalf("cold claim = %v, %v", statuses(rs), err)
			}
			coldClaim := int64(1)
			if s.core.chunked {
				coldClaim = 2
			}
			// The development Redis may have the scripts from earlier tests.
			if p := hook.pipelines.Load(); p != coldClaim && (m != nil || p != 1) {
				t.Fatalf("cold claim used %d pipelines, want %d", p, coldClaim)
			}
			if err := s.Confirm(ctx, claimsOf(rs)[:1]); err != nil {
				t.Fatal(err)
			}
			hook.reset()
			if err := s.Release(ctx, claimsOf(rs)[1:]); err != nil {
				t.Fatal(err)
			}
			if m != nil && hook.pipelines.Load() != 2 {
				t.Fatalf("cold release on a fresh server used %d pipelines, want 2 (EVALSHA, then EVAL)", hook.pipelines.Load())
			}
			if rs, err := s.Claim(ctx, warm); err != nil || rs[0].Status != Duplicate || len(claimsOf(rs)) != len(warm)-1 {
				t.Fatalf("claim after confirming 1 and releasing %d = %v, %v", len(warm)-1, statuses(rs), err)
			}

			keys := keysN("batch", n)
			var claims []Claim
			var ids []string
			for i := range n {
				ids = append(ids, strings.Repeat("0", 56)+hexN(i, 8))
			}
			queries := make([][]string, n)
			for i := range queries {
				queries[i] = []string{ids[i]}
			}
			steps := []struct {
				name string
				call func() error
				cmds int // commands in the pipeline
			}{
				{"claim", func() error {
					rs, err := s.Claim(ctx, keys)
					claims = claimsOf(rs)
					if err == nil && len(claims) != n {
						err = errors.New("not all keys claimed")
					}
					return err
				}, byChunk(n)},
				{"confirm", func() error { return s.Confirm(ctx, claims) }, byChunk(n)},
				{"claim duplicates", func() error {
					rs, err := s.Claim(ctx, keys)
					if err == nil && len(claimsOf(rs)) != 0 {
						err = errors.New("confirmed keys claimed again")
					}
					return err
				}, byChunk(n)},
				{"release", func() error { return s.Release(ctx, claims) }, n},
				{"remember", func() error {
					return idm.Remember(ctx, []IdentityLink{{Identifiers: ids, ExternalID: "ext"}})
				}, byChunk(n)},
				{"lookup", func() error {
					got, err := idmOther.Lookup(ctx, queries)
					if err == nil && (len(got) != n || got[0] != "ext" || got[n-1] != "ext") {
						err = errors.New("lookup lost links")
					}
					return err
				}, n},
			}
			for _, st := range steps {
				hook.reset()
				if err := st.call(); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if p, single, pc := hook.pipelines.Load(), hook.commands.Load(), hook.pipelinedCommands.Load(); p != 1 || single != 0 || pc != int64(st.cmds) {
					t.Errorf("%s of %d: %d pipelines (%d commands) + %d single commands; want 1 pipeline of %d",
						st.name, n, p, pc, single, st.cmds)
				}
			}
		})
	}
}

// TestClusterSpreadsKeys: on a real cluster of three masters, one batch's keys land on every
// master, so each call's pipeline is split by node, and the protocol still holds across them:
// claims, lease renewal, confirms, releases and identity links.
func TestClusterSpreadsKeys(t *testing.T) {
	const n = 300
	c := realRedisCluster(t)
	prefix := testPrefix(t)
	deleteByPrefix(t, c, prefix)
	ctx := ctxT(t, 30*time.Second)
	s := NewRedis(c, WithPrefix(prefix+"dedup:"), WithTTL(time.Minute), WithChunkScripts())
	other := NewRedis(c, WithPrefix(prefix+"dedup:"), WithTTL(time.Minute), WithOwner("other"))
	idm := NewRedisIdentityMap(c, WithPrefix(prefix+"idmap:"), WithTTL(time.Minute))
	idmOther := NewRedisIdentityMap(c, WithPrefix(prefix+"idmap:"), WithTTL(time.Minute))

	keys := keysN("spread", n)
	rs, err := s.Claim(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	claims := claimsOf(rs)
	if len(claims) != n {
		t.Fatalf("claimed %d of %d fresh keys", len(claims), n)
	}
	perMaster := keysPerMaster(t, c, prefix+"dedup:")
	if len(perMaster) != 3 {
		t.Fatalf("keys on %d masters (%v), want 3: is REDIS_CLUSTER_ADDRS a cluster of three masters?", len(perMaster), perMaster)
	}
	total := 0
	for addr, k := range perMaster {
		// Three masters of about 5,461 slots each: 300 keys leave each far more than 10.
		if k < 10 {
			t.Errorf("master %s holds %d of %d keys", addr, k, n)
		}
		total += k
	}
	if total != n {
		t.Errorf("masters hold %d keys in all, want %d", total, n)
	}

	lost, err := s.Extend(ctx, claims)
	if err != nil || len(lost) != 0 {
		t.Fatalf("extend: lost %d, %v", len(lost), err)
	}
	if rs, err := other.Claim(ctx, keys); err != nil || len(claimsOf(rs)) != 0 {
		t.Fatalf("another owner claimed %d leased keys, %v", len(claimsOf(rs)), err)
	}
	if err := s.Confirm(ctx, claims[:n-100]); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, claims[n-100:]); err != nil {
		t.Fatal(err)
	}
	rs, err = other.Claim(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]Status, n)
	for i := range want {
		want[i] = Duplicate
		if i >= n-100 {
			want[i] = Claimed
		}
	}
	if got := statuses(rs); !slices.Equal(got, want) {
		t.Fatalf("after confirming %d and releasing 100, claims by another owner = %v", n-100, got)
	}

	ids := make([]string, n)
	queries := make([][]string, n)
	for i := range ids {
		ids[i] = strings.Repeat("a", 56) + hexN(i, 8)
		queries[i] = []string{ids[i]}
	}
	if err := idm.Remember(ctx, []IdentityLink{{Identifiers: ids, ExternalID: "crm-42"}}); err != nil {
		t.Fatal(err)
	}
	got, err := idmOther.Lookup(ctx, queries)
	if err != nil {
		t.Fatal(err)
	}
	for i, ext := range got {
		if ext != "crm-42" {
			t.Fatalf("lookup %d of %d = %q, want crm-42", i, n, ext)
		}
	}
}

func hexN(i, width int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, width)
	for j := width - 1; j >= 0; j-- {
		b[j] = digits[i&15]
		i >>= 4
	}
	return string(b)
}

// TestKeysHoldNoRawIDs: Redis must never see event ids or identifiers in clear.
func TestKeysHoldNoRawIDs(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	ctx := ctxT(t, 10*time.Second)
	s := NewRedis(c)
	if _, err := s.Claim(ctx, []Key{{PixelID: "555000111", EventName: "Purchase", EventID: "order-SECRET-42"}}); err != nil {
		t.Fatal(err)
	}
	idm := NewRedisIdentityMap(c, WithLogger(quiet))
	hashed := strings.Repeat("ab", 32)
	if err := idm.Remember(ctx, []IdentityLink{{Identifiers: []string{hashed, "jane@example.com", "+15551234567"}, ExternalID: "cust-7"}}); err != nil {
		t.Fatal(err)
	}
	if got := idm.Stats().InvalidIdentifiers; got != 2 {
		t.Errorf("InvalidIdentifiers = %d, want 2", got)
	}
	dedupKey := regexp.MustCompile(`^` + regexp.QuoteMeta(DefaultPrefix) + `[0-9a-f]{32}$`)
	want := map[string]bool{DefaultIdentityPrefix + hashed: false}
	for _, k := range m.Keys() {
		if _, ok := want[k]; ok {
			want[k] = true
			continue
		}
		if !dedupKey.MatchString(k) {
			t.Errorf("unexpected key %q", k)
		}
		for _, raw := range []string{"SECRET", "555000111", "Purchase", "jane", "5551234567"} {
			if strings.Contains(k, raw) {
				t.Errorf("key %q contains raw %q", k, raw)
			}
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("key %q missing", k)
		}
	}
	if len(m.Keys()) != 2 {
		t.Errorf("keys = %q, want one dedup key and one identity key", m.Keys())
	}
}

// TestClaimRetryFindsOwnLease: a claim re-run after its reply was lost (our retry or
// go-redis's) must see its own lease as Claimed, not Held, or the event would stall for a
// whole lease.
func TestClaimRetryFindsOwnLease(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	ctx := ctxT(t, 10*time.Second)
	tests := []struct {
		lease string
		want  int64
	}{
		{"lease:t1", 1},
		{"lease:t1", 1}, // the retry
		{"lease:t2", 3}, // someone else
	}
	for i, tc := range tests {
		if i == 1 {
			m.FastForward(20 * time.Second)
		}
		got, err := claimScript.Run(ctx, c, []string{"k"}, tc.lease, 30000).Int64()
		if err != nil || got != tc.want {
			t.Fatalf("attempt %d with %s = %d, %v; want %d", i, tc.lease, got, err, tc.want)
		}
	}
	// The retry restarted the lease: the caller's send starts only now.
	if ttl := m.TTL("k"); ttl != 30*time.Second {
		t.Fatalf("lease TTL after retry = %v, want 30s", ttl)
	}
}

// TestClaimKeyReuse: Confirm and Release use the storage key Claim computed, and still find
// the key for a claim built by hand (no cached key) or cached under another prefix.
func TestClaimKeyReuse(t *testing.T) {
	ctx := ctxT(t, 5*time.Second)
	m, s := miniStore(t)
	_, other := miniStore(t, WithPrefix("other:"))
	keys := []Key{{PixelID: "1", EventName: "Purchase", EventID: "cached"},
		{PixelID: "1", EventName: "Purchase", EventID: "by-hand"},
		{PixelID: "1", EventName: "Purchase", EventID: "foreign"}}
	rs, err := s.Claim(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	ors, err := other.Claim(ctx, keys[2:])
	if err != nil {
		t.Fatal(err)
	}
	byHand := Claim{Key: rs[1].Claim.Key, Token: rs[1].Claim.Token}
	foreign := ors[0].Claim
	foreign.Token = rs[2].Claim.Token // our lease, with the other store's cached key
	if err := s.Confirm(ctx, []Claim{rs[0].Claim, byHand, foreign}); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if v, _ := m.Get(redisKey(DefaultPrefix, k)); v != valueSent {
			t.Errorf("key %s holds %q after Confirm, want %q", k.EventID, v, valueSent)
		}
	}
	if n := len(m.Keys()); n != len(keys) {
		t.Errorf("%d keys after Confirm, want %d: a claim's key went astray", n, len(keys))
	}
}

// TestExpirySent: Claim, Confirm and Remember give their keys the configured lease and
// TTLs, in whole seconds or in milliseconds.
func TestExpirySent(t *testing.T) {
	for _, ttl := range []time.Duration{7 * 24 * time.Hour, 90 * time.Second, 1500 * time.Millisecond, 300 * time.Millisecond} {
		t.Run(ttl.String(), func(t *testing.T) {
			ctx := ctxT(t, 5*time.Second)
			lease := ttl / 3
			m, s := miniStore(t, WithTTL(ttl), WithLease(lease))
			keys := []Key{{PixelID: "1", EventName: "Purchase", EventID: "a"}, {PixelID: "1", EventName: "Purchase", EventID: "b"}}
			rs, err := s.Claim(ctx, keys)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.TTL(redisKey(DefaultPrefix, keys[0])); got != lease.Truncate(time.Millisecond) {
				t.Errorf("lease TTL = %v, want %v", got, lease)
			}
			if err := s.Confirm(ctx, claimsOf(rs)); err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if got := m.TTL(redisKey(DefaultPrefix, k)); got != ttl {
					t.Errorf("confirmed key TTL = %v, want %v", got, ttl)
				}
			}
			c := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { _ = c.Close() })
			idm := NewRedisIdentityMap(c, WithTTL(ttl), WithLogger(quiet))
			id := strings.Repeat("ab", 32)
			if err := idm.Remember(ctx, []IdentityLink{{Identifiers: []string{id}, ExternalID: "crm-1"}}); err != nil {
				t.Fatal(err)
			}
			if got := m.TTL(DefaultIdentityPrefix + id); got != ttl {
				t.Errorf("identity link TTL = %v, want %v", got, ttl)
			}
		})
	}
}
