package processor

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Stats are the processor's counters since start.
type Stats struct {
	Consumed       int64            // records fetched from an assigned partition
	Submitted      int64            // events handed to the sink
	Delivered      int64            // events the sink reported delivered
	Duplicates     int64            // events dropped because the dedup store had them as sent
	HeldRetries    int64            // records found held by a live claim: another's lease, or this process's own claim on the key
	ConsentDropped int64            // events dropped for missing or refused consent
	Enriched       int64            // offline events that got external_id from the identity map
	DeadLettered   map[string]int64 // by "class/reason"
	// DroppedValues counts user_data values that could not be normalized, by
	// "field/reason"; their events were sent without them.
	DroppedValues  map[string]int64
	DeadLetterAcks int64 // dead-letter produces Kafka acknowledged
	Commits        int64
	Pauses         int64 // partitions paused at MaxInFlightPerPartition
	Waits          int64 // polls held back at MaxInFlight
	LeasesRenewed  int64 // claims extended while their events were in the sink
	LeasesLost     int64 // claims found taken or confirmed by another at renewal
}

type counters struct {
	consumed, submitted, delivered, duplicates, heldRetries atomic.Int64
	consentDropped, enriched, deadLetterAcked, commits      atomic.Int64
	pauses, waits, leasesRenewed, leasesLost                atomic.Int64

	mu      sync.Mutex
	dlq     map[string]int64
	dropped map[string]int64
}

func (c *counters) droppedValue(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped == nil {
		c.dropped = make(map[string]int64)
	}
	c.dropped[key]++
}

func (c *counters) deadLettered(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dlq == nil {
		c.dlq = make(map[string]int64)
	}
	c.dlq[key]++
}

// Stats returns a snapshot of the counters.
func (p *Processor) Stats() Stats {
	c := &p.stats
	c.mu.Lock()
	dlq := maps.Clone(c.dlq)
	dropped := maps.Clone(c.dropped)
	c.mu.Unlock()
	if dlq == nil {
		dlq = map[string]int64{}
	}
	if dropped == nil {
		dropped = map[string]int64{}
	}
	return Stats{
		Consumed:       c.consumed.Load(),
		Submitted:      c.submitted.Load(),
		Delivered:      c.delivered.Load(),
		Duplicates:     c.duplicates.Load(),
		HeldRetries:    c.heldRetries.Load(),
		ConsentDropped: c.consentDropped.Load(),
		Enriched:       c.enriched.Load(),
		DeadLettered:   dlq,
		DroppedValues:  dropped,
		DeadLetterAcks: c.deadLetterAcked.Load(),
		Commits:        c.commits.Load(),
		Pauses:         c.pauses.Load(),
		Waits:          c.waits.Load(),
		LeasesRenewed:  c.leasesRenewed.Load(),
		LeasesLost:     c.leasesLost.Load(),
	}
}
