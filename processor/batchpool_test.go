package processor

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBatchPoolClasses holds the size classes to their contract: the class a size asks for
// holds it with at most a quarter to spare, the one below does not, and a slice given back
// lands in the largest class it can serve.
func TestBatchPoolClasses(t *testing.T) {
	for c := 1; c < numPoolClasses; c++ {
		if classSize(c) <= classSize(c-1) {
			t.Fatalf("class %d holds %d, class %d %d: sizes must grow", c, classSize(c), c-1, classSize(c-1))
		}
		if got := classOfCap(classSize(c)); got != c {
			t.Fatalf("a slice of exactly class %d's size (%d) went to class %d", c, classSize(c), got)
		}
		if got := classOfCap(classSize(c) - 1); got != c-1 {
			t.Fatalf("a slice one short of class %d's size went to class %d, want %d", c, got, c-1)
		}
	}
	if got := classSize(numPoolClasses - 1); got != 1<<maxPooledShift {
		t.Fatalf("largest class holds %d, want %d", got, 1<<maxPooledShift)
	}
	check := func(n int) {
		c := classFor(n)
		if n > 1<<maxPooledShift {
			if c != -1 {
				t.Fatalf("classFor(%d) = %d; sizes past the largest class are not pooled", n, c)
			}
			return
		}
		if classSize(c) < n || (c > 0 && classSize(c-1) >= n) {
			t.Fatalf("classFor(%d) = %d holding %d; the smallest class holding it is wanted", n, c, classSize(c))
		}
		if n > 1<<minPooledShift && 4*classSize(c) > 5*n {
			t.Fatalf("classFor(%d) holds %d, more than a quarter to spare", n, classSize(c))
		}
	}
	for n := 1; n <= 1<<14; n++ {
		check(n)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		check(1 + rng.IntN(1<<(maxPooledShift+1)))
	}
	for _, n := range []int{0, 1<<minPooledShift - 1, 1<<maxPooledShift + 1} {
		if c := classOfCap(n); c != -1 {
			t.Errorf("classOfCap(%d) = %d; such a slice is not kept", n, c)
		}
	}
}

// TestLZ4IntoDirtyBuffer: a pooled buffer comes back holding the last batch's bytes (or
// zeros); decoding must write every byte of the output.
func TestLZ4IntoDirtyBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pool := new(batchPool)
	for _, n := range []int{1000, 70 << 10, 300 << 10} {
		data := payload(rng, n)
		src := lz4Frame(t, data)
		for round := range 3 {
			got, err := decodeLZ4(src, 1<<30, pool)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%d bytes, round %d: output differs from the input", n, round)
			}
			for i := range got[:cap(got)] {
				got[:cap(got)][i] = 0xA5 // what the next user of the buffer must overwrite
			}
			pool.PutDecompressBytes(got)
		}
	}
	if pool.bytesBack.Load() != 9 {
		t.Fatalf("%d buffers given back, want 9", pool.bytesBack.Load())
	}
}

// TestBatchPoolReuses: what is given back is handed out again for a size its class holds.
// sync.Pool drops items at random under the race detector, so each is tried a few times.
func TestBatchPoolReuses(t *testing.T) {
	pool := new(batchPool)
	b := pool.decompressBuffer(5000)
	if len(b) != 5000 {
		t.Fatalf("len %d, want 5000", len(b))
	}
	reused := false
	for range 50 {
		pool.PutDecompressBytes(b)
		again := pool.decompressBuffer(4900)
		if len(again) != 4900 {
			t.Fatalf("len %d, want 4900", len(again))
		}
		if reused = &again[0] == &b[0]; reused {
			break
		}
	}
	if !reused {
		t.Error("a buffer given back was never handed out again for a size its class holds")
	}
	r := pool.GetRecords(300)
	if cap(r) < 300 || len(r) != 0 {
		t.Fatalf("GetRecords(300): len %d cap %d", len(r), cap(r))
	}
	r = append(r, kgo.Record{Offset: 1})
	reused = false
	for range 50 {
		pool.PutRecords(r)
		again := pool.GetRecords(290)
		if len(again) != 0 {
			t.Fatalf("GetRecords(290) handed out %d records; it must be empty", len(again))
		}
		if reused = &again[:1][0] == &r[0]; reused {
			break
		}
	}
	if !reused {
		t.Error("a record slice given back was never handed out again for a count its class holds")
	}
}
