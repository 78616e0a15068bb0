package sink

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestEncodeDigestMatchesHex checks the word-at-a-time hex encoder against encoding/hex for
// every byte value at every position of a digest, and for real digests.
func TestEncodeDigestMatchesHex(t *testing.T) {
	check := func(sum [sha256.Size]byte) {
		t.Helper()
		var out [2 * sha256.Size]byte
		encodeDigest(&out, &sum)
		if want := hex.EncodeToString(sum[:]); string(out[:]) != want {
			t.Fatalf("encodeDigest(%x) = %s, want %s", sum, out, want)
		}
	}
	for pos := 0; pos < sha256.Size; pos++ {
		for b := 0; b < 256; b++ {
			var sum [sha256.Size]byte
			for i := range sum {
				sum[i] = byte(b + 7*i) // every neighbour differs too
			}
			sum[pos] = byte(b)
			check(sum)
		}
	}
	for i := 0; i < 1000; i++ {
		check(sha256.Sum256([]byte{byte(i), byte(i >> 8)}))
	}
	sum := sha256.Sum256([]byte("someone@example.com"))
	want := "prefix:" + hex.EncodeToString(sum[:])
	if got := AppendHash([]byte("prefix:"), []byte("someone@example.com")); string(got) != want {
		t.Errorf("AppendHash = %s, want %s", got, want)
	}
}

func BenchmarkAppendHash(b *testing.B) {
	in := []byte("someone@example.com")
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = AppendHash(buf[:0], in)
	}
}
