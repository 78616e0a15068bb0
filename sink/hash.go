package sink

import (
	"crypto/sha256"
	"encoding/binary"
)

// Hasher turns normalized values into Meta's hash form: lowercase hex SHA-256 of the UTF-8
// bytes [D-cust]. It also owns the scratch buffers Build normalizes into, so a Hasher reused
// across events (BuildOptions.Hasher) makes the hot path allocate only the strings that end up
// on the wire. A Hasher is not safe for concurrent use; give each goroutine its own.
type Hasher struct {
	buf   []byte // one normalized value
	tmp   []byte // NFC scratch
	out   []byte // every user_data output of one event, concatenated
	spans []span // where each output sits in out
	ctx   normContext
	// digests holds the hex digests of recent values of the fields whose values repeat
	// across customers (names, places, gender, birth dates; see repeatingField): SHA-256
	// and hex were a third of building an event, and a map lookup costs a fraction of a
	// SHA-256. Most are keyed by the value as it arrived, which spares normalizing it too
	// (see byRawValue and key). Emails, phones and external_ids, nearly one per customer,
	// would only push the others out, so they are always hashed.
	digests map[string][2 * sha256.Size]byte
	// key is the digests key of the value being built: a tag byte, then the value. Tag
	// 0 is a normalized value, whatever its field (the digest depends on the bytes alone);
	// 1 + 2*field + usZip a raw value of that field, whose normalization the tag decides.
	key []byte
}

// digestCacheSize bounds Hasher.digests; the map is emptied when it fills up. A full map
// is about 220 KB, and the relay keeps about one Hasher per core.
const digestCacheSize = 2048

// span locates one user_data output in Hasher.out.
type span struct {
	field      uint8
	start, end int32
}

// NewHasher returns a Hasher with buffers sized for a full user_data.
func NewHasher() *Hasher {
	return &Hasher{
		buf:   make([]byte, 0, 128),
		tmp:   make([]byte, 0, 64),
		out:   make([]byte, 0, 1024),
		spans: make([]span, 0, 16),
	}
}

// AppendHash appends the 64 lowercase hex characters of SHA-256(b) to dst.
func AppendHash(dst, b []byte) []byte {
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	encodeDigest(&out, &sum)
	return append(dst, out[:]...)
}

// setRawKey makes h.key the digests key of raw value s of field f; usZip is whether the
// US zip rule applies to it.
func (h *Hasher) setRawKey(f uint8, usZip bool, s string) {
	tag := 1 + 2*f
	if usZip {
		tag++
	}
	h.key = append(append(h.key[:0], tag), s...)
}

// setNormalizedKey makes h.key the digests key of the normalized value in h.buf.
func (h *Hasher) setNormalizedKey() {
	h.key = append(append(h.key[:0], 0), h.buf...)
}

// appendCached appends to h.out the digest kept under h.key, and reports whether there was
// one.
func (h *Hasher) appendCached() bool {
	d, ok := h.digests[string(h.key)]
	if ok {
		h.out = append(h.out, d[:]...)
	}
	return ok
}

// appendHashCaching is AppendHash(dst, h.buf), keeping the digest in h.digests under h.key.
// The caller has looked the key up and missed.
func (h *Hasher) appendHashCaching(dst []byte) []byte {
	var d [2 * sha256.Size]byte
	sum := sha256.Sum256(h.buf)
	encodeDigest(&d, &sum)
	if h.digests == nil {
		h.digests = make(map[string][2 * sha256.Size]byte)
	} else if len(h.digests) >= digestCacheSize {
		clear(h.digests)
	}
	h.digests[string(h.key)] = d
	return append(dst, d[:]...)
}

// Hash returns the lowercase hex SHA-256 of s.
func (h *Hasher) Hash(s string) string {
	h.buf = append(h.buf[:0], s...)
	var out [2 * sha256.Size]byte
	sum := sha256.Sum256(h.buf)
	encodeDigest(&out, &sum)
	return string(out[:])
}

// encodeDigest writes sum in lowercase hex, four bytes at a time in one 64-bit word rather
// than encoding/hex's table lookup per character: a digest per hashed user_data value, on
// every event (BenchmarkAppendHash: 167–174 ns with encoding/hex, 138–154 ns with this).
func encodeDigest(out *[2 * sha256.Size]byte, sum *[sha256.Size]byte) {
	for i := 0; i < sha256.Size/4; i++ {
		binary.BigEndian.PutUint64(out[8*i:], hexWord(binary.BigEndian.Uint32(sum[4*i:])))
	}
}

// hexWord returns the eight hex digits of v in ASCII, ordered so that storing the word
// big-endian writes the most significant digit first. It spreads v's nibbles one per byte,
// then adds '0' to each, and 'a'-'0'-10 more to those of ten or more (adding 6 carries into
// a byte's high nibble exactly for those).
func hexWord(v uint32) uint64 {
	x := uint64(v)
	x = (x | x<<16) & 0x0000FFFF0000FFFF
	x = (x | x<<8) & 0x00FF00FF00FF00FF
	x = (x | x<<4) & 0x0F0F0F0F0F0F0F0F
	letters := (x + 0x0606060606060606) >> 4 & 0x0101010101010101
	return x + 0x3030303030303030 + letters*('a'-'0'-10)
}

// HashString is Hasher.Hash for callers without a Hasher at hand (tests, tools).
func HashString(s string) string {
	var h Hasher
	return h.Hash(s)
}

// hashedForm says how a value that already looks hashed must be sent.
type hashedForm uint8

const (
	notHashed hashedForm = iota
	// hashedHex is 64 (SHA-256) or 32 (MD5) hex digits in any case: the SDKs pass it through,
	// lowercased [C-py, C-node, C-pb].
	hashedHex
	// hashedParamBuilder is "<64 hex>.<suffix>" as emitted by Meta's client-side parameter
	// builder; it goes through byte for byte [C-pb, D-cust].
	hashedParamBuilder
)

// classifyHashed reports whether s (already trimmed) is a hash Meta would take as is.
// A raw 32- or 64-character all-hex value (an odd numeric id, say) is indistinguishable from a
// digest; the SDKs make the same call, so this does too.
func classifyHashed(s string) hashedForm {
	switch len(s) {
	case 32, 64:
		if isHex(s) {
			return hashedHex
		}
		return notHashed
	}
	// The parameter builder always emits lowercase hex; an uppercase variant is not its
	// output and would fail Meta's check, so it is not passed through.
	if len(s) > 65 && s[64] == '.' && isLowerHex(s[:64]) && isParamBuilderSuffix(s[65:]) {
		return hashedParamBuilder
	}
	return notHashed
}

// isParamBuilderSuffix accepts the parameter builder's appendix: a 2-character language token
// (AQ, Ag, Aw, BA, BQ, Bg) or an 8-character base64url appendix such as AQYCAQAA [C-pb
// Constants.js].
func isParamBuilderSuffix(s string) bool {
	if len(s) != 2 && len(s) != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// hexClass tells, for each byte, whether it is a lowercase hex digit (lowerHex) or an
// uppercase one (upperHex). Checks OR the classes of a whole value and test once at the end:
// on digests, whose digits and letters come in random order, the two range tests per byte
// mispredict often enough to cost four times as much (240 vs 60 ns per 64-byte value).
var hexClass = func() (t [256]uint8) {
	for i := range t {
		switch c := byte(i); {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
			t[i] = lowerHex
		case 'A' <= c && c <= 'F':
			t[i] = upperHex
		default:
			t[i] = notHex
		}
	}
	return t
}()

const (
	lowerHex = 0
	upperHex = 1
	notHex   = 2
)

func isHex(s string) bool {
	var class uint8
	for i := 0; i < len(s); i++ {
		class |= hexClass[s[i]]
	}
	return class&notHex == 0 && len(s) > 0
}

func isLowerHex(s string) bool {
	var class uint8
	for i := 0; i < len(s); i++ {
		class |= hexClass[s[i]]
	}
	return class == lowerHex && len(s) > 0
}

// IsWireHash reports whether v is acceptable on the wire in a hashed user_data field:
// 64 lowercase hex (SHA-256), 32 lowercase hex (MD5, which the SDKs pass through), or the
// parameter builder's "<64 hex>.<suffix>" form.
func IsWireHash(v string) bool {
	switch len(v) {
	case 32, 64:
		return isLowerHex(v)
	}
	return len(v) > 65 && v[64] == '.' && isLowerHex(v[:64]) && isParamBuilderSuffix(v[65:])
}
