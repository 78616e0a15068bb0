package dedupstore

import "context"

// Key identifies one event for deduplication: Meta deduplicates by event_name + event_id per
// pixel, so the relay does too.
type Key struct {
	PixelID   string
	EventName string
	EventID   string
}

// Status is what a claim attempt found.
type Status uint8

const (
	// Claimed: the key was free (or its lease had expired) and now holds our lease. Send the
	// event, then Confirm or Release.
	Claimed Status = iota + 1
	// Duplicate: the key is confirmed as sent within the dedup TTL. Drop the event.
	Duplicate
	// Held: another claim's live lease holds the key. Try again later: it ends as Duplicate
	// once that claim is confirmed, or as Claimed once its lease expires or is released.
	Held
)

func (s Status) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case Duplicate:
		return "duplicate"
	case Held:
		return "held"
	}
	return "unknown"
}

// Claim is a lease we hold on a key. Token is unique per claim attempt (not per process), so
// a record fetched twice by the same process cannot mistake the first attempt's lease for
// its own.
type Claim struct {
	Key   Key
	Token string
	// storageKey is Key's Redis key as the Redis store's Claim computed it, so that Confirm,
	// Release and Extend need not hash Key again; empty for claims made otherwise.
	storageKey string
}

// Result is the outcome of claiming one key. Claim is set only when Status is Claimed.
type Result struct {
	Status Status
	Claim  Claim
}

// Store is the dedup store's protocol. Each method takes a whole batch and costs one round
// trip to the backing store, not one per key.
type Store interface {
	// Claim tries to take a short lease on each key. Results are in the order of keys.
	Claim(ctx context.Context, keys []Key) ([]Result, error)
	// Confirm marks each claimed key as sent for the dedup TTL, whoever holds it now.
	Confirm(ctx context.Context, claims []Claim) error
	// Release deletes each key that still holds the claim's token, so a later attempt may
	// send the event (used when the event is dead-lettered instead of sent).
	Release(ctx context.Context, claims []Claim) error
	// Extend restarts the lease of each claim that still holds its key. The processor
	// extends the claims of events still in the sink, so a lease need only outlast the
	// renewal interval, not the longest batching, retry or throttling an event can meet. It
	// returns the claims that no longer held their key: the lease expired and another claim
	// took it, or the key was confirmed (by its holder in the meantime, or by another).
	Extend(ctx context.Context, claims []Claim) (lost []Claim, err error)
}
