package sink

import "sync/atomic"

// BatcherStats is a snapshot of a Batcher's counters. Counters only grow; InFlight and
// Pending are gauges.
type BatcherStats struct {
	Requests        uint64 // Send calls
	EventsSent      uint64 // events in Send calls, counting each resend
	EventsDelivered uint64 // events whose Outcome was Delivered
	Retries         uint64 // Send calls that repeated an earlier request of the same events
	Bisections      uint64 // batches split in two after Meta rejected them as invalid

	// RequestErrors counts failed Send calls by class, including ones retried later.
	RequestErrors ClassCounts
	// EventsFailed counts events whose Outcome was not Delivered, by class. Events given up
	// at Close are counted under the class of their last error, or ClassUnknown.
	EventsFailed ClassCounts

	InFlight int // requests in flight now
	Pending  int // events accepted whose Done has not been called yet
}

// ClassCounts holds one counter per Class.
type ClassCounts struct {
	Unknown, Transient, RateLimit, Auth, Permission, Invalid uint64
}

// Get returns the counter of c.
func (cc ClassCounts) Get(c Class) uint64 {
	switch c {
	case ClassTransient:
		return cc.Transient
	case ClassRateLimit:
		return cc.RateLimit
	case ClassAuth:
		return cc.Auth
	case ClassPermission:
		return cc.Permission
	case ClassInvalid:
		return cc.Invalid
	}
	return cc.Unknown
}

type classCounters [numClasses]atomic.Uint64

func (cs *classCounters) add(c Class, n uint64) {
	if c >= numClasses {
		c = ClassUnknown
	}
	cs[c].Add(n)
}

func (cs *classCounters) snapshot() ClassCounts {
	return ClassCounts{
		Unknown:    cs[ClassUnknown].Load(),
		Transient:  cs[ClassTransient].Load(),
		RateLimit:  cs[ClassRateLimit].Load(),
		Auth:       cs[ClassAuth].Load(),
		Permission: cs[ClassPermission].Load(),
		Invalid:    cs[ClassInvalid].Load(),
	}
}

// batcherCounters are updated without the batcher's lock so that metrics scrapes never
// contend with Submit.
type batcherCounters struct {
	requests, eventsSent, eventsDelivered, retries, bisections atomic.Uint64
	requestErrors, eventsFailed                                classCounters
}

// Stats returns a snapshot of the counters. Fields are read one by one, so a snapshot taken
// while requests complete may be off by one request between fields.
func (b *Batcher) Stats() BatcherStats {
	c := &b.counters
	s := BatcherStats{
		Requests:        c.requests.Load(),
		EventsSent:      c.eventsSent.Load(),
		EventsDelivered: c.eventsDelivered.Load(),
		Retries:         c.retries.Load(),
		Bisections:      c.bisections.Load(),
		RequestErrors:   c.requestErrors.snapshot(),
		EventsFailed:    c.eventsFailed.snapshot(),
	}
	b.mu.Lock()
	s.InFlight = b.inFlight
	s.Pending = b.pending
	b.mu.Unlock()
	return s
}
