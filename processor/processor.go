package processor

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

// Decoder turns a record value into the one internal event type.
type Decoder interface {
	Decode(ctx context.Context, topic string, value []byte) (schema.Event, error)
}

// ownedDecoder is a Decoder that can keep the value it decodes (the task's own copy of the
// record) instead of copying it again, and write the event into the caller's (schema's
// Decoder does both).
type ownedDecoder interface {
	DecodeOwnedInto(ctx context.Context, topic string, value []byte, dst *schema.Event) error
}

// Sink takes events for delivery and reports each one's outcome through Item.Done.
type Sink interface {
	Submit(ctx context.Context, it sink.Item) error
	// Flush sends everything submitted and returns once every Done has been called.
	Flush(ctx context.Context) error
}

// Deps are the processor's collaborators. Decoder, Store and Sink are required; Identities
// is optional (no external_id enrichment without it).
type Deps struct {
	Decoder    Decoder
	Store      dedupstore.Store
	Identities dedupstore.IdentityMap
	Sink       Sink
	// Prepare normalizes, hashes and validates a decoded event into *out, the event to
	// send, reporting the values it had to drop. An error is a permanent verdict on the
	// event (it is dead-lettered with it). Both events are passed by pointer: they are
	// about a kilobyte each, and copies of them in and out were a cost of their own.
	Prepare func(ev *schema.Event, now time.Time, out *sink.Event) ([]sink.Dropped, error)
}

// Processor consumes the configured topics in a consumer group and drives each record to
// done: delivered, duplicate, dropped for consent, or dead-lettered. It commits, per
// partition, only the offset below which every record is done.
type Processor struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	cl   *kgo.Client

	tracker  *tracker
	batches  *batchPool // fetched batches' memory, back once their records are detached
	commitMu sync.Mutex
	stats    counters

	finishing chan completion // to the finisher goroutine
	workDone  chan struct{}   // closed when the pipeline goroutines stop
	closed    chan struct{}   // closed when Crash has closed the client
	heldMu    sync.Mutex
	held      []*task

	// claimed holds the tasks whose claim is live (claimed, not yet confirmed or released);
	// their leases are renewed while they are in the sink. Each knows its index
	// (task.claimSlot), so taking one out is a swap, not a map operation. claimedKeys counts
	// them by task.keyHash: hashing a Key's three strings at each of its five map operations
	// per record was 2.4% of the relay's CPU. Two keys with one hash would only make a record
	// wait for an unrelated claim to settle before it is claimed.
	claimedMu   sync.Mutex
	claimed     []*task
	claimedKeys map[uint64]int
	keySeed     maphash.Seed

	// tasks recycles the tasks of records that are done; see recycle.
	tasks sync.Pool

	// crashed turns every commit and acknowledgement into a no-op; see Crash.
	crashed atomic.Bool
	dlqWG   sync.WaitGroup // dead-letter produces not yet acknowledged
}

// New builds a processor and its Kafka client. It does not connect until Run.
func New(cfg Config, deps Deps) (*Processor, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Decoder == nil || deps.Store == nil || deps.Sink == nil || deps.Prepare == nil {
		return nil, errors.New("processor: Decoder, Store, Sink and Prepare are required")
	}
	p := &Processor{
		cfg:         cfg,
		deps:        deps,
		log:         cfg.Logger,
		tracker:     newTracker(),
		batches:     new(batchPool),
		claimedKeys: make(map[uint64]int),
		keySeed:     maphash.MakeSeed(),
		finishing:   make(chan completion, 4096),
		workDone:    make(chan struct{}),
		closed:      make(chan struct{}),
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		// A new group starts from the beginning: losing a topic's backlog is worse than
		// reading it (duplicates of what was already sent are dropped by the dedup store).
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onLost),
		kgo.AllowAutoTopicCreation(),
		kgo.FetchMaxBytes(cfg.FetchMaxBytes),
		kgo.FetchMaxWait(cfg.FetchMaxWait),
		kgo.WithPools(p.batches),
		kgo.WithDecompressor(newLZ4Decompressor(1<<30, p.batches)), // franz-go's default bound
	}
	if cfg.GroupProtocol == "consumer" {
		// KIP-848 assigns incrementally on the broker; franz-go needs a sticky (or range)
		// balancer named for it.
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer())
	} else {
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	opts = append(opts, cfg.KafkaOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("processor: kafka client: %w", err)
	}
	p.cl = cl
	return p, nil
}

// Partitions describes the partitions assigned to this process: offsets, lag, open records,
// and how long each has gone without progress.
func (p *Processor) Partitions() []PartitionStat { return p.tracker.partitionStats(time.Now()) }

// Client returns the Kafka client, for admin calls such as lag reporting.
func (p *Processor) Client() *kgo.Client { return p.cl }

// Run consumes until ctx is done, then drains gracefully within ShutdownTimeout: it stops
// fetching, flushes the sink, waits for acknowledgements and dead-letter produces, commits
// and leaves the group. It returns nil after a clean drain.
func (p *Processor) Run(ctx context.Context) error {
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); p.runLeaseRenewal(workCtx) }()
	go func() { defer wg.Done(); p.runFinisher(workCtx) }()
	go func() { defer wg.Done(); p.runHeld(workCtx) }()
	go func() { defer wg.Done(); p.runFlowControl(workCtx) }()
	go func() { defer wg.Done(); p.runCommits(workCtx) }()

	// The claimer runs a poll's Redis round trips and sink submits while the poll loop
	// fetches and decodes the next one, so the CPU work and the network wait overlap.
	claims := make(chan []*task, 1)
	claimerDone := make(chan struct{})
	go func() {
		defer close(claimerDone)
		for batch := range claims {
			if !p.crashed.Load() {
				p.claimAndSubmit(workCtx, batch)
			}
		}
	}()
	p.pollLoop(ctx, workCtx, claims)
	close(claims)
	<-claimerDone

	if p.crashed.Load() {
		stopWork()
		close(p.workDone)
		wg.Wait()
		<-p.closed
		return nil
	}
	err := p.drain()
	stopWork()
	close(p.workDone)
	wg.Wait()
	// Close leaves the group, and the revoke callback commits once more (a no-op by now). A
	// static member (InstanceID) does not leave: Kafka keeps its partitions for its return
	// until its session times out, which is why drain committed above.
	p.cl.Close()
	return err
}

// drain finishes what is in flight after fetching stopped.
func (p *Processor) drain() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
	defer cancel()
	p.log.Info("draining", "open", p.tracker.openIn(nil))
	var errs []error
	if err := p.deps.Sink.Flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("processor: flush sink: %w", err))
	}
	if err := p.waitOpen(ctx, nil); err != nil {
		errs = append(errs, fmt.Errorf("processor: %d records still open at shutdown: %w", p.tracker.openIn(nil), err))
	}
	if err := p.commit(ctx, nil); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitOpen waits until no record of the partitions (all when nil) is open.
func (p *Processor) waitOpen(ctx context.Context, parts map[string][]int32) error {
	for {
		ch := p.tracker.changes()
		if p.tracker.openIn(parts) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Crash stops the processor the way a killed process stops: no flush, no further commit, no
// acknowledgement recorded. Records in flight stay uncommitted and are consumed again by
// the next owner. It exists for crash tests; Run returns soon after.
func (p *Processor) Crash() {
	if p.crashed.Swap(true) {
		return
	}
	// Closing the client leaves the group, which takes a while; a killed process would
	// not wait for it, so neither does Crash. Run waits for it before returning.
	go func() {
		p.cl.Close()
		close(p.closed)
	}()
}

func (p *Processor) pollLoop(ctx, workCtx context.Context, claims chan<- []*task) {
	for {
		room, ok := p.waitRoom(ctx)
		if !ok {
			return
		}
		fetches := p.cl.PollRecords(ctx, min(p.cfg.PollRecords, room))
		if fetches.IsClientClosed() || ctx.Err() != nil || p.crashed.Load() {
			return
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if fp.Err == nil {
				p.tracker.setHighWatermark(fp.Topic, fp.Partition, fp.HighWatermark)
			}
		})
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				p.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
			}
		})
		var batch []*task
		fetches.EachRecord(func(r *kgo.Record) {
			tk, _, ok := p.tracker.add(r.Topic, r.Partition, r.Offset, r.LeaderEpoch)
			if !ok {
				r.Recycle() // not ours to carry: its batch's memory may go back to the pool
				return
			}
			batch = append(batch, p.newTask(tk, r))
		})
		if len(batch) == 0 {
			continue
		}
		p.stats.consumed.Add(int64(len(batch)))
		p.flowControl()
		// The pipeline runs on workCtx so a stop request does not abandon a batch halfway;
		// what is already fetched is carried to done during the drain.
		if ready := p.process(workCtx, batch); len(ready) > 0 {
			claims <- ready
		}
	}
}

// waitRoom waits until fewer than MaxInFlight records are open and returns how many more
// may be polled; false once ctx is done. Not polling, rather than pausing, leaves what the
// client fetched ahead in its buffer.
func (p *Processor) waitRoom(ctx context.Context) (int, bool) {
	for waited := false; ; waited = true {
		ch := p.tracker.changes()
		if open := p.tracker.openIn(nil); open < p.cfg.MaxInFlight {
			return p.cfg.MaxInFlight - open, true
		}
		if !waited {
			p.stats.waits.Add(1)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, false
		}
	}
}

// runFlowControl pauses partitions that reached their in-flight bound and resumes those
// that drained. It looks every flowControlInterval rather than at every finished record:
// the bound that holds memory is MaxInFlight, checked before every poll, and the
// per-partition one is a guard against a stuck partition, for which a few milliseconds do
// not matter.
func (p *Processor) runFlowControl(ctx context.Context) {
	t := time.NewTicker(flowControlInterval)
	defer t.Stop()
	for {
		p.flowControl()
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// flowControlInterval is how often paused and pausable partitions are looked at; well
// under the fetch wait, so a resumed partition joins the next fetch.
const flowControlInterval = 20 * time.Millisecond

func (p *Processor) flowControl() {
	limit := p.cfg.MaxInFlightPerPartition
	pause, resume := p.tracker.pauseChanges(limit, limit/2)
	if len(pause) > 0 {
		p.cl.PauseFetchPartitions(pause)
		p.stats.pauses.Add(1)
	}
	if len(resume) > 0 {
		p.cl.ResumeFetchPartitions(resume)
	}
}

// runCommits commits every CommitInterval, and as soon as every fetched record is done:
// when a burst has drained its offsets are committed at once rather than up to an
// interval later, so a restart or a rebalance right after it replays none of it. Commits
// on idling are at least idleCommitGap apart, so a trickle of records that keeps the
// pipeline idling in between does not commit for each one.
func (p *Processor) runCommits(ctx context.Context) {
	t := time.NewTicker(p.cfg.CommitInterval)
	defer t.Stop()
	gap := min(idleCommitGap, p.cfg.CommitInterval)
	last := time.Now()
	var soon <-chan time.Time // armed when the pipeline idled within gap of the last commit
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.tracker.idled():
			if wait := gap - time.Since(last); wait > 0 {
				if soon == nil {
					soon = time.After(wait)
				}
				continue
			}
		case <-soon:
		}
		soon = nil
		last = time.Now()
		if err := p.commit(ctx, nil); err != nil && ctx.Err() == nil {
			p.log.Warn("commit failed; retrying next interval", "err", err)
		}
	}
}

// idleCommitGap is the least time between two commits made because the pipeline idled.
const idleCommitGap = 100 * time.Millisecond

// commit commits the watermarks of the partitions (all when nil) that moved. Commits are
// serialized so a slow earlier commit can never land after, and rewind, a later one.
func (p *Processor) commit(ctx context.Context, only map[string][]int32) error {
	if p.crashed.Load() {
		return nil
	}
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	points := p.tracker.toCommit(only)
	if len(points) == 0 {
		return nil
	}
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	for key, cp := range points {
		m := offsets[key.topic]
		if m == nil {
			m = make(map[int32]kgo.EpochOffset)
			offsets[key.topic] = m
		}
		m[key.partition] = kgo.EpochOffset{Epoch: cp.epoch, Offset: cp.offset}
	}
	var cerr error
	p.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, pt := range t.Partitions {
				if pt.ErrorCode != 0 {
					cerr = errors.Join(cerr, fmt.Errorf("topic %s partition %d: error code %d", t.Topic, pt.Partition, pt.ErrorCode))
					delete(points, tp{t.Topic, pt.Partition})
				}
			}
		}
	})
	p.tracker.committed(points)
	if cerr != nil {
		return fmt.Errorf("processor: commit offsets: %w", cerr)
	}
	p.stats.commits.Add(1)
	return nil
}

func (p *Processor) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	// A cooperative rebalance that gives this member nothing new (another member joined or
	// a static member came back) calls this with nothing: there is nothing to track, and a
	// log line would read as if partitions moved.
	if p.crashed.Load() || len(assigned) == 0 {
		return
	}
	p.tracker.assign(assigned)
	// A pause is sticky across rebalances in franz-go: a partition we paused, lost and got
	// back would otherwise never be fetched again.
	cl.ResumeFetchPartitions(assigned)
	p.log.Info("partitions assigned", "partitions", assigned)
}

func (p *Processor) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if p.crashed.Load() || len(revoked) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.RevokeTimeout)
	defer cancel()
	if err := p.waitOpen(wctx, revoked); err != nil {
		// Records still open are handed over uncommitted: the next owner consumes them
		// again, and the dedup store drops those we did send.
		p.log.Warn("revoking with records in flight", "open", p.tracker.openIn(revoked), "partitions", revoked)
	}
	if err := p.commit(ctx, revoked); err != nil {
		p.log.Warn("commit on revoke failed", "err", err, "partitions", revoked)
	}
	p.tracker.drop(revoked)
	cl.ResumeFetchPartitions(revoked)
	p.log.Info("partitions revoked", "partitions", revoked)
}

func (p *Processor) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	if p.crashed.Load() {
		return
	}
	// Commits would fail now that the generation is gone; whatever we did not commit is
	// consumed again by the new owner.
	p.tracker.drop(lost)
	cl.ResumeFetchPartitions(lost)
	p.log.Warn("partitions lost", "partitions", lost)
}
