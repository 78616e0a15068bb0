package dedupstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync/atomic"
)

// keyHashBytes is how much of the SHA-256 goes into a key: 128 bits keep the chance of two
// distinct events colliding negligible (about 2^-64 after 2^32 keys) at half the key size.
const keyHashBytes = 16

// redisKey is the storage key of k. Raw ids never appear in keys: they are hashed so that
// Redis (its keyspace, slow log, MONITOR output, backups) holds nothing identifying. The
// NUL separators keep ("ab","c") and ("a","bc") apart; fields containing NUL could still be
// ambiguous, which Meta's id formats exclude.
func redisKey(prefix string, k Key) string {
	// Hashed from a stack buffer and built in one allocation: this runs for every event.
	var stack [128]byte
	buf := append(stack[:0], k.PixelID...)
	buf = append(buf, 0)
	buf = append(buf, k.EventName...)
	buf = append(buf, 0)
	buf = append(buf, k.EventID...)
	sum := sha256.Sum256(buf)

	var digits [2 * keyHashBytes]byte
	hex.Encode(digits[:], sum[:keyHashBytes])
	var b strings.Builder
	b.Grow(len(prefix) + len(digits))
	b.WriteString(prefix)
	b.Write(digits[:])
	return b.String()
}

// Stored values. A lease carries the claim's token so only that claim can release it.
const (
	valueSent   = "sent"
	leasePrefix = "lease:"
	// failOpenPrefix marks tokens of claims granted without Redis: there is no lease
	// behind them to release.
	failOpenPrefix = "failopen:"
)

// tokenSource makes tokens unique per claim attempt: owner (for humans), a random
// per-instance nonce (two processes with the same owner name, e.g. a restarted pod, never
// share tokens) and a counter (cheaper than randomness per key).
type tokenSource struct {
	prefix string
	n      atomic.Uint64
}

func newTokenSource(owner string) *tokenSource {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails; it crashes the program instead.
	return &tokenSource{prefix: owner + ":" + hex.EncodeToString(nonce[:]) + ":"}
}

func (s *tokenSource) next() string {
	return s.prefix + strconv.FormatUint(s.n.Add(1), 36)
}

// nextLease is the lease value of a fresh token: leasePrefix and the token in one string,
// so that the token can be a substring of it instead of a second allocation.
func (s *tokenSource) nextLease() string {
	var stack [96]byte // one allocation, the string, for the usual owner name
	b := append(stack[:0], leasePrefix...)
	b = append(b, s.prefix...)
	return string(strconv.AppendUint(b, s.n.Add(1), 36))
}

func (s *tokenSource) nextFailOpen() string {
	return failOpenPrefix + s.next()
}

// FailedOpen reports whether c was granted by a store in fail-open mode without Redis
// having been checked, so the event may be a duplicate. Callers may want to count or tag it.
func FailedOpen(c Claim) bool {
	return strings.HasPrefix(c.Token, failOpenPrefix)
}

// hexValue maps each lowercase hex digit to its value and every other byte to 0xff. The
// checks OR it over the whole digest and test once: on digests, whose digits and letters
// come in random order, two range tests per byte mispredict often enough to cost four times
// as much.
var hexValue = func() (t [256]uint8) {
	for i := range t {
		switch c := byte(i); {
		case '0' <= c && c <= '9':
			t[i] = c - '0'
		case 'a' <= c && c <= 'f':
			t[i] = c - 'a' + 10
		default:
			t[i] = 0xff
		}
	}
	return t
}()

// validIdentifier reports whether id is a lowercase SHA-256 hex digest, the only form
// identity maps accept as a key component.
func validIdentifier(id string) bool {
	if len(id) != 2*sha256.Size {
		return false
	}
	var bad uint8
	for i := 0; i < len(id); i++ {
		bad |= hexValue[id[i]]
	}
	return bad < 16
}

// parseIdentifier is validIdentifier and the digest's bytes in one pass. The identity map
// reads each identifier once where it used to check it and then decode it: the digests were
// built long before, on another core, and the second pass over them cost as much again.
func parseIdentifier(id string) (k idKey, ok bool) {
	if len(id) != 2*len(k) {
		return k, false
	}
	var bad uint8
	for i := range k {
		hi, lo := hexValue[id[2*i]], hexValue[id[2*i+1]]
		bad |= hi | lo
		k[i] = hi<<4 | lo
	}
	return k, bad < 16
}
