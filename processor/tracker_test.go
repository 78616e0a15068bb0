package processor

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestTrackerWatermark(t *testing.T) {
	tests := []struct {
		name    string
		offsets []int64 // fetched, in order
		finish  []int64 // finished, in this order
		want    int64   // watermark to commit; -1 means nothing to commit
	}{
		{"nothing finished", []int64{0, 1, 2}, nil, 0},
		{"all finished in order", []int64{0, 1, 2}, []int64{0, 1, 2}, 3},
		{"all finished out of order", []int64{0, 1, 2}, []int64{2, 0, 1}, 3},
		{"gap stops the watermark", []int64{0, 1, 2, 3}, []int64{0, 2, 3}, 1},
		{"offsets with holes (compaction)", []int64{5, 9, 12}, []int64{5, 9}, 12},
		{"holes, all done", []int64{5, 9, 12}, []int64{12, 9, 5}, 13},
		{"first pending blocks everything", []int64{7, 8, 9}, []int64{8, 9}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker()
			tr.assign(map[string][]int32{"t": {0}})
			tickets := map[int64]ticket{}
			for _, o := range tt.offsets {
				tk, _, ok := tr.add("t", 0, o, 1)
				if !ok {
					t.Fatalf("add(%d) refused", o)
				}
				tickets[o] = tk
			}
			for _, o := range tt.finish {
				if _, ok := tr.finish(tickets[o]); !ok {
					t.Fatalf("finish(%d) refused", o)
				}
			}
			got := tr.toCommit(nil)[tp{"t", 0}]
			if got.offset != tt.want {
				t.Fatalf("watermark = %d, want %d", got.offset, tt.want)
			}
			if wantOpen := len(tt.offsets) - len(tt.finish); tr.openIn(nil) != wantOpen {
				t.Fatalf("open = %d, want %d", tr.openIn(nil), wantOpen)
			}
		})
	}
}

func TestTrackerCommitOnlyMovesForward(t *testing.T) {
	tr := newTracker()
	tr.assign(map[string][]int32{"t": {0}})
	a, _, _ := tr.add("t", 0, 0, 1)
	tr.add("t", 0, 1, 1)
	tr.finish(a)
	pts := tr.toCommit(nil)
	if pts[tp{"t", 0}].offset != 1 {
		t.Fatalf("want watermark 1, got %+v", pts)
	}
	tr.committed(pts)
	if pts := tr.toCommit(nil); len(pts) != 0 {
		t.Fatalf("nothing moved, yet toCommit = %+v", pts)
	}
}

func TestTrackerRevokedPartitionIgnoresLateFinishes(t *testing.T) {
	tr := newTracker()
	tr.assign(map[string][]int32{"t": {0, 1}})
	tk, _, _ := tr.add("t", 0, 10, 1)
	tr.drop(map[string][]int32{"t": {0}})
	if _, ok := tr.finish(tk); ok {
		t.Fatal("finish on a revoked partition was accepted")
	}
	if tr.owns(tk) {
		t.Fatal("owns() true after revoke")
	}
	// Reassigned: a new generation; the old ticket must still not count.
	tr.assign(map[string][]int32{"t": {0}})
	if _, ok := tr.finish(tk); ok {
		t.Fatal("finish of an old generation's ticket was accepted after reassignment")
	}
	if _, _, ok := tr.add("t", 2, 0, 1); ok {
		t.Fatal("add on an unassigned partition was accepted")
	}
}

func TestTrackerRefetchInSameGenerationIsNotTrackedTwice(t *testing.T) {
	tr := newTracker()
	tr.assign(map[string][]int32{"t": {0}})
	tr.add("t", 0, 0, 1)
	tr.add("t", 0, 1, 1)
	if _, _, ok := tr.add("t", 0, 1, 1); ok {
		t.Fatal("the same offset was tracked twice")
	}
}

func TestTrackerPauseResume(t *testing.T) {
	tr := newTracker()
	tr.assign(map[string][]int32{"t": {0}})
	var tks []ticket
	for o := int64(0); o < 10; o++ {
		tk, _, _ := tr.add("t", 0, o, 1)
		tks = append(tks, tk)
	}
	pause, resume := tr.pauseChanges(10, 5)
	if len(pause["t"]) != 1 || resume != nil {
		t.Fatalf("at the bound: pause=%v resume=%v", pause, resume)
	}
	if pause, _ := tr.pauseChanges(10, 5); pause != nil {
		t.Fatal("paused twice")
	}
	for _, tk := range tks[:4] {
		tr.finish(tk)
	}
	if _, resume := tr.pauseChanges(10, 5); resume != nil {
		t.Fatal("resumed above the resume mark")
	}
	tr.finish(tks[4])
	if _, resume := tr.pauseChanges(10, 5); len(resume["t"]) != 1 {
		t.Fatal("not resumed at the resume mark")
	}
}

// TestTrackerRandomized checks the watermark against a simple model under random finish
// orders, including the slice compaction path.
func TestTrackerRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		tr := newTracker()
		tr.assign(map[string][]int32{"t": {0}})
		n := 5000
		var tks []ticket
		var offs []int64
		off := int64(0)
		for i := 0; i < n; i++ {
			off += int64(rng.IntN(3) + 1)
			tk, _, _ := tr.add("t", 0, off, 1)
			tks = append(tks, tk)
			offs = append(offs, off)
		}
		done := make([]bool, n)
		order := rng.Perm(n)
		for k, i := range order {
			tr.finish(tks[i])
			done[i] = true
			if k%97 != 0 {
				continue
			}
			want := off + 1
			for j := range done {
				if !done[j] {
					want = offs[j]
					break
				}
			}
			if got := tr.toCommit(nil)[tp{"t", 0}].offset; got != want {
				t.Fatalf("round %d step %d: watermark %d, want %d", round, k, got, want)
			}
		}
		if got := tr.toCommit(nil)[tp{"t", 0}].offset; got != off+1 {
			t.Fatalf("all done: watermark %d, want %d", got, off+1)
		}
	}
}

func TestTrackerPartitionStats(t *testing.T) {
	tr := newTracker()
	tr.assign(map[string][]int32{"t": {0, 1}})
	a, _, _ := tr.add("t", 0, 0, 1)
	tr.add("t", 0, 1, 1)
	tr.setHighWatermark("t", 0, 10)
	later := time.Now().Add(time.Minute)
	st := tr.partitionStats(later)
	if len(st) != 2 || st[0].Partition != 0 || st[0].Open != 2 || st[0].HighWatermark != 10 || st[0].Stalled < 59*time.Second {
		t.Fatalf("stats %+v", st)
	}
	if st[1].Open != 0 || st[1].Stalled != 0 || st[1].HighWatermark != -1 {
		t.Fatalf("idle partition %+v", st[1])
	}
	tr.finish(a)
	if st := tr.partitionStats(time.Now()); st[0].Stalled > time.Second {
		t.Fatalf("watermark moved, yet stalled for %s", st[0].Stalled)
	}
}

// TestTrackerIdle: idled receives when the last record not done over every partition
// finishes, and records of a dropped partition stop counting.
func TestTrackerIdle(t *testing.T) {
	tr := newTracker()
	tr.assign(map[string][]int32{"t": {0, 1}})
	idle := func() bool {
		select {
		case <-tr.idled():
			return true
		default:
			return false
		}
	}
	add := func(p int32, o int64) ticket {
		tk, _, ok := tr.add("t", p, o, 1)
		if !ok {
			t.Fatalf("add(%d, %d) refused", p, o)
		}
		return tk
	}
	a, b := add(0, 0), add(1, 0)
	tr.finish(a)
	if idle() {
		t.Fatal("idle with a record of partition 1 open")
	}
	tr.finish(b)
	if !idle() {
		t.Fatal("not idle with every record done")
	}
	add(1, 1) // left open, then its partition is dropped
	tr.drop(map[string][]int32{"t": {1}})
	c := add(0, 1)
	tr.finish(c)
	if !idle() {
		t.Fatal("a dropped partition's open record still counts")
	}
	tr.finish(c) // a second finish of the same record changes nothing
	if idle() {
		t.Fatal("idle signalled twice for one drain")
	}
}
