package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Reasons an Outcome gives for an event that was not delivered. They are stable: dead-letter
// records and metrics carry them.
const (
	// ReasonRetriesExhausted: transient failures or throttles outlasted the retry budget.
	ReasonRetriesExhausted = "retries_exhausted"
	// ReasonAuth: the pixel's access token is missing, expired or invalid (ClassAuth).
	ReasonAuth = "auth"
	// ReasonPermission: the token may not send to the pixel (ClassPermission).
	ReasonPermission = "permission"
	// ReasonInvalid: Meta rejected the event itself; Code, Subcode and Message say why.
	ReasonInvalid = "invalid"
	// ReasonShutdown: Close's context ended before the event was settled. Meta may or may
	// not have it, so the caller should neither commit nor dead-letter it, and let Kafka
	// deliver it again.
	ReasonShutdown = "shutdown"
)

var (
	// ErrBatcherClosed is returned by Submit once Close has been called, and by a second
	// Close.
	ErrBatcherClosed = errors.New("sink: batcher closed")
	// ErrNoPixel is returned by Submit for an Item without a PixelID.
	ErrNoPixel = errors.New("sink: item has no pixel id")
)

// Outcome is what became of one submitted event.
type Outcome struct {
	// Delivered is true when Meta acknowledged the request holding the event: HTTP 200 with
	// events_received equal to the number of events sent.
	Delivered bool
	// Class is the class of the last error when !Delivered.
	Class Class
	// Reason is one of the Reason constants when !Delivered.
	Reason string
	// Code and Subcode are Meta's error code and error_subcode, when Meta gave one.
	Code, Subcode int
	// Message is Meta's message (with its user-facing title and text when present), or the
	// error text when Meta gave none.
	Message string
	// FBTraceID identifies the request to Meta's support; set on success too.
	FBTraceID string
	// Attempts is how many requests carried the event.
	Attempts int
	// Err is the last error, usually an *APIError; nil when Delivered.
	Err error
}

// Item is one event to send to one pixel.
type Item struct {
	PixelID string
	// Event is the event to send. The Batcher keeps the pointer until Done is called and
	// does not read the event after: the caller must not change the event after Submit,
	// and may reuse its memory once Done has run (TestBatcherLeavesEventsAloneAfterDone).
	Event *Event
	// Done is called exactly once with the event's Outcome for every Item that Submit
	// accepted. It runs on a batcher goroutine (or, for events Close gives up on, on
	// Close's), must not block and must not call back into the Batcher.
	Done func(Outcome)
}

// Batcher groups events per pixel into Conversions API requests and sends them through a
// Sender, retrying, throttling and bisecting as the answers demand, until every event has
// an Outcome. It is safe for concurrent use.
//
// A Batcher owns two kinds of goroutines: one scheduler, which flushes batches whose linger
// has expired and starts requests, and one per request in flight (at most MaxInFlight).
// Close stops them all.
type Batcher struct {
	sender   Sender
	cfg      batcherConfig
	log      *slog.Logger
	counters batcherCounters

	// ctx is the context of every Send; it is cancelled when Close gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	wake    chan struct{} // nudges the scheduler; capacity 1
	stop    chan struct{} // closed when Close is done flushing; the scheduler exits
	closing chan struct{} // closed when Close starts; blocked Submits give up
	wg      sync.WaitGroup

	mu       sync.Mutex
	closed   bool // Close has started: Submit refuses new items
	aborted  bool // Close gave up: nothing more is sent, and failures settle as shutdown
	pixels   map[string]*pixelQueue
	linger   lingerQueue
	ready    []*batch // batches waiting for an in-flight slot, a backoff or a pixel throttle
	inFlight int
	// endpointNotBefore holds back every request after requests got no answer at all
	// (connection refused or reset, timeouts, 502/503/504): then the endpoint is failing,
	// not one batch, and every batch retrying on its own schedule would hammer it all
	// through an outage. endpointFailures counts such failures since the last success.
	endpointNotBefore time.Time
	endpointFailures  int
	pending           int           // accepted items whose Done has not returned yet
	buffered          int           // items of pending still in pixel buffers
	space             chan struct{} // closed when pending drops below maxPending; nil if nobody waits

	// Flush waits for the items submitted before it, so items are counted per epoch: each
	// Flush starts a new one and waits until no earlier epoch has items outstanding.
	epoch        uint64
	outstanding  map[uint64]int
	flushWaiters []flushWaiter
}

// pixelQueue buffers the events of one pixel until they form a batch, and holds the pixel's
// throttle.
type pixelQueue struct {
	id     string
	events []*Event
	metas  []itemMeta
	gen    uint64 // incremented at every cut; invalidates the buffer's linger entry
	// capHint is the size of the last batch cut, used to size the next buffer: busy pixels
	// fill whole batches, quiet ones should not allocate room for MaxBatch events.
	capHint int
	// notBefore holds back every request of the pixel after a rate limit, so that a throttled
	// advertiser does not slow the others.
	notBefore time.Time
	// pending counts the pixel's accepted items whose Done has not returned; while the pixel
	// is throttled they do not count against MaxPending.
	pending int
}

type itemMeta struct {
	done  func(Outcome)
	epoch uint64
}

// batch is one request's worth of events; a retry resends the same batch, a bisection
// replaces it by its halves. While a request is in flight only its goroutine touches it.
type batch struct {
	pixel     *pixelQueue
	events    []*Event
	metas     []itemMeta
	retry     retryState
	notBefore time.Time // end of the backoff after a transient failure
	lastErr   error
}

type flushWaiter struct {
	epoch uint64
	done  chan struct{}
}

// NewBatcher returns a Batcher that sends through s. It fails only on an invalid option.
func NewBatcher(s Sender, opts ...BatcherOption) (*Batcher, error) {
	if s == nil {
		return nil, errors.New("sink: nil Sender")
	}
	cfg := defaultBatcherConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.maxPending == 0 {
		cfg.maxPending = 2 * cfg.maxBatch * cfg.maxInFlight
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{
		sender:      s,
		cfg:         cfg,
		log:         log,
		ctx:         ctx,
		cancel:      cancel,
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		closing:     make(chan struct{}),
		pixels:      make(map[string]*pixelQueue),
		outstanding: make(map[uint64]int),
	}
	b.wg.Add(1)
	go b.run()
	return b, nil
}

// Submit adds an item. It blocks while MaxPending events are outstanding, until room frees
// up, ctx ends (returning ctx.Err()) or Close starts (returning ErrBatcherClosed); partly
// filled batches are sent without waiting for their linger while it blocks. Once
// Submit returns nil, it.Done will be called exactly once; otherwise it never is.
func (b *Batcher) Submit(ctx context.Context, it Item) error {
	if it.PixelID == "" {
		return ErrNoPixel
	}
	if it.Done == nil {
		return errors.New("sink: item has no Done func")
	}
	if it.Event == nil {
		return errors.New("sink: item has no event")
	}
	b.mu.Lock()
	for {
		if b.closed {
			b.mu.Unlock()
			return ErrBatcherClosed
		}
		if b.pending < b.cfg.maxPending || b.pending-b.throttledLocked(time.Now()) < b.cfg.maxPending {
			break
		}
		if b.space == nil {
			b.space = make(chan struct{})
		}
		space := b.space
		// With many pixels, partly filled buffers can hold most of MaxPending: waiting for
		// their linger would stall Submit for no gain, so send them. Not when most of the
		// room is held by requests in flight or waiting, whose completion frees it: cutting
		// buffers every time one batch completes would send ever smaller batches.
		cut := b.buffered > 0 && 2*b.buffered >= b.pending
		if cut {
			b.cutAllLocked()
			b.dispatchLocked(time.Now())
		}
		b.mu.Unlock()
		if cut {
			b.nudge()
		}
		select {
		case <-space:
		case <-b.closing:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.mu.Lock()
	}

	b.pending++
	b.buffered++
	b.outstanding[b.epoch]++
	q := b.pixels[it.PixelID]
	if q == nil {
		q = &pixelQueue{id: it.PixelID}
		b.pixels[it.PixelID] = q
	}
	nudge := false
	now := time.Now()
	if len(q.events) == 0 {
		// The scheduler's timer is armed for the oldest linger deadline; a new one can only
		// be later, unless there was none.
		nudge = b.linger.empty()
		b.linger.push(lingerEntry{q: q, gen: q.gen, deadline: now.Add(b.cfg.linger)})
		if q.events == nil {
			n := min(max(q.capHint, 8), b.cfg.maxBatch)
			q.events = make([]*Event, 0, n)
			q.metas = make([]itemMeta, 0, n)
		}
	}
	q.pending++
	q.events = append(q.events, it.Event)
	q.metas = append(q.metas, itemMeta{done: it.Done, epoch: b.epoch})
	if len(q.events) >= b.cfg.maxBatch {
		b.cutLocked(q)
		b.dispatchLocked(now)
		// A batch left waiting (no free slot, or a throttled pixel) needs the scheduler's
		// timer or its next completion; a nudge covers the first case.
		nudge = nudge || len(b.ready) > 0
	}
	b.mu.Unlock()
	if nudge {
		b.nudge()
	}
	return nil
}

// Flush sends every buffered event without waiting for its linger, then waits until Done
// has been called for every item Submit accepted before Flush was called, or until ctx
// ends. Items submitted meanwhile are not waited for.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	e := b.epoch
	b.epoch++
	b.cutAllLocked()
	b.dispatchLocked(time.Now())
	if b.settledThroughLocked(e) {
		b.mu.Unlock()
		return nil
	}
	w := flushWaiter{epoch: e, done: make(chan struct{})}
	b.flushWaiters = append(b.flushWaiters, w)
	b.mu.Unlock()
	b.nudge()

	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		for i, o := range b.flushWaiters {
			if o.done == w.done {
				b.flushWaiters = append(b.flushWaiters[:i], b.flushWaiters[i+1:]...)
				break
			}
		}
		b.mu.Unlock()
		return ctx.Err()
	}
}

// Close stops accepting items, flushes, and stops the Batcher's goroutines. If ctx ends
// first, requests in flight are cancelled and every unsettled item's Done is called with
// ReasonShutdown; Close then returns an error wrapping ctx.Err(). A Sender that ignores
// context cancellation delays Close until its requests return.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrBatcherClosed
	}
	b.closed = true
	close(b.closing)
	b.mu.Unlock()

	err := b.Flush(ctx)
	abandoned := 0
	if err != nil {
		abandoned = b.abort()
	}
	close(b.stop)
	b.wg.Wait()
	b.cancel()
	if err != nil {
		return fmt.Errorf("sink: close gave up on %d unsettled events: %w", abandoned, err)
	}
	return nil
}

// abort settles everything not in flight as shutdown and cancels the requests in flight,
// whose goroutines settle their own batches. It returns how many events it settled.
func (b *Batcher) abort() int {
	b.mu.Lock()
	b.aborted = true
	b.cancel()
	b.cutAllLocked()
	batches := b.ready
	b.ready = nil
	b.mu.Unlock()
	b.nudge()
	n := 0
	for _, bt := range batches {
		n += len(bt.events)
		b.fail(bt, ReasonShutdown, ClassOf(bt.lastErr), bt.lastErr)
	}
	return n
}

// run is the scheduler: it cuts batches whose linger expired and starts requests for ready
// batches, sleeping until the next deadline or a nudge.
func (b *Batcher) run() {
	defer b.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		b.mu.Lock()
		next := b.scheduleLocked(time.Now())
		b.mu.Unlock()
		if next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(next))
		}
		select {
		case <-b.wake:
		case <-timer.C:
		case <-b.stop:
			return
		}
	}
}

func (b *Batcher) nudge() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// scheduleLocked cuts the buffers whose linger has expired and dispatches ready batches. It
// returns when it next has work to do on its own, zero if only an event (a Submit, a
// completed request) can create some.
func (b *Batcher) scheduleLocked(now time.Time) time.Time {
	var next time.Time
	for {
		e, ok := b.linger.peek()
		if !ok {
			break
		}
		if e.gen != e.q.gen { // the buffer was cut for size since
			b.linger.pop()
			continue
		}
		if e.deadline.After(now) {
			next = e.deadline
			break
		}
		b.linger.pop()
		b.cutLocked(e.q)
	}
	if t := b.dispatchLocked(now); !t.IsZero() && (next.IsZero() || t.Before(next)) {
		next = t
	}
	return next
}

// cutLocked turns q's buffer into a ready batch.
func (b *Batcher) cutLocked(q *pixelQueue) {
	if len(q.events) == 0 {
		return
	}
	b.ready = append(b.ready, &batch{pixel: q, events: q.events, metas: q.metas})
	b.buffered -= len(q.events)
	q.capHint = len(q.events)
	q.events, q.metas = nil, nil
	q.gen++
}

// cutAllLocked cuts every non-empty buffer. Each has exactly one live linger entry, so the
// linger queue lists them without scanning all pixels.
func (b *Batcher) cutAllLocked() {
	for {
		e, ok := b.linger.pop()
		if !ok {
			return
		}
		if e.gen == e.q.gen {
			b.cutLocked(e.q)
		}
	}
}

// dispatchLocked starts requests for ready batches, oldest first, while slots are free. A
// batch in backoff or of a throttled pixel is skipped, so it holds up neither a slot nor
// other pixels. It returns when the earliest skipped batch becomes eligible, or zero when
// there is none or no slot is free (a completing request nudges the scheduler).
func (b *Batcher) dispatchLocked(now time.Time) time.Time {
	if b.aborted {
		return time.Time{}
	}
	var next time.Time
	if b.endpointNotBefore.After(now) && len(b.ready) > 0 {
		return b.endpointNotBefore
	}
	for i := 0; i < len(b.ready) && b.inFlight < b.cfg.maxInFlight; {
		bt := b.ready[i]
		at := bt.notBefore
		if bt.pixel.notBefore.After(at) {
			at = bt.pixel.notBefore
		}
		if at.After(now) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			i++
			continue
		}
		b.ready = append(b.ready[:i], b.ready[i+1:]...)
		b.topUpLocked(bt)
		b.inFlight++
		b.wg.Add(1)
		go b.send(bt)
	}
	if b.inFlight >= b.cfg.maxInFlight {
		return time.Time{}
	}
	return next
}

// topUpLocked fills a batch about to be sent, if it has never been sent, with the pixel's
// later batches that have not been sent either and with its buffer, up to MaxBatch. Batches
// are cut when their linger expires; when requests are the bottleneck (Meta slow, few slots)
// several small batches of one pixel would otherwise queue for a slot each, and the relay
// would send a fraction of what each request could carry.
func (b *Batcher) topUpLocked(bt *batch) {
	if bt.retry.attempts > 0 || len(bt.events) >= b.cfg.maxBatch {
		return
	}
	q := bt.pixel
	room := b.cfg.maxBatch - len(bt.events)
	var extra []*batch
	for _, o := range b.ready {
		if room == 0 {
			break
		}
		if o.pixel == q && o.retry.attempts == 0 && len(o.events) <= room {
			extra = append(extra, o)
			room -= len(o.events)
		}
	}
	fromBuffer := min(room, len(q.events))
	if len(extra) == 0 && fromBuffer == 0 {
		return
	}
	n := b.cfg.maxBatch - room + fromBuffer
	events := make([]*Event, 0, n)
	metas := make([]itemMeta, 0, n)
	events = append(events, bt.events...)
	metas = append(metas, bt.metas...)
	for _, o := range extra {
		events = append(events, o.events...)
		metas = append(metas, o.metas...)
	}
	if len(extra) > 0 {
		kept := b.ready[:0]
		for _, o := range b.ready {
			if !slices.Contains(extra, o) {
				kept = append(kept, o)
			}
		}
		clear(b.ready[len(kept):])
		b.ready = kept
	}
	if fromBuffer > 0 {
		events = append(events, q.events[:fromBuffer]...)
		metas = append(metas, q.metas[:fromBuffer]...)
		b.buffered -= fromBuffer
		if fromBuffer == len(q.events) {
			q.events, q.metas = nil, nil
			q.gen++ // its linger entry is void: the buffer is empty
		} else {
			// Keep the rest in a fresh slice: the batch owns the taken prefix now.
			q.events = append([]*Event(nil), q.events[fromBuffer:]...)
			q.metas = append([]itemMeta(nil), q.metas[fromBuffer:]...)
		}
	}
	bt.events, bt.metas = events, metas
}

// throttledLocked counts the pending items of pixels under a rate limit. They do not count
// against MaxPending: otherwise one throttled advertiser's backlog would fill it and block
// Submit for every other pixel behind it. Their number stays bounded by the caller's own
// bound on records in flight (the processor's max_in_flight). Only called when
// MaxPending is reached, so the walk over pixels is off the fast path.
func (b *Batcher) throttledLocked(now time.Time) int {
	n := 0
	for _, q := range b.pixels {
		if q.pending > 0 && q.notBefore.After(now) {
			n += q.pending
		}
	}
	return n
}

// settledThroughLocked reports whether every item of epochs up to e has been settled.
func (b *Batcher) settledThroughLocked(e uint64) bool {
	for k := range b.outstanding {
		if k <= e {
			return false
		}
	}
	return true
}

// settle calls Done for the batch's items and releases their room.
func (b *Batcher) settle(bt *batch, o Outcome) {
	for _, m := range bt.metas {
		m.done(o)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending -= len(bt.metas)
	bt.pixel.pending -= len(bt.metas)
	emptied := false
	for i := 0; i < len(bt.metas); {
		// Items of a batch nearly always share an epoch: count runs, not items.
		e, j := bt.metas[i].epoch, i+1
		for j < len(bt.metas) && bt.metas[j].epoch == e {
			j++
		}
		if b.outstanding[e] -= j - i; b.outstanding[e] <= 0 {
			delete(b.outstanding, e)
			emptied = true
		}
		i = j
	}
	if b.space != nil && b.pending < b.cfg.maxPending {
		close(b.space)
		b.space = nil
	}
	if emptied && len(b.flushWaiters) > 0 {
		kept := b.flushWaiters[:0]
		for _, w := range b.flushWaiters {
			if b.settledThroughLocked(w.epoch) {
				close(w.done)
			} else {
				kept = append(kept, w)
			}
		}
		b.flushWaiters = kept
	}
}

// lingerQueue lists buffers in the order their first event arrived, which is also the order
// of their linger deadlines since the linger is the same for all. Entries of buffers cut
// for size stay behind as stale entries and are skipped.
type lingerQueue struct {
	entries []lingerEntry
	head    int
}

type lingerEntry struct {
	q        *pixelQueue
	gen      uint64
	deadline time.Time
}

func (l *lingerQueue) empty() bool { return l.head == len(l.entries) }

func (l *lingerQueue) push(e lingerEntry) { l.entries = append(l.entries, e) }

func (l *lingerQueue) peek() (lingerEntry, bool) {
	if l.empty() {
		return lingerEntry{}, false
	}
	return l.entries[l.head], true
}

func (l *lingerQueue) pop() (lingerEntry, bool) {
	if l.empty() {
		return lingerEntry{}, false
	}
	e := l.entries[l.head]
	l.entries[l.head] = lingerEntry{}
	l.head++
	switch {
	case l.head == len(l.entries):
		l.entries, l.head = l.entries[:0], 0
	case l.head >= 1024 && l.head*2 >= len(l.entries):
		n := copy(l.entries, l.entries[l.head:])
		clear(l.entries[n:])
		l.entries, l.head = l.entries[:n], 0
	}
	return e, true
}
