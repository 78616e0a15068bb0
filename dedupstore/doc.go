// Package dedupstore keeps the state capirelay needs to avoid sending an event to Meta's
// Conversions API twice, and the identity map that lets offline events borrow the
// external_id of web events.
//
// # Protocol
//
// Events are keyed by pixel + event_name + event_id, Meta's own dedup key. For each batch the
// processor:
//
//  1. Claims the keys. A free key gets a short lease (default 30 s, renewed by its holder) that names this claim's
//     token, and comes back Claimed; a key confirmed as sent comes back Duplicate (drop the
//     event); a key under someone else's live lease comes back Held (retry later).
//  2. Sends the Claimed events to CAPI.
//  3. Confirms the acknowledged ones: the key becomes "sent" for the dedup TTL (default
//     48 h, Meta's window), whoever holds it by then. Events that are dead-lettered instead
//     are Released: the key is deleted, but only if it still holds this claim's lease.
//  4. Commits the Kafka offsets.
//
// # Why a lease, not "set if absent"
//
// Marking the key as sent before sending is at-most-once: if the process dies between the
// mark and the send, the redelivered event is dropped as a duplicate and never reaches Meta.
// A lease instead expires on its own, so the redelivery (or any other consumer) claims the
// key again and sends: delivery stays at-least-once, and the store only narrows the window
// in which duplicates can happen.
//
// That window is this: CAPI acknowledged the event but Confirm did not land (the process
// died, Redis was unreachable until the context ended, or the lease expired while the send
// was slow and another consumer claimed it). Once the lease expires the next claim gets
// Claimed and the event is sent again. Meta's own event_id deduplication covers it.
//
// A lease must not lapse while its holder is still sending: a second consumer would claim
// the key and both would send. Rather than a lease as long as the slowest send (linger,
// retries, a throttled pixel: minutes), the holder renews it with Extend while the event is
// in the sink, so the lease need only outlast one renewal interval, and after a crash other
// consumers wait at most one lease. Extend reports the claims that had lapsed anyway.
//
// Tokens are unique per claim attempt, not per process, so a process that fetches a record
// twice cannot take its first attempt's lease for its own, and Release after a lease expired
// cannot delete the lease of whoever claimed the key since.
//
// # Redis
//
// Redis and RedisIdentityMap run on any redis.UniversalClient, Cluster included. Each call
// sends one pipeline, in which every key gets its own small script or plain command, never a
// script over several keys, which on a cluster would need all of them in one hash slot.
// WithChunkScripts lets a client of one server (*redis.Client: standalone or Sentinel) claim,
// confirm and write identity links by script over chunks of up to 128 keys instead, which
// costs the client half as much and the server more. Keys are a prefix plus the first 128
// bits of a SHA-256 of the fields, so no event id or identifier appears in Redis.
//
// When Redis fails, calls by default retry with exponential, jittered backoff until their
// context is done and then return its error: nothing goes to Meta unchecked. WithFailOpen
// instead reports unanswered keys as Claimed (FailedOpen tells those claims apart) and makes
// Confirm, Release and the identity map best-effort, counting every such case in Stats.
//
// # Identity map
//
// The identity map lives here because it is the same kind of state: short-lived keys in the
// same Redis, written and read by the processor in batches under the same error policy. Web
// events Remember hashed email / hashed phone -> external_id; offline events without an
// external_id Lookup one. Identifiers must already be SHA-256 hex (as CAPI requires them);
// anything else is ignored and counted, so the package never stores raw PII.
// RedisIdentityMap caches links in process, so a customer seen again costs no Redis
// command; RedisIdentityMap's documentation says what freshness that gives up.
//
// Memory and MemoryIdentityMap implement the same semantics in process memory, with an
// injectable clock, for the embedded demo and tests.
package dedupstore
