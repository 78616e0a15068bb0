package dedupstore

import (
	"strconv"
	"testing"
	"time"
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

func BenchmarkRedisClaim500(b *testing.B) {
	c := realRedis(b)
	prefix := testPrefix(b)
	deleteByPrefix(b, c, prefix)
	benchmarkClaim500(b, NewRedis(c, WithPrefix(prefix), WithTTL(10*time.Minute)))
}

func BenchmarkMemoryClaim500(b *testing.B) {
	benchmarkClaim500(b, NewMemory())
}
