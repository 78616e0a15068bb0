package dedupstore

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClaimBatch(t *testing.T) {
	a := Key{PixelID: "1", EventName: "Purchase", EventID: "a"}
	b := Key{PixelID: "1", EventName: "Purchase", EventID: "b"}
	tests := []struct {
		name string
		keys []Key
		want []Status
	}{
		{"empty batch", nil, []Status{}},
		{"distinct keys", []Key{a, b}, []Status{Claimed, Claimed}},
		{"same key twice in one batch", []Key{a, b, a}, []Status{Claimed, Claimed, Held}},
		{"same key three times", []Key{a, a, a}, []Status{Claimed, Held, Held}},
		{"fields concatenating alike stay apart", []Key{
			{PixelID: "1", EventName: "ab", EventID: "c"},
			{PixelID: "1", EventName: "a", EventID: "bc"},
			{PixelID: "1a", EventName: "b", EventID: "c"},
		}, []Status{Claimed, Claimed, Claimed}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					e := be.setup(t)
					s := e.store("p0")
					rs, err := s.Claim(ctxT(t, 10*time.Second), tc.keys)
					if err != nil {
						t.Fatalf("Claim: %v", err)
					}
					if got := statuses(rs); !slices.Equal(got, tc.want) {
						t.Fatalf("statuses = %v, want %v", got, tc.want)
					}
					tokens := map[string]bool{}
					for i, r := range rs {
						if r.Status != Claimed {
							if r.Claim != (Claim{}) {
								t.Errorf("result %d is %v but carries claim %+v", i, r.Status, r.Claim)
							}
							continue
						}
						if r.Claim.Key != tc.keys[i] {
							t.Errorf("result %d claim key = %+v, want %+v", i, r.Claim.Key, tc.keys[i])
						}
						if r.Claim.Token == "" || tokens[r.Claim.Token] {
							t.Errorf("result %d token %q empty or reused", i, r.Claim.Token)
						}
						tokens[r.Claim.Token] = true
						if FailedOpen(r.Claim) {
							t.Errorf("result %d claimed by failing open with Redis up", i)
						}
					}
				})
			}
		})
	}
}

// Two partitions (two consumers, two owners) receiving the same events at once must not
// both send any of them.
func TestConcurrentOwnersClaimEachKeyOnce(t *testing.T) {
	const (
		owners = 4
		rounds = 5
		n      = 200
	)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := be.setup(t)
			stores := make([]Store, owners)
			for i := range stores {
				// A lease long enough to outlast any scheduling delay on a loaded machine:
				// this test is about concurrent claims, not expiry, and an expired lease
				// is rightly claimable again.
				stores[i] = e.store("owner"+string(rune('a'+i)), WithLease(time.Minute))
			}
			for round := range rounds {
				keys := keysN("round"+string(rune('a'+round)), n)
				results := make([][]Result, owners)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for o := range owners {
					batch := slices.Clone(keys)
					if o%2 == 1 {
						slices.Reverse(batch) // Interleave differently so the race is real.
					}
					wg.Go(func() {
						<-start
						rs, err := stores[o].Claim(ctxT(t, 10*time.Second), batch)
						if err != nil {
							t.Errorf("owner %d Claim: %v", o, err)
							return
						}
						results[o] = rs
					})
				}
				close(start)
				wg.Wait()
				if t.Failed() {
					return
				}
				claimed := map[Key]int{}
				for _, rs := range results {
					for _, r := range rs {
						switch r.Status {
						case Claimed:
							claimed[r.Claim.Key]++
						case Held:
						default:
							t.Fatalf("unexpected status %v for a fresh key", r.Status)
						}
					}
				}
				for _, k := range keys {
					if claimed[k] != 1 {
						t.Errorf("round %d: key %s claimed %d times, want exactly 1", round, k.EventID, claimed[k])
					}
				}
			}
		})
	}
}

// TestLeaseLifecycle plays the protocol's crash and recovery scenarios step by step. Each
// claimant ("a", "b", "c") stands for a consumer with its own owner id.
func TestLeaseLifecycle(t *testing.T) {
	type step struct {
		op   string // claim, confirm, release, extend, advance
		who  string
		by   func(e *env) time.Duration // advance only
		want Status                     // claim only
		lost int                        // extend only
	}
	halfLease := func(e *env) time.Duration { return e.lease / 2 }
	pastLease := func(e *env) time.Duration { return e.lease + e.lease/4 }
	pastTTL := func(e *env) time.Duration { return e.ttl }
	claim := func(who string, want Status) step { return step{op: "claim", who: who, want: want} }
	confirm := func(who string) step { return step{op: "confirm", who: who} }
	release := func(who string) step { return step{op: "release", who: who} }
	extend := func(who string, lost int) step { return step{op: "extend", who: who, lost: lost} }
	advance := func(by func(*env) time.Duration) step { return step{op: "advance", by: by} }

	tests := []struct {
		name  string
		steps []step
	}{
		{"crash after claim before send: lease expires, next claim sends", []step{
			claim("a", Claimed), advance(halfLease), claim("b", Held), advance(pastLease), claim("b", Claimed),
		}},
		{"crash after send before confirm: event claimable again after lease (documented duplicate window)", []step{
			claim("a", Claimed) /* CAPI acks, process dies */, advance(halfLease), claim("b", Held),
			advance(pastLease), claim("b", Claimed),
		}},
		{"confirm: duplicate for the TTL, then claimable", []step{
			claim("a", Claimed), confirm("a"), claim("b", Duplicate), advance(pastLease), claim("b", Duplicate),
			advance(pastTTL), claim("b", Claimed),
		}},
		{"confirm by a holder whose lease expired still marks the key sent", []step{
			claim("a", Claimed), advance(pastLease), claim("b", Claimed), confirm("a"), claim("c", Duplicate),
		}},
		{"release on dead-letter frees the key", []step{
			claim("a", Claimed), release("a"), claim("b", Claimed),
		}},
		{"release with a stale token keeps another's lease", []step{
			claim("a", Claimed), advance(pastLease), claim("b", Claimed), release("a"), claim("c", Held),
			release("b"), claim("c", Claimed),
		}},
		{"release after confirm keeps the key sent", []step{
			claim("a", Claimed), confirm("a"), release("a"), claim("b", Duplicate),
		}},
		{"extend keeps a slow send's lease past its first expiry", []step{
			claim("a", Claimed), advance(halfLease), extend("a", 0),
			advance(func(e *env) time.Duration { return e.lease/2 + e.lease/4 }), claim("b", Held),
			advance(pastLease), claim("b", Claimed),
		}},
		{"extend after the lease was taken reports it lost and leaves the new lease alone", []step{
			claim("a", Claimed), advance(pastLease), claim("b", Claimed), extend("a", 1), claim("c", Held),
		}},
		{"extend after confirm reports lost and keeps the key sent", []step{
			claim("a", Claimed), confirm("a"), extend("a", 1), claim("b", Duplicate),
		}},
		{"held claim does not extend the lease", []step{
			claim("a", Claimed), advance(halfLease), claim("b", Held),
			advance(func(e *env) time.Duration { return e.lease/2 + e.lease/4 }), claim("c", Claimed),
		}},
	}
	key := Key{PixelID: "998877", EventName: "Lead", EventID: "evt-1"}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					e := be.setup(t)
					stores := map[string]Store{}
					lastClaim := map[string]Claim{}
					for i, st := range tc.steps {
						s, ok := stores[st.who]
						if !ok && st.who != "" {
							s = e.store(st.who)
							stores[st.who] = s
						}
						ctx := ctxT(t, 10*time.Second)
						switch st.op {
						case "claim":
							rs, err := s.Claim(ctx, []Key{key})
							if err != nil {
								t.Fatalf("step %d: %s claim: %v", i, st.who, err)
							}
							if rs[0].Status != st.want {
								t.Fatalf("step %d: %s claim = %v, want %v", i, st.who, rs[0].Status, st.want)
							}
							if rs[0].Status == Claimed {
								lastClaim[st.who] = rs[0].Claim
							}
						case "confirm":
							if err := s.Confirm(ctx, []Claim{lastClaim[st.who]}); err != nil {
								t.Fatalf("step %d: %s confirm: %v", i, st.who, err)
							}
						case "release":
							if err := s.Release(ctx, []Claim{lastClaim[st.who]}); err != nil {
								t.Fatalf("step %d: %s release: %v", i, st.who, err)
							}
						case "extend":
							lost, err := s.Extend(ctx, []Claim{lastClaim[st.who]})
							if err != nil {
								t.Fatalf("step %d: %s extend: %v", i, st.who, err)
							}
							if len(lost) != st.lost {
								t.Fatalf("step %d: %s extend lost %d, want %d", i, st.who, len(lost), st.lost)
							}
						case "advance":
							e.advance(st.by(e))
						}
					}
				})
			}
		})
	}
}

func TestMemorySweepsExpiredEntries(t *testing.T) {
	clock := newFakeClock()
	s := NewMemory(WithClock(clock.now), WithLease(time.Second))
	ctx := ctxT(t, 10*time.Second)
	for round := range 10 {
		if _, err := s.Claim(ctx, keysN("sweep"+string(rune('a'+round)), 1000)); err != nil {
			t.Fatal(err)
		}
		clock.advance(2 * time.Second)
	}
	// 10,000 leases were taken, each expired before the next round: without sweeping all
	// would still be held.
	if n := len(s.m.m); n > 2*minSweep+1000 {
		t.Fatalf("memory store holds %d entries after expiry, want at most %d", n, 2*minSweep+1000)
	}
}

// TestValidIdentifierEveryByte holds validIdentifier and parseIdentifier to the same rule,
// and parseIdentifier's bytes to encoding/hex's.
func TestValidIdentifierEveryByte(t *testing.T) {
	const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for c := 0; c < 256; c++ {
		want := '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
		for _, at := range []int{0, 1, 31, len(digest) - 1} {
			b := []byte(digest)
			b[at] = byte(c)
			if got := validIdentifier(string(b)); got != want {
				t.Errorf("validIdentifier with byte %#x at %d = %v, want %v", c, at, got, want)
			}
			k, ok := parseIdentifier(string(b))
			if ok != want {
				t.Errorf("parseIdentifier with byte %#x at %d: ok = %v, want %v", c, at, ok, want)
			}
			if dec, _ := hex.DecodeString(string(b)); want && !bytes.Equal(k[:], dec) {
				t.Errorf("parseIdentifier with byte %#x at %d = %x, want %x", c, at, k, dec)
			}
		}
	}
	for _, v := range []string{"", digest[:63], digest + "0"} {
		if validIdentifier(v) {
			t.Errorf("validIdentifier(%q) = true for a value that is not 64 digits", v)
		}
		if _, ok := parseIdentifier(v); ok {
			t.Errorf("parseIdentifier(%q) ok for a value that is not 64 digits", v)
		}
	}
}

// TestRedisKeyGolden pins the storage key format: keys written by one version must be found
// by the next, or every event in flight during an upgrade could be sent twice. The expected
// digests are SHA-256("<pixel>\x00<event_name>\x00<event_id>") truncated to 16 bytes,
// computed outside Go; the long key does not fit redisKey's stack buffer.
func TestRedisKeyGolden(t *testing.T) {
	tests := []struct {
		k    Key
		want string
	}{
		{Key{PixelID: "1111111111111111", EventName: "Purchase", EventID: "ev-1"}, "capirelay:dedup:fa4fbb8f69c4434ba1b3ef16fd7fa1c1"},
		{Key{PixelID: strings.Repeat("9", 60), EventName: "Purchase", EventID: strings.Repeat("e", 80)}, "capirelay:dedup:d184fb1c1b950934d66216f1528320a1"},
	}
	for _, tt := range tests {
		if got := redisKey(DefaultPrefix, tt.k); got != tt.want {
			t.Errorf("redisKey(%+v) = %q, want %q", tt.k, got, tt.want)
		}
	}
}
