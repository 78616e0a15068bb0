package dedupstore

import (
	"strings"
	"testing"
)

func TestNextLease(t *testing.T) {
	s := newTokenSource("relay-0")
	a, b := s.nextLease(), s.nextLease()
	if a == b || !strings.HasPrefix(a, leasePrefix+s.prefix) || !strings.HasPrefix(b, leasePrefix+s.prefix) {
		t.Fatalf("leases %q, %q: want distinct, each %q and a counter", a, b, leasePrefix+s.prefix)
	}
	if tok := a[len(leasePrefix):]; tok == s.next() || !strings.HasPrefix(tok, s.prefix) {
		t.Fatalf("token %q of lease %q", tok, a)
	}
	long := newTokenSource(strings.Repeat("o", 200)) // beyond the stack buffer
	if l := long.nextLease(); !strings.HasPrefix(l, leasePrefix+long.prefix) {
		t.Fatalf("lease for a long owner: %q", l)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.nextLease() }); n > 1 {
		t.Errorf("nextLease allocates %v times, want 1", n)
	}
}
