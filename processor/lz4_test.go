package processor

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lz4Frame compresses data the way a producer would, with the given frame options.
func lz4Frame(t testing.TB, data []byte, opts ...lz4.Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := lz4.NewWriter(&buf)
	if err := w.Apply(opts...); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// payload is record-like data: repetitive enough to compress, with random stretches that
// end up in raw (uncompressed) blocks.
func payload(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		if rng.IntN(4) == 0 {
			for range rng.IntN(300) {
				b = append(b, byte(rng.Uint32()))
			}
			continue
		}
		b = fmt.Appendf(b, `{"event_id":"order-%06d","em":"%064x","url":"https://shop.example.com/p/%d"}`, rng.IntN(1e6), rng.Uint64(), rng.IntN(500))
	}
	return b[:n]
}

func TestLZ4MatchesDefaultDecompressor(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	def := kgo.DefaultDecompressor()
	d := newLZ4Decompressor(1<<30, nil)
	sizes := []int{0, 1, 100, 64 << 10, 300 << 10, 3 << 20}
	options := map[string][]lz4.Option{
		"default (4 MiB blocks)":   nil,
		"64 KiB blocks":            {lz4.BlockSizeOption(lz4.Block64Kb)},
		"256 KiB, block checksums": {lz4.BlockSizeOption(lz4.Block256Kb), lz4.BlockChecksumOption(true)},
		"1 MiB, no content checksum, content size": {lz4.BlockSizeOption(lz4.Block1Mb),
			lz4.ChecksumOption(false), lz4.SizeOption(300 << 10)},
		"fast level":     {lz4.CompressionLevelOption(lz4.Fast)},
		"high level":     {lz4.CompressionLevelOption(lz4.Level9)},
		"random data 64": {lz4.BlockSizeOption(lz4.Block64Kb)},
	}
	for name, opts := range options {
		for _, n := range sizes {
			if name == "1 MiB, no content checksum, content size" && n != 300<<10 {
				continue // the declared size must match
			}
			data := payload(rng, n)
			if name == "random data 64" {
				data = make([]byte, n)
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
			}
			src := lz4Frame(t, data, opts...)
			want, err := def.Decompress(src, kgo.CodecLz4)
			if err != nil {
				t.Fatalf("%s/%d: default decompressor: %v", name, n, err)
			}
			got, err := decodeLZ4(src, 1<<30, nil)
			if err != nil {
				t.Fatalf("%s/%d: %v", name, n, err)
			}
			if !bytes.Equal(got, want) || !bytes.Equal(got, data) {
				t.Fatalf("%s/%d: decoded %d bytes, want %d", name, n, len(got), len(want))
			}
			if cap(got) != len(got) {
				t.Errorf("%s/%d: output capacity %d for %d bytes; it should be exact", name, n, cap(got), len(got))
			}
			if viaKgo, err := d.Decompress(src, kgo.CodecLz4); err != nil || !bytes.Equal(viaKgo, data) {
				t.Fatalf("%s/%d: Decompress: %v", name, n, err)
			}
		}
	}
}

func TestLZ4ConcatenatedAndSkippableFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := payload(rng, 70<<10), payload(rng, 5000)
	skippable := []byte{0x5A, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 'x', 'y', 'z'}
	src := append(append(lz4Frame(t, a, lz4.BlockSizeOption(lz4.Block64Kb)), skippable...), lz4Frame(t, b)...)
	got, err := decodeLZ4(src, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(append([]byte(nil), a...), b...)) {
		t.Fatalf("got %d bytes, want %d", len(got), len(a)+len(b))
	}
}

func TestLZ4Errors(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	data := payload(rng, 200<<10)
	good := lz4Frame(t, data, lz4.BlockSizeOption(lz4.Block64Kb))
	if _, err := decodeLZ4(good, 100<<10, nil); err == nil {
		t.Error("decoded past the bound")
	}
	d := newLZ4Decompressor(100<<10, nil)
	if _, err := d.Decompress(good, kgo.CodecLz4); err == nil {
		t.Error("Decompress went past the bound (a fallback must not undo it)")
	}
	for name, src := range map[string][]byte{
		"empty magic":   {1, 2},
		"not lz4":       []byte("definitely not an lz4 frame"),
		"truncated":     good[:len(good)/2],
		"dependent":     append(append([]byte(nil), good[:4]...), append([]byte{good[4] &^ 0x20}, good[5:]...)...),
		"bad block max": append(append([]byte(nil), good[:5]...), append([]byte{0x10}, good[6:]...)...),
	} {
		if _, err := decodeLZ4(src, 1<<30, nil); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	// What decodeLZ4 does not take goes to the default decompressor, which gives its own
	// answer: the dependent-block flag alone does not break this frame.
	dep := append(append([]byte(nil), good[:4]...), append([]byte{good[4] &^ 0x20}, good[5:]...)...)
	if got, err := newLZ4Decompressor(1<<30, nil).Decompress(dep, kgo.CodecLz4); err == nil && !bytes.Equal(got, data) {
		t.Error("fallback decoded the dependent-block frame wrongly")
	}
}

func FuzzLZ4(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 10, 5000, 70 << 10} {
		f.Add(lz4Frame(f, payload(rng, n), lz4.BlockSizeOption(lz4.Block64Kb)))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		got, err := decodeLZ4(src, 1<<24, nil)
		if err != nil {
			return
		}
		// Whatever decodes must be what lz4.Reader reads, unless the reader rejects a
		// checksum this decoder leaves to Kafka's CRC.
		want, rerr := io.ReadAll(lz4.NewReader(bytes.NewReader(src)))
		if rerr == nil && !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes, lz4.Reader %d", len(got), len(want))
		}
	})
}

// BenchmarkLZ4Decompress: a 1 MiB batch as franz-go's producer frames it (4 MiB blocks) and
// as the Java client does (64 KiB blocks), through franz-go's default decompressor and ours.
func BenchmarkLZ4Decompress(b *testing.B) {
	data := payload(rand.New(rand.NewPCG(9, 10)), 1<<20)
	for _, bs := range []struct {
		name string
		opt  lz4.Option
	}{{"4MiB-blocks", lz4.BlockSizeOption(lz4.Block4Mb)}, {"64KiB-blocks", lz4.BlockSizeOption(lz4.Block64Kb)}} {
		src := lz4Frame(b, data, bs.opt)
		for _, d := range []struct {
			name string
			d    kgo.Decompressor
		}{{"default", kgo.DefaultDecompressor()}, {"direct", newLZ4Decompressor(1<<30, nil)}} {
			b.Run(bs.name+"/"+d.name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := d.d.Decompress(src, kgo.CodecLz4); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
