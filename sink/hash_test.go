package sink

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestHasherDigestCache: a Hasher reused over many events hashes every value as a fresh one
// would, while its digest cache stays within its bound and holds only the fields whose
// values repeat across customers.
func TestHasherDigestCache(t *testing.T) {
	reused := NewHasher()
	// Three times the cache's size in distinct cities, each seen twice at some distance,
	// so the map fills up, is emptied, and answers hits in between.
	n := 3 * digestCacheSize
	for i := range 2 * n {
		v := i % n
		if i >= n {
			v = (i * 7) % n
		}
		src := webPurchase()
		src.User.Cities = []string{"City " + letters(v)} // digits are not kept in a city
		src.User.FirstNames = []string{[]string{"Mary", "John", "Zoë"}[v%3]}
		src.User.Emails = []string{"person" + strconv.Itoa(i) + "@example.com"}
		got, _ := Build(src, BuildOptions{Now: buildNow, Hasher: reused})
		want, _ := Build(src, BuildOptions{Now: buildNow, Hasher: &Hasher{}})
		if !slices.Equal(got.User.Ct, want.User.Ct) || !slices.Equal(got.User.Fn, want.User.Fn) ||
			!slices.Equal(got.User.Em, want.User.Em) || !slices.Equal(got.User.Zp, want.User.Zp) {
			t.Fatalf("event %d: reused Hasher built %+v, fresh one %+v", i, got.User, want.User)
		}
		if len(reused.digests) > digestCacheSize {
			t.Fatalf("event %d: %d digests cached, bound %d", i, len(reused.digests), digestCacheSize)
		}
	}
	for k := range reused.digests {
		if strings.Contains(k, "@") {
			t.Fatalf("an email's digest was cached (%d bytes of key)", len(k))
		}
	}
}

// TestHasherDigestCacheContext holds the digest cache to what normalization depends on
// besides the value: one raw zip is cut to five digits in the US and kept whole elsewhere, and a
// birth date is dropped while it lies in the future. A cache keyed by the raw value alone
// answers from the first event for the second.
func TestHasherDigestCacheContext(t *testing.T) {
	reused := NewHasher()
	earlier := buildNow.AddDate(-1, 0, 0)
	cases := []struct {
		country, zip, dob string
		now               time.Time
	}{
		{"GB", "940351234", "2026-01-02", buildNow},
		{"US", "940351234", "2026-01-02", buildNow},
		{"GB", "940351234", "2026-01-02", earlier},
		{"United States", "940351234", "2026-01-02", buildNow},
		{"US", "940351234", "2026-01-02", earlier},
		{"GB", "940351234", "2026-01-02", buildNow},
	}
	for i, c := range cases {
		src := webPurchase()
		src.User.Countries = []string{c.country}
		src.User.Zips = []string{c.zip}
		src.User.DatesOfBirth = []string{c.dob}
		got, gotDrops := Build(src, BuildOptions{Now: c.now, Hasher: reused})
		want, wantDrops := Build(src, BuildOptions{Now: c.now, Hasher: &Hasher{}})
		if !slices.Equal(got.User.Zp, want.User.Zp) || !slices.Equal(got.User.Db, want.User.Db) ||
			!slices.Equal(got.User.Country, want.User.Country) || !slices.Equal(gotDrops, wantDrops) {
			t.Fatalf("case %d (%+v): reused Hasher built zp %v db %v drops %v, fresh one zp %v db %v drops %v",
				i, c, got.User.Zp, got.User.Db, gotDrops, want.User.Zp, want.User.Db, wantDrops)
		}
	}
}

// letters spells v in base 26 with the letters a to z.
func letters(v int) string {
	b := []byte{byte('a' + v%26)}
	for v /= 26; v > 0; v /= 26 {
		b = append(b, byte('a'+v%26))
	}
	return string(b)
}
