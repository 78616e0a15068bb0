package processor

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

// task is one record on its way to done.
type task struct {
	tk   ticket
	rec  *kgo.Record
	own  kgo.Record // rec once detached from its fetched batch
	kind schema.Kind
	// ev is the event to send (wire, which Prepare fills); nil once handed to the sink,
	// which owns it from then on.
	ev      *sink.Event
	wire    sink.Event
	key     dedupstore.Key // key.PixelID is the pixel the event goes to
	keyHash uint64         // key's, for Processor.claimedKeys
	// claim and claimSlot (index in Processor.claimed + 1; 0 when not there) are written
	// under claimedMu while the task is in Processor.claimed, since lease renewal reads them
	// there; recycle clears them only after untrackClaims took the task out.
	claim     dedupstore.Claim
	claimSlot int
	held      time.Time // when the record was first found held by another claim
	// done is the sink's callback for this task, made once per task rather than once per
	// record: recycle keeps it.
	done func(sink.Outcome)
}

// newTask returns a task for a fetched record, recycled when one is free.
func (p *Processor) newTask(tk ticket, r *kgo.Record) *task {
	t, _ := p.tasks.Get().(*task)
	if t == nil {
		t = new(task)
		t.done = func(o sink.Outcome) { p.onOutcome(t, o) }
	}
	t.tk, t.rec = tk, r
	return t
}

// recycle makes a done task's memory the next record's. A task is a kilobyte, mostly its
// event, and one per record was the largest part of what the relay allocates, so of how
// often the collector runs. Call it only where nothing can reach t any more: its record is
// done, its claim settled and untracked, and the sink has given its verdict (the sink does
// not read an event after Done; see sink.Item). Tasks that end any other way are left to
// the collector. Clearing it here keeps a pooled task from holding the last record's memory.
func (p *Processor) recycle(t *task) {
	*t = task{done: t.done}
	p.tasks.Put(t)
}

// process carries a polled batch through decode, consent and validation. It returns the
// tasks to claim (in fetch order); every other record is done or on its way to the
// dead-letter topic.
func (p *Processor) process(ctx context.Context, batch []*task) []*task {
	ok := make([]bool, len(batch))
	// Decoding and hashing are pure CPU work per record; spread a large poll over the
	// cores. Order is kept by index, and the claim below is one round trip for all.
	workers := min(runtime.GOMAXPROCS(0), len(batch)/minPerWorker)
	if workers <= 1 {
		ev := new(schema.Event)
		for i, t := range batch {
			ok[i] = p.prepareTask(ctx, t, ev)
		}
	} else {
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				ev := new(schema.Event)
				for i := w; i < len(batch); i += workers {
					ok[i] = p.prepareTask(ctx, batch[i], ev)
				}
			}(w)
		}
		wg.Wait()
	}
	if ctx.Err() != nil {
		return nil // stopping: what is left stays open and uncommitted
	}
	ready := make([]*task, 0, len(batch))
	for i, t := range batch {
		if ok[i] {
			ready = append(ready, t)
		}
	}
	return ready
}

// minPerWorker is the smallest share of a poll worth a goroutine of its own.
const minPerWorker = 64

// prepareTask decodes, checks consent and validates one record. It reports whether the
// record goes on to be claimed; otherwise it is done or on its way to the dead-letter topic.
// ev is the caller's scratch for the decoded event: handed to Prepare by pointer it would
// escape, and a fresh one per record was a kilobyte allocated per record.
func (p *Processor) prepareTask(ctx context.Context, t *task, ev *schema.Event) bool {
	t.detach()
	if err := p.decode(ctx, t, ev); err != nil {
		if ctx.Err() == nil {
			p.deadLetter(t, failure{class: "decode", reason: decodeReason(err), err: err})
		}
		return false
	}
	if !p.consented(ev) {
		p.stats.consentDropped.Add(1)
		p.finishAndRecycle(t)
		return false
	}
	dropped, err := p.deps.Prepare(ev, p.cfg.Now(), &t.wire)
	for _, d := range dropped {
		p.stats.droppedValue(d.Field + "/" + d.Reason)
	}
	if err != nil {
		p.deadLetter(t, failure{class: "invalid", reason: invalidReason(err), err: err})
		return false
	}
	t.kind = ev.Kind
	t.ev = &t.wire
	t.key = dedupstore.Key{PixelID: ev.PixelID, EventName: t.wire.EventName, EventID: t.wire.EventID}
	t.keyHash = maphash.Comparable(p.keySeed, t.key)
	return true
}

// detach replaces the task's record by the task's own copy of it, and recycles the fetched
// record. A fetched record shares its decompressed batch, and its batch's record slice,
// with every other record of the batch: one record in flight would otherwise keep them all
// in memory (they were the largest part of the heap). The copy costs little more than the
// one the decoder would make anyway, since the event's strings share it (see decodeValue).
// Once every record of a batch is detached, the batch's memory goes back to batchPool for
// the next fetch; nothing may read the fetched record after this.
func (t *task) detach() {
	r := t.rec
	// Key and value in one allocation; the decoded event's strings share the value.
	buf := make([]byte, len(r.Key)+len(r.Value))
	k := copy(buf, r.Key)
	copy(buf[k:], r.Value)
	t.own = kgo.Record{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, LeaderEpoch: r.LeaderEpoch,
		Timestamp: r.Timestamp, Attrs: r.Attrs, Value: buf[k:],
	}
	if r.Key != nil {
		t.own.Key = buf[:k:k]
	}
	if len(r.Headers) > 0 {
		t.own.Headers = slices.Clone(r.Headers)
		for i, h := range t.own.Headers {
			t.own.Headers[i].Value = bytes.Clone(h.Value)
		}
	}
	t.rec = &t.own
	r.Recycle()
}

// decodeValue decodes a task's own copy of a record value into *dst, letting the event
// share it when the decoder can.
func (p *Processor) decodeValue(ctx context.Context, topic string, value []byte, dst *schema.Event) error {
	if d, ok := p.deps.Decoder.(ownedDecoder); ok {
		return d.DecodeOwnedInto(ctx, topic, value, dst)
	}
	var err error
	*dst, err = p.deps.Decoder.Decode(ctx, topic, value)
	return err
}

// decode decodes a record into *dst, retrying while the failure is transient (schema
// registry unreachable): such a record is not bad, and dead-lettering it would lose the
// ordering of a fix-and-replay for nothing.
func (p *Processor) decode(ctx context.Context, t *task, dst *schema.Event) error {
	for attempt := 0; ; attempt++ {
		err := p.decodeValue(ctx, t.rec.Topic, t.rec.Value, dst)
		if err == nil || !schema.IsTransient(err) {
			return err
		}
		p.log.Warn("decode failed transiently; retrying", "topic", t.rec.Topic, "partition", t.rec.Partition, "offset", t.rec.Offset, "err", err)
		if !sleep(ctx, p.backoff(attempt)) {
			return ctx.Err()
		}
	}
}

func (p *Processor) consented(ev *schema.Event) bool {
	if !ev.Consent.Known {
		return !p.cfg.RequireConsent
	}
	return ev.Consent.AdsAllowed
}

// claimAndSubmit claims the tasks' keys in one round trip and routes each by the verdict.
func (p *Processor) claimAndSubmit(ctx context.Context, tasks []*task) {
	if len(tasks) == 0 {
		return
	}
	// A record whose key this process holds a live claim on (an event republished while
	// its first copy is still in the sink) is held here without asking the store, which
	// would answer Held, and again at every retry until the first copy settles.
	now := time.Now()
	var held []*task
	ask := make([]*task, 0, len(tasks))
	p.claimedMu.Lock()
	for _, t := range tasks {
		if p.claimedKeys[t.keyHash] > 0 {
			if t.held.IsZero() {
				t.held = now
			}
			held = append(held, t)
			continue
		}
		ask = append(ask, t)
	}
	p.claimedMu.Unlock()
	tasks = ask
	keys := make([]dedupstore.Key, len(tasks))
	for i, t := range tasks {
		keys[i] = t.key
	}
	var results []dedupstore.Result
	if len(keys) > 0 {
		var err error
		if results, err = p.deps.Store.Claim(ctx, keys); err != nil {
			// The store blocks (with backoff) while Redis is unreachable and only returns
			// an error once ctx is done: the tasks stay open, so nothing is committed or
			// lost.
			p.log.Warn("claim abandoned", "records", len(tasks)+len(held), "err", err)
			return
		}
	}
	claimed := make([]*task, 0, len(tasks))
	for i, r := range results {
		t := tasks[i]
		switch r.Status {
		case dedupstore.Claimed:
			claimed = append(claimed, t)
			p.trackClaim(t, r.Claim)
		case dedupstore.Duplicate:
			p.stats.duplicates.Add(1)
			p.finishAndRecycle(t)
		default:
			if t.held.IsZero() {
				t.held = now
			}
			held = append(held, t)
		}
	}
	if len(held) > 0 {
		p.stats.heldRetries.Add(int64(len(held)))
		p.heldMu.Lock()
		p.held = append(p.held, held...)
		p.heldMu.Unlock()
	}
	p.enrich(ctx, claimed)
	for _, t := range claimed {
		// The sink owns the event from here, and once it has given its verdict the task
		// may be recycled: nothing touches t after Submit but the error path.
		ev := t.ev
		t.ev = nil
		err := p.deps.Sink.Submit(ctx, sink.Item{PixelID: t.key.PixelID, Event: ev, Done: t.done})
		if err != nil {
			// Only when stopping: the record stays open, and its lease is released so the
			// next owner need not wait for it to expire.
			p.releaseOnly(t)
			continue
		}
		p.stats.submitted.Add(1)
	}
}

// runHeld re-claims events held by another claim's lease. They end as duplicates when that
// claim is confirmed, or are claimed by us once its lease expires or is released.
func (p *Processor) runHeld(ctx context.Context) {
	tick := time.NewTicker(p.cfg.HeldRetryInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.heldMu.Lock()
		batch := p.held
		p.held = nil
		p.heldMu.Unlock()
		var mine []*task
		for _, t := range batch {
			if p.tracker.owns(t.tk) {
				mine = append(mine, t)
			}
		}
		p.claimAndSubmit(ctx, mine)
	}
}

// enrich fills external_id: web events teach the identity map which hashed email and phone
// belong to which external_id, and offline events without one look it up, so one person
// carries one external_id on browser and server channels.
func (p *Processor) enrich(ctx context.Context, tasks []*task) {
	if p.deps.Identities == nil || len(tasks) == 0 {
		return
	}
	var links []dedupstore.IdentityLink
	var lookups []*task
	var queries [][]string
	// One array holds every task's identifiers; each task's are a full slice of it.
	all := make([]string, 0, 2*len(tasks))
	for _, t := range tasks {
		start := len(all)
		all = appendIdentifiers(all, &t.ev.User)
		ids := all[start:len(all):len(all)]
		if len(ids) == 0 {
			continue
		}
		switch {
		case t.kind == schema.KindWeb && len(t.ev.User.ExternalID) > 0:
			if links == nil {
				links = make([]dedupstore.IdentityLink, 0, len(tasks)) // sized once: it grew by append
			}
			links = append(links, dedupstore.IdentityLink{Identifiers: ids, ExternalID: t.ev.User.ExternalID[0]})
		case t.kind == schema.KindOffline && len(t.ev.User.ExternalID) == 0:
			lookups = append(lookups, t)
			queries = append(queries, ids)
		}
	}
	if len(links) > 0 {
		if err := p.deps.Identities.Remember(ctx, links); err != nil {
			p.log.Warn("identity map: remember failed", "links", len(links), "err", err)
		}
	}
	if len(lookups) == 0 {
		return
	}
	found, err := p.deps.Identities.Lookup(ctx, queries)
	if err != nil {
		p.log.Warn("identity map: lookup failed; sending without external_id", "events", len(lookups), "err", err)
		return
	}
	for i, t := range lookups {
		if found[i] != "" {
			t.ev.User.ExternalID = []string{found[i]}
			p.stats.enriched.Add(1)
		}
	}
}

// appendIdentifiers appends the hashed values that identify a person across channels. A
// param-builder value "<hex>.<suffix>" is keyed by its hash alone.
func appendIdentifiers(ids []string, u *sink.UserData) []string {
	for _, v := range u.Em {
		ids = append(ids, hashPart(v))
	}
	for _, v := range u.Ph {
		ids = append(ids, hashPart(v))
	}
	return ids
}

func hashPart(v string) string {
	if i := strings.IndexByte(v, '.'); i > 0 {
		return v[:i]
	}
	return v
}

// onOutcome is the sink's verdict on one event; it runs on a sink goroutine, so it only
// hands the work on.
func (p *Processor) onOutcome(t *task, o sink.Outcome) {
	if o.Delivered {
		p.stats.delivered.Add(1)
		p.complete(t, actionConfirm)
		return
	}
	if o.Reason == sink.ReasonShutdown {
		// Not a verdict on the event: the sink gave up because we are stopping. Leave the
		// record open (uncommitted) for the next owner, and free its key for that owner.
		p.releaseOnly(t)
		return
	}
	p.deadLetter(t, failure{
		class: o.Class.String(), reason: o.Reason,
		code: o.Code, subcode: o.Subcode, message: o.Message, fbtrace: o.FBTraceID, attempts: o.Attempts,
	})
}

type action uint8

const (
	actionNone action = iota
	actionConfirm
	actionRelease
)

type completion struct {
	t      *task
	action action
	// keepOpen releases the claim without marking the record done.
	keepOpen bool
}

// releaseOnly frees a task's claim but leaves its record open.
func (p *Processor) releaseOnly(t *task) {
	if p.crashed.Load() {
		return
	}
	select {
	case p.finishing <- completion{t: t, action: actionRelease, keepOpen: true}:
	case <-p.workDone:
	}
}

// complete queues a task's last dedup-store step; the finisher batches them into one round
// trip and then marks the records done.
func (p *Processor) complete(t *task, a action) {
	if p.crashed.Load() {
		return
	}
	select {
	case p.finishing <- completion{t: t, action: a}:
	case <-p.workDone:
	}
}

// finish marks a record done that needs no dedup-store step.
func (p *Processor) finish(t *task) {
	if p.crashed.Load() {
		return
	}
	p.tracker.finish(t.tk)
}

// finishAndRecycle is finish for a task that nothing else holds: one that never reached the
// dedup store's claim or the sink.
func (p *Processor) finishAndRecycle(t *task) {
	p.finish(t)
	p.recycle(t)
}

// runFinisher confirms and releases claims in batches, then marks their records done. It
// keeps running through the drain, until every producer of completions has stopped.
func (p *Processor) runFinisher(ctx context.Context) {
	const maxBatch = 1000
	var confirms, releases, reopen []*task
	for {
		var c completion
		select {
		case c = <-p.finishing:
		case <-ctx.Done():
			return
		}
		for {
			switch c.action {
			case actionConfirm:
				confirms = append(confirms, c.t)
			case actionRelease:
				if c.keepOpen {
					reopen = append(reopen, c.t)
				} else {
					releases = append(releases, c.t)
				}
			default:
				p.tracker.finish(c.t.tk)
			}
			if len(confirms)+len(releases)+len(reopen) >= maxBatch {
				break
			}
			select {
			case c = <-p.finishing:
				continue
			default:
			}
			break
		}
		p.settle(ctx, confirms, actionConfirm, true)
		p.settle(ctx, releases, actionRelease, true)
		p.settle(ctx, reopen, actionRelease, false)
		confirms, releases, reopen = confirms[:0], releases[:0], reopen[:0]
	}
}

func (p *Processor) settle(ctx context.Context, tasks []*task, a action, finish bool) {
	confirm := a == actionConfirm
	if len(tasks) == 0 {
		return
	}
	claims := make([]dedupstore.Claim, 0, len(tasks))
	for _, t := range tasks {
		if t.claim.Token != "" {
			claims = append(claims, t.claim)
		}
	}
	p.untrackClaims(tasks)
	var err error
	if len(claims) > 0 {
		if confirm {
			err = p.deps.Store.Confirm(ctx, claims)
		} else {
			err = p.deps.Store.Release(ctx, claims)
		}
	}
	if err != nil {
		// Only when ctx is done (the store retries until then): leave the records open so
		// they are not committed; after a restart they are claimed again once the lease
		// expires. For confirms this is the documented duplicate window.
		p.log.Warn("dedup store: settling claims abandoned", "claims", len(claims), "confirm", confirm, "err", err)
		return
	}
	if p.crashed.Load() || !finish {
		return
	}
	for _, t := range tasks {
		p.tracker.finish(t.tk)
		// The sink gave its verdict (Done) and the claim is settled and untracked:
		// nothing holds the task any more.
		p.recycle(t)
	}
}

func (p *Processor) trackClaim(t *task, c dedupstore.Claim) {
	p.claimedMu.Lock()
	t.claim = c
	if t.claimSlot == 0 {
		p.claimed = append(p.claimed, t)
		t.claimSlot = len(p.claimed)
		p.claimedKeys[t.keyHash]++
	}
	p.claimedMu.Unlock()
}

func (p *Processor) untrackClaims(tasks []*task) {
	p.claimedMu.Lock()
	for _, t := range tasks {
		if t.claimSlot == 0 {
			continue
		}
		last := len(p.claimed) - 1
		moved := p.claimed[last]
		p.claimed[t.claimSlot-1], moved.claimSlot = moved, t.claimSlot
		p.claimed[last] = nil
		p.claimed = p.claimed[:last]
		t.claimSlot = 0
		if n := p.claimedKeys[t.keyHash]; n > 1 {
			p.claimedKeys[t.keyHash] = n - 1
		} else {
			delete(p.claimedKeys, t.keyHash)
		}
	}
	p.claimedMu.Unlock()
}

// runLeaseRenewal extends the leases of every live claim each LeaseRenewInterval, so that a
// lease need only outlast the interval, not the longest time an event can spend in the sink
// (linger, retries, a throttled pixel). Without it, a lease could expire under a slow send,
// another relay could claim the key, and both would send.
func (p *Processor) runLeaseRenewal(ctx context.Context) {
	tick := time.NewTicker(p.cfg.LeaseRenewInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.claimedMu.Lock()
		claims := make([]dedupstore.Claim, 0, len(p.claimed))
		for _, t := range p.claimed {
			claims = append(claims, t.claim)
		}
		p.claimedMu.Unlock()
		for len(claims) > 0 && ctx.Err() == nil && !p.crashed.Load() {
			n := min(len(claims), 1000)
			lost, err := p.deps.Store.Extend(ctx, claims[:n])
			claims = claims[n:]
			if err != nil {
				p.log.Warn("dedup store: lease renewal failed", "claims", n, "err", err)
				continue
			}
			// A claim settled (confirmed or released) since the snapshot was taken is not
			// lost: its key is "sent" or free because of us. Only a claim still live here
			// whose key another holds is a lease that lapsed under an event in the sink.
			// Claims are matched by token, not task: a settled claim's task may already
			// carry another record's claim (see recycle).
			really := 0
			if len(lost) > 0 {
				p.claimedMu.Lock()
				live := make(map[string]bool, len(p.claimed))
				for _, t := range p.claimed {
					live[t.claim.Token] = true
				}
				p.claimedMu.Unlock()
				for _, c := range lost {
					if live[c.Token] {
						really++
					}
				}
			}
			p.stats.leasesRenewed.Add(int64(n - len(lost)))
			if really > 0 {
				p.stats.leasesLost.Add(int64(really))
				p.log.Warn("dedup store: leases lost while their events were in the sink; they may be sent twice", "lost", really)
			}
		}
	}
}

// backoff returns an exponential backoff with full jitter for the attempt.
func (p *Processor) backoff(attempt int) time.Duration {
	d := p.cfg.RetryBackoffMin << min(attempt, 20)
	if d <= 0 || d > p.cfg.RetryBackoffMax {
		d = p.cfg.RetryBackoffMax
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// decodeReason is the dead-letter reason for a decode error.
func decodeReason(err error) string {
	var de *schema.DecodeError
	if errors.As(err, &de) {
		return de.Reason.String()
	}
	return "undecodable"
}

// invalidReason is the dead-letter reason for a validation error.
func invalidReason(err error) string {
	var ie *sink.InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return "invalid"
}
