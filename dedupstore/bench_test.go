package dedupstore

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// benchmarkClaim500 measures the hot path per batch: Claim 500 fresh keys, Confirm them.
func benchmarkClaim500(b *testing.B, s Store) {
	keys := keysN("bench", 500)
	claims := make([]Claim, 0, len(keys))
	ctx := b.Context()
	iter := 0
	b.ReportAllocs()
	for b.Loop() {
		// A fresh pixel per iteration keeps every key new without rebuilding the batch.
		pixel := strconv.Itoa(iter)
		iter++
		for i := range keys {
			keys[i].PixelID = pixel
		}
		rs, err := s.Claim(ctx, keys)
		if err != nil {
			b.Fatal(err)
		}
		claims = claims[:0]
		for _, r := range rs {
			if r.Status != Claimed {
				b.Fatalf("fresh key %v", r.Status)
			}
			claims = append(claims, r.Claim)
		}
		if err := s.Confirm(ctx, claims); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iter*len(keys)), "ns/key")
}

// BenchmarkRedisClaim500 runs benchmarkClaim500 on the real Redis, by chunk script
// (WithChunkScripts) and by one command per key (the default). Beside the time per key it
// reports the CPU each side spent per key: this process's (client-cpu-ns/key, which
// includes the benchmark's own loop) and the server's (server-cpu-ns/key, from INFO CPU;
// only meaningful with nothing else using the server).
func BenchmarkRedisClaim500(b *testing.B) {
	for _, mode := range []struct {
		name   string
		chunks bool
	}{{"chunks", true}, {"per-key", false}} {
		b.Run(mode.name, func(b *testing.B) {
			c := realRedis(b)
			prefix := testPrefix(b)
			deleteByPrefix(b, c, prefix)
			opts := []Option{WithPrefix(prefix), WithTTL(10 * time.Minute)}
			if mode.chunks {
				opts = append(opts, WithChunkScripts())
			}
			s := NewRedis(c, opts...)
			server0, client0 := serverCPU(b, c), processCPU()
			benchmarkClaim500(b, s)
			keys := float64(b.N * 500)
			b.ReportMetric(float64(processCPU()-client0)/keys, "client-cpu-ns/key")
			b.ReportMetric(float64(serverCPU(b, c)-server0)/keys, "server-cpu-ns/key")
		})
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is the CPU time the Redis server has used, user and system, from INFO CPU.
func serverCPU(b *testing.B, c *redis.Client) time.Duration {
	info, err := c.Info(b.Context(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		name, v, ok := strings.Cut(line, ":")
		if ok && (name == "used_cpu_user" || name == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO CPU %s: %v", line, err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

func BenchmarkMemoryClaim500(b *testing.B) {
	benchmarkClaim500(b, NewMemory())
}
