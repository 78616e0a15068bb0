package processor

import (
	"sort"
	"sync"
	"time"
)

// tp names one topic partition.
type tp struct {
	topic     string
	partition int32
}

// partitionState tracks the offsets of one assigned partition that were fetched but are not
// yet done. Offsets arrive in increasing order (Kafka fetch order) but finish in any order,
// so the commit watermark is the first offset still pending, not the highest finished.
type partitionState struct {
	gen uint64 // assignment generation; records from an older one are ignored

	// pending holds fetched offsets in fetch order from head on; done marks those finished.
	pending []pendingOffset
	head    int
	open    int // pending offsets not yet done

	next      int64 // offset after the last fetched record; the watermark when nothing is open
	committed int64 // last offset committed for this partition, -1 if none by us
	epoch     int32 // leader epoch of the last fetched record
	paused    bool

	highWatermark int64     // the partition's end offset as of the last fetch
	progressAt    time.Time // when the watermark last moved (or the partition was assigned)
}

type pendingOffset struct {
	offset int64
	done   bool
}

// watermark is the offset to commit: every offset below it is done.
func (ps *partitionState) watermark() int64 {
	if ps.head < len(ps.pending) {
		return ps.pending[ps.head].offset
	}
	return ps.next
}

// tracker owns the per-partition state of the current assignment. All methods are safe for
// concurrent use: the poll loop adds, pipeline goroutines finish, the commit loop and the
// rebalance callbacks read.
type tracker struct {
	mu    sync.Mutex
	gen   uint64
	parts map[tp]*partitionState
	// changed is closed (and replaced) whenever an offset finishes or partitions are
	// dropped, so any number of waiters (revoke, shutdown, flow control) can re-check
	// without polling.
	changed chan struct{}
	// watched says someone took changed since it was last replaced: only then does a
	// change need a new channel. Records finish tens of thousands of times a second, and a
	// channel each, with a goroutine woken each, was a cost of its own.
	watched bool

	// open counts the records not done over every partition, and idle receives (without
	// blocking the finisher) when a finish brings it to zero.
	open int
	idle chan struct{}
}

func newTracker() *tracker {
	return &tracker{parts: make(map[tp]*partitionState), changed: make(chan struct{}), idle: make(chan struct{}, 1)}
}

// idled returns the channel that receives when every fetched record is done.
func (t *tracker) idled() <-chan struct{} { return t.idle }

// changes returns a channel closed at the next change.
func (t *tracker) changes() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.watched = true
	return t.changed
}

// assign starts tracking the partitions. A partition already tracked keeps its state:
// cooperative rebalancing re-announces nothing it keeps, but an eager one may.
func (t *tracker) assign(assigned map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	for topic, parts := range assigned {
		for _, p := range parts {
			key := tp{topic, p}
			if _, ok := t.parts[key]; ok {
				continue
			}
			t.parts[key] = &partitionState{gen: t.gen, next: -1, committed: -1, epoch: -1, highWatermark: -1, progressAt: time.Now()}
		}
	}
}

// drop forgets the partitions; records of theirs still in the pipeline finish unseen.
func (t *tracker) drop(parts map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			if st := t.parts[tp{topic, p}]; st != nil {
				t.open -= st.open
			}
			delete(t.parts, tp{topic, p})
		}
	}
	t.signal()
}

// ticket identifies one tracked record so that finishing it is cheap and safe across
// rebalances.
type ticket struct {
	key    tp
	gen    uint64
	offset int64
}

// add registers a fetched record. ok is false when the partition is not assigned to us (the
// record was fetched before a revoke): the caller must then not process it, since the new
// owner will.
func (t *tracker) add(topic string, partition int32, offset int64, epoch int32) (tk ticket, open int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := tp{topic, partition}
	ps := t.parts[key]
	if ps == nil {
		return ticket{}, 0, false
	}
	if ps.next >= 0 && offset < ps.next {
		// Refetched after a seek or a reassignment within one generation: the earlier copy
		// is still tracked, so this one must not be processed twice in this process.
		return ticket{}, ps.open, false
	}
	// Compact the slice when the done prefix dominates, so memory follows in-flight
	// records, not the partition's history.
	if ps.head > 1024 && ps.head*2 > len(ps.pending) {
		n := copy(ps.pending, ps.pending[ps.head:])
		ps.pending = ps.pending[:n]
		ps.head = 0
	}
	if ps.open == 0 {
		ps.progressAt = time.Now() // a stall is measured from the first open record
	}
	ps.pending = append(ps.pending, pendingOffset{offset: offset})
	ps.open++
	t.open++
	ps.next = offset + 1
	ps.epoch = epoch
	return ticket{key: key, gen: ps.gen, offset: offset}, ps.open, true
}

// finish marks a record done. It reports the partition's open count after the change, and
// false if the partition is no longer ours (the record's outcome still stands, but its
// offset is now the new owner's to commit).
func (t *tracker) finish(tk ticket) (open int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.parts[tk.key]
	if ps == nil || ps.gen != tk.gen {
		return 0, false
	}
	rest := ps.pending[ps.head:]
	i := sort.Search(len(rest), func(i int) bool { return rest[i].offset >= tk.offset })
	if i == len(rest) || rest[i].offset != tk.offset || rest[i].done {
		return ps.open, false
	}
	rest[i].done = true
	ps.open--
	if t.open--; t.open == 0 {
		select {
		case t.idle <- struct{}{}:
		default: // one wake-up pending is enough
		}
	}
	if i == 0 {
		ps.progressAt = time.Now()
	}
	for ps.head < len(ps.pending) && ps.pending[ps.head].done {
		ps.head++
	}
	if ps.head == len(ps.pending) {
		ps.pending = ps.pending[:0]
		ps.head = 0
	}
	t.signal()
	return ps.open, true
}

// signal wakes every waiter; t.mu must be held.
func (t *tracker) signal() {
	if !t.watched {
		return
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.watched = false
}

// owns reports whether the ticket's partition is still assigned in the ticket's generation.
func (t *tracker) owns(tk ticket) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.parts[tk.key]
	return ps != nil && ps.gen == tk.gen
}

// toCommit returns, for the given partitions (all when nil), the watermarks that moved past
// what was last committed.
func (t *tracker) toCommit(only map[string][]int32) map[tp]commitPoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[tp]commitPoint)
	consider := func(key tp, ps *partitionState) {
		if ps.next < 0 {
			return // nothing fetched yet: nothing of ours to commit
		}
		if wm := ps.watermark(); wm > ps.committed {
			out[key] = commitPoint{offset: wm, epoch: ps.epoch, gen: ps.gen}
		}
	}
	if only == nil {
		for key, ps := range t.parts {
			consider(key, ps)
		}
		return out
	}
	for topic, parts := range only {
		for _, p := range parts {
			key := tp{topic, p}
			if ps := t.parts[key]; ps != nil {
				consider(key, ps)
			}
		}
	}
	return out
}

type commitPoint struct {
	offset int64
	epoch  int32
	gen    uint64
}

// committed records a successful commit so it is not repeated.
func (t *tracker) committed(points map[tp]commitPoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, cp := range points {
		if ps := t.parts[key]; ps != nil && ps.gen == cp.gen && cp.offset > ps.committed {
			ps.committed = cp.offset
		}
	}
}

// openIn counts records not yet done in the given partitions (all when nil).
func (t *tracker) openIn(only map[string][]int32) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	if only == nil {
		for _, ps := range t.parts {
			n += ps.open
		}
		return n
	}
	for topic, parts := range only {
		for _, p := range parts {
			if ps := t.parts[tp{topic, p}]; ps != nil {
				n += ps.open
			}
		}
	}
	return n
}

// pauseChanges returns the partitions whose open count is at or above limit and that are not
// yet paused, and those paused whose open count fell to resumeAt or below.
func (t *tracker) pauseChanges(limit, resumeAt int) (pause, resume map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, ps := range t.parts {
		switch {
		case !ps.paused && ps.open >= limit:
			if pause == nil {
				pause = make(map[string][]int32)
			}
			pause[key.topic] = append(pause[key.topic], key.partition)
			ps.paused = true
		case ps.paused && ps.open <= resumeAt:
			if resume == nil {
				resume = make(map[string][]int32)
			}
			resume[key.topic] = append(resume[key.topic], key.partition)
			ps.paused = false
		}
	}
	return pause, resume
}

// setHighWatermark records a partition's end offset as a fetch reported it.
func (t *tracker) setHighWatermark(topic string, partition int32, hw int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ps := t.parts[tp{topic, partition}]; ps != nil && hw > ps.highWatermark {
		ps.highWatermark = hw
	}
}

// PartitionStat describes one assigned partition.
type PartitionStat struct {
	Topic     string
	Partition int32
	// Committed is the last offset this process committed; -1 before its first commit.
	Committed int64
	// HighWatermark is the partition's end offset as of the last fetch; -1 before one.
	HighWatermark int64
	// Open counts records fetched but not yet done.
	Open int
	// Stalled is how long records have been open without the commit watermark moving; zero
	// when nothing is open. A growing value is the stall an SRE alerts on.
	Stalled time.Duration
	Paused  bool
}

func (t *tracker) partitionStats(now time.Time) []PartitionStat {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PartitionStat, 0, len(t.parts))
	for key, ps := range t.parts {
		st := PartitionStat{Topic: key.topic, Partition: key.partition, Committed: ps.committed,
			HighWatermark: ps.highWatermark, Open: ps.open, Paused: ps.paused}
		if ps.open > 0 {
			st.Stalled = now.Sub(ps.progressAt)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}
