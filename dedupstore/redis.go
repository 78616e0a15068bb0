package dedupstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Claim takes each lease with SET key lease PX ms NX GET (Redis 7.0 and later): it sets the
// key only if absent and replies with the value it found, nil when it set. One plain
// command costs the server a fraction of a one-key script's EVALSHA. (With WithChunkScripts
// on one server, a script over chunks of keys does the same and reads each reply below in
// Lua; see chunks.go.) What the reply means:
//
//   - nil: the key was free and now holds our lease: Claimed.
//   - "sent": Duplicate.
//   - our own lease: a retry (ours or go-redis's) of an attempt whose reply was lost after
//     the server ran it: Claimed. The lease is restarted (with extendScript, or inside the
//     chunk script), since the caller's send only starts once Claim returns. Outside chunk
//     scripts this costs a second round trip, but only after a lost reply.
//   - anything else (another claim's lease): Held.
//
// Servers that reject NX with GET (before 7.0: "ERR syntax error") get claimScript, which
// does the same in Lua, from the first such reply on.

// claimScript takes the lease if the key is free. Replies: 1 Claimed, 2 Duplicate, 3 Held.
// Finding our own lease counts as Claimed, and restarts the lease, as explained above.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if v == 'sent' then
  return 2
end
return 3
`)

// releaseScript deletes the key only while it still holds our lease: after our lease
// expired, another claim may hold the key, and deleting its lease would let a third
// sender in while it sends.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// extendScript restarts the lease only while the key still holds it. Replies 1 or 0.
var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// Redis is the Store backed by Redis (standalone, Sentinel or Cluster). Each call costs one
// pipelined round trip (two the first time a server sees the scripts, or when a claim's
// reply was lost and its lease must be restarted outside chunk scripts). Safe for
// concurrent use.
type Redis struct {
	core   redisCore
	tokens *tokenSource
	// scriptClaim is set once the server has rejected SET NX GET: Claim uses claimScript
	// from then on.
	scriptClaim atomic.Bool
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client. It does no I/O; Redis errors surface in calls.
func NewRedis(client redis.UniversalClient, opts ...Option) *Redis {
	cfg := newConfig(DefaultPrefix, DefaultTTL, opts)
	return &Redis{
		core:   newRedisCore(client, cfg),
		tokens: newTokenSource(cfg.owner),
	}
}

// Lease is the configured lease duration, for checking it against the sink's timeout.
func (r *Redis) Lease() time.Duration { return r.core.cfg.lease }

// Stats returns the error and fail-open counters.
func (r *Redis) Stats() Stats { return r.core.stats.snapshot() }

// Claim implements Store. A key given twice in one batch is Claimed once and Held
// otherwise, as if claimed by two callers. In fail-open mode, keys Redis could not answer
// for are Claimed with a token FailedOpen reports; keys it did answer for keep their status.
// On error (ctx done while Redis fails) some keys may have been leased; those leases expire.
func (r *Redis) Claim(ctx context.Context, keys []Key) ([]Result, error) {
	if len(keys) == 0 {
		return []Result{}, nil
	}
	prefix := r.core.cfg.prefix
	leaseMS := r.core.cfg.lease.Milliseconds()
	rkeys := make([]string, len(keys))
	leases := make([]string, len(keys))
	results := make([]Result, len(keys))
	for i, k := range keys {
		rkeys[i] = redisKey(prefix, k)
		leases[i] = r.tokens.nextLease()
		results[i].Claim = Claim{Key: k, Token: leases[i][len(leasePrefix):], storageKey: rkeys[i]}
	}

	failed, err := r.core.run(ctx, "claim", len(keys), func(ctx context.Context, pending []int) ([]int, error) {
		if r.core.chunked {
			return r.claimByChunks(ctx, pending, rkeys, leases, leaseMS, results)
		}
		if r.scriptClaim.Load() {
			return r.claimByScript(ctx, pending, rkeys, leases, leaseMS, results)
		}
		return r.claimBySet(ctx, pending, rkeys, leases, leaseMS, results)
	})
	if err != nil {
		return nil, err
	}
	for _, i := range failed {
		results[i] = Result{Status: Claimed, Claim: Claim{Key: keys[i], Token: r.tokens.nextFailOpen()}}
	}
	r.core.stats.failOpenClaims.Add(uint64(len(failed)))
	for i := range results {
		if results[i].Status != Claimed {
			results[i].Claim = Claim{}
		}
	}
	return results, nil
}

// claimBySet is one claim attempt with SET NX GET; see Claim's comment for the replies.
func (r *Redis) claimBySet(ctx context.Context, pending []int, rkeys, leases []string, leaseMS int64,
	results []Result,
) ([]int, error) {
	cmds := make([]*redis.StringCmd, len(pending))
	pipe := r.core.client.Pipeline()
	// One argument array for the whole pipeline, the lease boxed once, and key and value
	// passed as *string (go-redis writes and routes those as strings): five allocations
	// per key fewer than a plain argument list.
	const argc = 7
	args := make([]any, argc*len(pending))
	// Every argument goes out as a bulk string; formatting the number once here rather
	// than once per command (go-redis's int case) sends the same bytes.
	ms := any(strconv.FormatInt(leaseMS, 10))
	for j, i := range pending {
		a := args[argc*j : argc*(j+1) : argc*(j+1)]
		a[0], a[1], a[2], a[3], a[4], a[5], a[6] = "set", &rkeys[i], &leases[i], "px", ms, "nx", "get"
		cmds[j] = redis.NewStringCmd(ctx, a...)
		_ = pipe.Process(ctx, cmds[j]) // queues; errors come with Exec
	}
	_, _ = pipe.Exec(ctx) // Errors are per command; inspected below.

	var failed, unsupported, own []int
	var firstErr error
	for j, i := range pending {
		v, err := cmds[j].Result()
		// err == nil first: HasErrorPrefix allocates even for a nil error.
		switch {
		case err == nil && v == leases[i]:
			own = append(own, i)
		case err == nil && v == valueSent:
			results[i].Status = Duplicate
		case err == nil:
			results[i].Status = Held
		case errors.Is(err, redis.Nil):
			results[i].Status = Claimed
		case redis.HasErrorPrefix(err, "syntax error"):
			unsupported = append(unsupported, i)
		default:
			failed = append(failed, i)
			firstErr = cmp.Or(firstErr, err)
		}
	}
	if len(unsupported) > 0 {
		// Nothing was set by the rejected commands, so the script may run them afresh.
		r.scriptClaim.Store(true)
		f, err := r.claimByScript(ctx, unsupported, rkeys, leases, leaseMS, results)
		failed = append(failed, f...)
		firstErr = cmp.Or(firstErr, err)
	}
	if len(own) > 0 {
		cmds := r.core.evalPipeline(ctx, extendScript, own, func(i int) (string, []any) {
			return rkeys[i], []any{leases[i], leaseMS}
		})
		for j, i := range own {
			n, err := cmds[j].Int64()
			if err == nil && n == 0 {
				// The lease lapsed between the two commands. The next attempt's SET finds
				// out what holds the key now.
				err = errors.New("claim lease lapsed before it could be restarted")
			}
			if err != nil {
				failed = append(failed, i)
				firstErr = cmp.Or(firstErr, err)
				continue
			}
			results[i].Status = Claimed
		}
	}
	return failed, firstErr
}

// claimByScript is one claim attempt with claimScript.
func (r *Redis) claimByScript(ctx context.Context, pending []int, rkeys, leases []string, leaseMS int64,
	results []Result,
) ([]int, error) {
	cmds := r.core.evalPipeline(ctx, claimScript, pending, func(i int) (string, []any) {
		return rkeys[i], []any{leases[i], leaseMS}
	})
	var failed []int
	var firstErr error
	for j, i := range pending {
		n, err := cmds[j].Int64()
		if err == nil {
			results[i].Status, err = claimStatus(n)
		}
		if err != nil {
			failed = append(failed, i)
			firstErr = cmp.Or(firstErr, err)
		}
	}
	return failed, firstErr
}

// claimStatus is what the claim scripts' reply n means: 1 Claimed, 2 Duplicate, 3 Held.
func claimStatus(n int64) (Status, error) {
	switch n {
	case 1:
		return Claimed, nil
	case 2:
		return Duplicate, nil
	case 3:
		return Held, nil
	}
	return 0, fmt.Errorf("claim script replied %d", n)
}

// keyOf is c's storage key: the one Claim computed when c came from it, else computed now.
func (r *Redis) keyOf(c Claim) string {
	prefix := r.core.cfg.prefix
	if k := c.storageKey; len(k) == len(prefix)+2*keyHashBytes && k[:len(prefix)] == prefix {
		return k
	}
	return redisKey(prefix, c.Key)
}

// Confirm implements Store. It overwrites whatever the key holds, including another
// claim's lease: the event has been sent, so every other holder must now see Duplicate.
func (r *Redis) Confirm(ctx context.Context, claims []Claim) error {
	if len(claims) == 0 {
		return nil
	}
	rkeys := make([]string, len(claims))
	for i, c := range claims {
		rkeys[i] = r.keyOf(c)
	}
	ttl := r.core.cfg.ttl
	sent := valueSent // addressable, for passing by pointer
	failed, err := r.core.run(ctx, "confirm", len(claims), func(ctx context.Context, pending []int) ([]int, error) {
		return r.core.setKeys(ctx, pending, rkeys, func(int) *string { return &sent }, true, ttl)
	})
	if err != nil {
		return err
	}
	r.core.stats.failOpenSkips.Add(uint64(len(failed)))
	return nil
}

// setPipeline runs SET key value with expiry ttl for each pending index in one pipeline,
// with the arguments laid out as in claimBySet: one array for all, keys and values by
// pointer, the expiry boxed once. The expiry is sent as go-redis's Set sends it: EX for
// whole seconds, PX otherwise, none for ttl <= 0.
func setPipeline(ctx context.Context, client redis.UniversalClient, pending []int, keys []string,
	value func(i int) *string, ttl time.Duration,
) []*redis.StatusCmd {
	pipe := client.Pipeline()
	cmds := make([]*redis.StatusCmd, len(pending))
	unit, n := expiryArgs(ttl)
	argc := 5
	if ttl <= 0 {
		argc = 3
	}
	args := make([]any, argc*len(pending))
	for j, i := range pending {
		a := args[argc*j : argc*(j+1) : argc*(j+1)]
		a[0], a[1], a[2] = "set", &keys[i], value(i)
		if argc == 5 {
			a[3], a[4] = unit, n
		}
		cmds[j] = redis.NewStatusCmd(ctx, a...)
		_ = pipe.Process(ctx, cmds[j])
	}
	_, _ = pipe.Exec(ctx)
	return cmds
}

// expiryArgs is how go-redis's Set sends ttl: EX for whole seconds, PX otherwise, and ""
// for none (ttl <= 0). The number is formatted once, as in claimBySet, and boxed once.
func expiryArgs(ttl time.Duration) (unit, n any) {
	switch {
	case ttl <= 0:
		return "", ""
	case ttl < time.Second || ttl%time.Second != 0:
		return "px", strconv.FormatInt(ttl.Milliseconds(), 10)
	default:
		return "ex", strconv.FormatInt(int64(ttl/time.Second), 10)
	}
}

// Release implements Store. Claims granted in fail-open mode are skipped: no lease stands
// behind them.
func (r *Redis) Release(ctx context.Context, claims []Claim) error {
	var rkeys, leases []string
	for _, c := range claims {
		if FailedOpen(c) {
			continue
		}
		rkeys = append(rkeys, r.keyOf(c))
		leases = append(leases, leasePrefix+c.Token)
	}
	if len(rkeys) == 0 {
		return nil
	}
	failed, err := r.core.run(ctx, "release", len(rkeys), func(ctx context.Context, pending []int) ([]int, error) {
		cmds := r.core.evalPipeline(ctx, releaseScript, pending, func(i int) (string, []any) {
			return rkeys[i], []any{leases[i]}
		})
		return collectFailed(pending, cmds)
	})
	if err != nil {
		return err
	}
	r.core.stats.failOpenSkips.Add(uint64(len(failed)))
	return nil
}

// Extend implements Store. Claims granted in fail-open mode are skipped: no lease stands
// behind them.
func (r *Redis) Extend(ctx context.Context, claims []Claim) ([]Claim, error) {
	var rkeys, leases []string
	var asked []Claim
	for _, c := range claims {
		if FailedOpen(c) {
			continue
		}
		rkeys = append(rkeys, r.keyOf(c))
		leases = append(leases, leasePrefix+c.Token)
		asked = append(asked, c)
	}
	if len(rkeys) == 0 {
		return nil, nil
	}
	leaseMS := r.core.cfg.lease.Milliseconds()
	lost := make([]bool, len(rkeys))
	failed, err := r.core.run(ctx, "extend", len(rkeys), func(ctx context.Context, pending []int) ([]int, error) {
		cmds := r.core.evalPipeline(ctx, extendScript, pending, func(i int) (string, []any) {
			return rkeys[i], []any{leases[i], leaseMS}
		})
		var failed []int
		var firstErr error
		for j, i := range pending {
			n, err := cmds[j].Int64()
			if err != nil {
				failed = append(failed, i)
				firstErr = cmp.Or(firstErr, err)
				continue
			}
			lost[i] = n == 0
		}
		return failed, firstErr
	})
	if err != nil {
		return nil, err
	}
	r.core.stats.failOpenSkips.Add(uint64(len(failed)))
	var out []Claim
	for i, l := range lost {
		if l {
			out = append(out, asked[i])
		}
	}
	return out, nil
}

// collectFailed returns the pending indexes whose command failed, with the first error.
// redis.Nil is no failure: it is how a GET of an absent key answers.
func collectFailed[C interface{ Err() error }](pending []int, cmds []C) ([]int, error) {
	var failed []int
	var firstErr error
	for j, i := range pending {
		if err := cmds[j].Err(); err != nil && !errors.Is(err, redis.Nil) {
			failed = append(failed, i)
			firstErr = cmp.Or(firstErr, err)
		}
	}
	return failed, firstErr
}
