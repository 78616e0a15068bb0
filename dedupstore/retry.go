package dedupstore

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisCore is what the Redis store and identity map share: the client, the configuration,
// the error policy and its counters.
type redisCore struct {
	client redis.UniversalClient
	cfg    config
	stats  counters
	// chunked: WithChunkScripts was given and the client reaches one server, so claims and
	// writes go by chunk script (see chunks.go) rather than one command per key.
	chunked bool
}

// newRedisCore derives chunked from the option and the kind of client, for both stores.
func newRedisCore(client redis.UniversalClient, cfg config) redisCore {
	return redisCore{client: client, cfg: cfg, chunked: cfg.chunks && oneServer(client)}
}

// attemptFunc makes one round trip for the entries at the indexes in pending and returns
// the indexes whose outcome is unknown, with one of their errors.
type attemptFunc func(ctx context.Context, pending []int) (failed []int, err error)

// run resolves n entries with attempt. Entries that fail are retried on their own, so an
// attempt that half-succeeded (a cluster node down, say) keeps what it got; attempts are
// idempotent for that reason.
//
// In block mode run retries with exponential, jittered backoff until every entry succeeded
// or ctx is done; the error then wraps ctx's error. In fail-open mode it makes one attempt
// and returns the failed indexes with a nil error for the caller to resolve blindly; go-redis
// has already retried network errors underneath. A done ctx is an error in both modes: the
// caller is giving up, not asking to proceed unchecked.
func (c *redisCore) run(ctx context.Context, op string, n int, attempt attemptFunc) ([]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dedupstore: %s of %d entries not attempted: %w", op, n, err)
	}
	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	delay := c.cfg.backoffMin
	for try := 1; ; try++ {
		failed, err := attempt(ctx, pending)
		if len(failed) == 0 {
			return nil, nil
		}
		c.stats.errors.Add(1)
		err = cmp.Or(err, fmt.Errorf("unknown error"))
		if ctxErr := ctx.Err(); ctxErr != nil {
			return failed, fmt.Errorf("dedupstore: %s: %d of %d entries unresolved after %d attempts: %w (last error: %w)",
				op, len(failed), n, try, ctxErr, err)
		}
		if c.cfg.failOpen {
			c.cfg.logger.WarnContext(ctx, "dedupstore: Redis failed; failing open",
				"op", op, "failed", len(failed), "batch", n, "error", err)
			return failed, nil
		}

		// Equal jitter: at least half the delay, so a fleet of consumers hammering a
		// recovering Redis spreads out without any of them spinning.
		sleep := delay/2 + rand.N(delay/2+1)
		c.cfg.logger.WarnContext(ctx, "dedupstore: Redis failed; retrying",
			"op", op, "failed", len(failed), "batch", n, "attempt", try, "retry_in", sleep, "error", err)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return failed, fmt.Errorf("dedupstore: %s: %d of %d entries unresolved after %d attempts: %w (last error: %w)",
				op, len(failed), n, try, ctx.Err(), err)
		case <-t.C:
		}
		c.stats.retries.Add(1)
		pending = failed
		delay = min(2*delay, c.cfg.backoffMax)
	}
}

// evalPipeline runs script once per pending entry, all in one pipeline: one round trip, and
// on a cluster go-redis splits the pipeline per node, which a single multi-key script could
// not survive. EVALSHA saves sending the script each time; entries that hit NOSCRIPT (new
// server, failover, SCRIPT FLUSH) did not run and are re-sent with EVAL, which also caches
// the script for next time.
func (c *redisCore) evalPipeline(ctx context.Context, script *redis.Script, pending []int,
	argsOf func(i int) (key string, args []any),
) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(pending))
	pipe := c.client.Pipeline()
	for j, i := range pending {
		key, args := argsOf(i)
		cmds[j] = script.EvalSha(ctx, pipe, []string{key}, args...)
	}
	_, _ = pipe.Exec(ctx) // Errors are per command; callers inspect each.

	var missing []int
	for j, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			missing = append(missing, j)
		}
	}
	if len(missing) > 0 {
		pipe := c.client.Pipeline()
		for _, j := range missing {
			key, args := argsOf(pending[j])
			cmds[j] = script.Eval(ctx, pipe, []string{key}, args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	return cmds
}
