package dedupstore

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Chunk scripts (WithChunkScripts). On a client of one server (*redis.Client: standalone, or
// a Sentinel master) a claim or a write can cover up to scriptChunk keys with one script call
// instead of one command per key. The client then builds, writes and parses one command per
// chunk instead of one per key: go-redis's cost per command is most of what claiming and
// confirming cost the relay, and BenchmarkRedisClaim500 spends half the client CPU per key.
// The server pays for it: each redis.call from Lua costs it more than the same command read
// from a pipeline, 20–50% more CPU per key in the same benchmark. Redis is the part of the
// deployment that does not scale out, and on the benchmark's machine the two costs about
// cancel, so one command per key stays the default. A cluster or ring spreads keys over
// nodes, which one script cannot span (CROSSSLOT), so their clients always send one command
// per key, in one pipeline that go-redis splits per node.

// scriptChunk is the most keys one script call covers. A script holds the server while it
// runs, as MULTI/EXEC would: at a few microseconds per key on a loaded machine, a chunk keeps
// other clients waiting well under a millisecond.
const scriptChunk = 128

// claimChunkSrc claims KEYS[i] with lease value ARGV[i+1] for ARGV[1] ms each. Replies one
// status per key: 1 Claimed, 2 Duplicate, 3 Held. SET NX works on every Redis version, and
// the GET that follows a refused SET sees the same key, since nothing else runs inside a
// script. Finding the key's own lease means a retry whose first reply was lost after the
// server ran it: Claimed, with the lease restarted (see Redis.Claim).
const claimChunkSrc = `
local ms = ARGV[1]
local out = {}
for i, key in ipairs(KEYS) do
  local lease = ARGV[i + 1]
  if redis.call('SET', key, lease, 'PX', ms, 'NX') then
    out[i] = 1
  else
    local v = redis.call('GET', key)
    if v == lease then
      redis.call('PEXPIRE', key, ms)
      out[i] = 1
    elseif v == 'sent' then
      out[i] = 2
    else
      out[i] = 3
    end
  end
end
return out
`

// setChunkSrc sets every key in KEYS, with expiry ARGV[2] in unit ARGV[1] ('ex', 'px', or
// the empty string for none). With three arguments ARGV[3] is every key's value; otherwise
// KEYS[i]'s is ARGV[i+2]. It replies with an empty array, so that its reply parses as the
// claim script's does.
const setChunkSrc = `
local one = #ARGV == 3
for i, key in ipairs(KEYS) do
  local v = ARGV[3]
  if not one then v = ARGV[i + 2] end
  if ARGV[1] == '' then
    redis.call('SET', key, v)
  else
    redis.call('SET', key, v, ARGV[1], ARGV[2])
  end
end
return {}
`

// chunkScript is a script with its source, for the EVAL that follows a NOSCRIPT.
type chunkScript struct {
	src, sha string
}

var (
	claimChunkScript = chunkScript{src: claimChunkSrc, sha: redis.NewScript(claimChunkSrc).Hash()}
	setChunkScript   = chunkScript{src: setChunkSrc, sha: redis.NewScript(setChunkSrc).Hash()}
)

// oneServer reports whether client reaches a single server, where a script may span any keys.
func oneServer(client redis.UniversalClient) bool {
	_, one := client.(*redis.Client)
	return one
}

// chunk is the span [from, to) of a pending list that one script call covers.
type chunk struct{ from, to int }

func chunksOf(n int) []chunk {
	cs := make([]chunk, 0, (n+scriptChunk-1)/scriptChunk)
	for from := 0; from < n; from += scriptChunk {
		cs = append(cs, chunk{from, min(from+scriptChunk, n)})
	}
	return cs
}

// runChunks calls script once per chunk of pending, all in one pipeline. appendArgs appends
// a chunk's keys and arguments to the command's head (EVALSHA, the script's hash and the
// number of keys). Chunks that hit NOSCRIPT (a new server, a failover, SCRIPT FLUSH) did not
// run and are sent again with EVAL, which also caches the script for next time. Errors are
// per chunk; callers inspect each.
func runChunks(ctx context.Context, client redis.UniversalClient, script chunkScript, pending []int,
	argc func(keys int) int, appendArgs func(a []any, c chunk) []any,
) ([]chunk, []*redis.IntSliceCmd) {
	chunks := chunksOf(len(pending))
	cmds := make([]*redis.IntSliceCmd, len(chunks))
	pipe := client.Pipeline()
	for j, c := range chunks {
		n := c.to - c.from
		a := make([]any, 3, 3+argc(n))
		a[0], a[1], a[2] = "evalsha", script.sha, strconv.Itoa(n)
		cmds[j] = redis.NewIntSliceCmd(ctx, appendArgs(a, c)...)
		_ = pipe.Process(ctx, cmds[j]) // queues; errors come with Exec
	}
	_, _ = pipe.Exec(ctx)

	var retry redis.Pipeliner
	for j, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			if retry == nil {
				retry = client.Pipeline()
			}
			a := cmd.Args()
			a[0], a[1] = "eval", script.src
			cmds[j] = redis.NewIntSliceCmd(ctx, a...)
			_ = retry.Process(ctx, cmds[j])
		}
	}
	if retry != nil {
		_, _ = retry.Exec(ctx)
	}
	return chunks, cmds
}

// claimByChunks is one claim attempt with claimChunkScript; see Claim's comment.
func (r *Redis) claimByChunks(ctx context.Context, pending []int, rkeys, leases []string, leaseMS int64,
	results []Result,
) ([]int, error) {
	ms := strconv.FormatInt(leaseMS, 10)
	argc := func(keys int) int { return 2*keys + 1 }
	chunks, cmds := runChunks(ctx, r.core.client, claimChunkScript, pending, argc, func(a []any, c chunk) []any {
		// Keys and leases by pointer: go-redis writes *string as a string, and boxing each
		// string would cost an allocation apiece.
		for _, i := range pending[c.from:c.to] {
			a = append(a, &rkeys[i])
		}
		a = append(a, ms)
		for _, i := range pending[c.from:c.to] {
			a = append(a, &leases[i])
		}
		return a
	})
	var failed []int
	var firstErr error
	for j, c := range chunks {
		replies, err := cmds[j].Result()
		if err == nil && len(replies) != c.to-c.from {
			err = fmt.Errorf("claim script replied with %d statuses for %d keys", len(replies), c.to-c.from)
		}
		if err != nil {
			failed = append(failed, pending[c.from:c.to]...)
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		for k, i := range pending[c.from:c.to] {
			st, err := claimStatus(replies[k])
			if err != nil {
				failed = append(failed, i)
				firstErr = cmp.Or(firstErr, err)
				continue
			}
			results[i].Status = st
		}
	}
	return failed, firstErr
}

// setKeys sets keys[i] to value(i) with expiry ttl (none for ttl <= 0) for each pending
// index, in one round trip: chunk scripts on one server, one SET per key otherwise. same
// says value returns one value for every index, which a chunk then sends once. It returns
// the pending indexes whose write failed, with the first error.
func (c *redisCore) setKeys(ctx context.Context, pending []int, keys []string, value func(i int) *string,
	same bool, ttl time.Duration,
) ([]int, error) {
	if !c.chunked {
		return collectFailed(pending, setPipeline(ctx, c.client, pending, keys, value, ttl))
	}
	unit, n := expiryArgs(ttl)
	argc := func(keys int) int {
		if same {
			return keys + 3
		}
		return 2*keys + 2
	}
	chunks, cmds := runChunks(ctx, c.client, setChunkScript, pending, argc, func(a []any, ch chunk) []any {
		for _, i := range pending[ch.from:ch.to] {
			a = append(a, &keys[i])
		}
		a = append(a, unit, n)
		if same {
			return append(a, value(pending[ch.from]))
		}
		for _, i := range pending[ch.from:ch.to] {
			a = append(a, value(i))
		}
		return a
	})
	var failed []int
	var firstErr error
	for j, ch := range chunks {
		if err := cmds[j].Err(); err != nil {
			failed = append(failed, pending[ch.from:ch.to]...)
			firstErr = cmp.Or(firstErr, err)
		}
	}
	return failed, firstErr
}
