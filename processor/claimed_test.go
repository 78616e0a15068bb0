package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/dedupstore"
)

// settlingStore is a dedupstore.Store whose Extend reports every claim lost and, before
// answering, runs whileExtending: the window in which a claim can settle after the
// renewal's snapshot was taken.
type settlingStore struct {
	dedupstore.Store
	whileExtending func()
	mu             sync.Mutex
	extended       []string // tokens
}

func (s *settlingStore) Extend(_ context.Context, claims []dedupstore.Claim) ([]dedupstore.Claim, error) {
	s.mu.Lock()
	for _, c := range claims {
		s.extended = append(s.extended, c.Token)
	}
	s.mu.Unlock()
	if s.whileExtending != nil {
		s.whileExtending()
	}
	return claims, nil
}

func newClaimTestProcessor(store dedupstore.Store) *Processor {
	return &Processor{
		cfg:         Config{LeaseRenewInterval: time.Millisecond},
		deps:        Deps{Store: store},
		log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		claimedKeys: make(map[uint64]int),
	}
}

func claimedTokens(p *Processor) []string {
	p.claimedMu.Lock()
	defer p.claimedMu.Unlock()
	var out []string
	for i, t := range p.claimed {
		if t.claimSlot != i+1 {
			out = append(out, fmt.Sprintf("slot of %s is %d at index %d", t.claim.Token, t.claimSlot, i))
		}
		out = append(out, t.claim.Token)
	}
	slices.Sort(out)
	return out
}

func TestClaimedSetTracksAndUntracks(t *testing.T) {
	p := newClaimTestProcessor(nil)
	tasks := make([]*task, 5)
	for i := range tasks {
		tasks[i] = &task{keyHash: uint64(i % 2)} // two keys: 0 and 1
		p.trackClaim(tasks[i], dedupstore.Claim{Token: fmt.Sprint("t", i)})
	}
	p.trackClaim(tasks[2], dedupstore.Claim{Token: "t2"}) // twice: counted once
	tests := []struct {
		untrack []int
		want    []string
		keys    map[uint64]int
	}{
		{untrack: nil, want: []string{"t0", "t1", "t2", "t3", "t4"}, keys: map[uint64]int{0: 3, 1: 2}},
		{untrack: []int{1}, want: []string{"t0", "t2", "t3", "t4"}, keys: map[uint64]int{0: 3, 1: 1}},
		{untrack: []int{4, 4}, want: []string{"t0", "t2", "t3"}, keys: map[uint64]int{0: 2, 1: 1}}, // the last one, and again
		{untrack: []int{0, 3}, want: []string{"t2"}, keys: map[uint64]int{0: 1}},
		{untrack: []int{2}, want: nil, keys: map[uint64]int{}},
	}
	for i, tc := range tests {
		var batch []*task
		for _, j := range tc.untrack {
			batch = append(batch, tasks[j])
		}
		p.untrackClaims(batch)
		if got := claimedTokens(p); !slices.Equal(got, tc.want) {
			t.Errorf("step %d: claimed %v, want %v", i, got, tc.want)
		}
		if fmt.Sprint(p.claimedKeys) != fmt.Sprint(tc.keys) {
			t.Errorf("step %d: claimedKeys %v, want %v", i, p.claimedKeys, tc.keys)
		}
	}
}

// A claim settled while its renewal was in flight is not a lost lease, even when its task
// already carries another record's claim (a recycled task); a claim still live is.
func TestLeaseRenewalCountsOnlyLiveClaimsLost(t *testing.T) {
	store := &settlingStore{}
	p := newClaimTestProcessor(store)
	live, settled := &task{keyHash: 1}, &task{keyHash: 2}
	p.trackClaim(live, dedupstore.Claim{Token: "live"})
	p.trackClaim(settled, dedupstore.Claim{Token: "old"})
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	store.whileExtending = func() {
		once.Do(func() {
			p.untrackClaims([]*task{settled})
			p.recycle(settled)
			// The same memory now holds another record's live claim.
			p.trackClaim(settled, dedupstore.Claim{Token: "new"})
		})
		cancel()
	}
	p.runLeaseRenewal(ctx)
	if got := p.stats.leasesLost.Load(); got != 1 {
		t.Errorf("leases lost = %d, want 1 (only %q was live and reported lost)", got, "live")
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if slices.Sort(store.extended); !slices.Equal(store.extended, []string{"live", "old"}) {
		t.Errorf("extended %v, want [live old]", store.extended)
	}
}
