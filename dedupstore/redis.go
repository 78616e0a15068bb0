package dedupstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimScript takes the lease if the key is free. Replies: 1 Claimed, 2 Duplicate, 3 Held.
// Finding our own lease counts as Claimed: that is a retry (ours or go-redis's) of an
// attempt whose reply was lost after the server ran it. The lease is then restarted, since
// the caller's send only starts once Claim returns.
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
// pipelined round trip (two the first time a server sees the scripts). Safe for concurrent
// use.
type Redis struct {
	core   redisCore
	tokens *tokenSource
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client. It does no I/O; Redis errors surface in calls.
func NewRedis(client redis.UniversalClient, opts ...Option) *Redis {
	cfg := newConfig(DefaultPrefix, DefaultTTL, opts)
	return &Redis{
		core:   redisCore{client: client, cfg: cfg},
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
		tok := r.tokens.next()
		rkeys[i] = redisKey(prefix, k)
		leases[i] = leasePrefix + tok
		results[i].Claim = Claim{Key: k, Token: tok}
	}

	failed, err := r.core.run(ctx, "claim", len(keys), func(ctx context.Context, pending []int) ([]int, error) {
		cmds := r.core.evalPipeline(ctx, claimScript, pending, func(i int) (string, []any) {
			return rkeys[i], []any{leases[i], leaseMS}
		})
		var failed []int
		var firstErr error
		for j, i := range pending {
			n, err := cmds[j].Int64()
			if err == nil {
				switch n {
				case 1:
					results[i].Status = Claimed
				case 2:
					results[i].Status = Duplicate
				case 3:
					results[i].Status = Held
				default:
					err = fmt.Errorf("claim script replied %d", n)
				}
			}
			if err != nil {
				failed = append(failed, i)
				firstErr = cmp.Or(firstErr, err)
			}
		}
		return failed, firstErr
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

// Confirm implements Store. It overwrites whatever the key holds, including another
// claim's lease: the event has been sent, so every other holder must now see Duplicate.
func (r *Redis) Confirm(ctx context.Context, claims []Claim) error {
	if len(claims) == 0 {
		return nil
	}
	rkeys := make([]string, len(claims))
	for i, c := range claims {
		rkeys[i] = redisKey(r.core.cfg.prefix, c.Key)
	}
	ttl := r.core.cfg.ttl
	failed, err := r.core.run(ctx, "confirm", len(claims), func(ctx context.Context, pending []int) ([]int, error) {
		pipe := r.core.client.Pipeline()
		cmds := make([]*redis.StatusCmd, len(pending))
		for j, i := range pending {
			cmds[j] = pipe.Set(ctx, rkeys[i], valueSent, ttl)
		}
		_, _ = pipe.Exec(ctx)
		return collectFailed(pending, cmds)
	})
	if err != nil {
		return err
	}
	r.core.stats.failOpenSkips.Add(uint64(len(failed)))
	return nil
}

// Release implements Store. Claims granted in fail-open mode are skipped: no lease stands
// behind them.
func (r *Redis) Release(ctx context.Context, claims []Claim) error {
	var rkeys, leases []string
	for _, c := range claims {
		if FailedOpen(c) {
			continue
		}
		rkeys = append(rkeys, redisKey(r.core.cfg.prefix, c.Key))
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
func (r *Redis) Extend(ctx context.Context, claims []Claim) (int, error) {
	var rkeys, leases []string
	for _, c := range claims {
		if FailedOpen(c) {
			continue
		}
		rkeys = append(rkeys, redisKey(r.core.cfg.prefix, c.Key))
		leases = append(leases, leasePrefix+c.Token)
	}
	if len(rkeys) == 0 {
		return 0, nil
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
		return 0, err
	}
	r.core.stats.failOpenSkips.Add(uint64(len(failed)))
	n := 0
	for _, l := range lost {
		if l {
			n++
		}
	}
	return n, nil
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
