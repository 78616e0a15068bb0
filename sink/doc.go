// Package sink turns conversion events into Meta Conversions API (CAPI) requests and
// delivers them, reporting for each event whether Meta has it, so that the Kafka consumer
// commits an offset only after its event is settled.
//
// # Pipeline
//
// An event goes through these stages:
//
//  1. Normalize, Build and Validate (normalize*.go, build*.go, validate*.go, hash*.go) turn
//     a decoded record into an Event whose personal data is normalized and hashed, and reject
//     events Meta would refuse (too old, missing action_source, …) before they can fail a
//     whole request.
//  2. A Batcher groups Events per pixel into requests of at most MaxBatch events (Meta
//     accepts 1,000), sent when full or when the first event has waited Linger, with at
//     most MaxInFlight requests in flight across all pixels. Submit blocks once MaxPending
//     events are outstanding, which is the backpressure that slows the consumer when Meta
//     is slow or throttling.
//  3. A Sender makes the request. GraphClient POSTs JSON to
//     /{version}/{pixel_id}/events on graph.facebook.com, with the pixel's access token
//     (and appsecret_proof) in the body so that no URL carries a credential.
//  4. Each Item's Done receives an Outcome exactly once.
//
// # Classes and what the Batcher does about them
//
// Failures are classified (see Classify) by Meta's error code, subcode and is_transient
// first and by HTTP status only when the body has no Graph error:
//
//   - ClassTransient (codes 1, 2, 368, is_transient, 5xx, timeouts, connection errors) and
//     ClassUnknown: the same batch is resent after exponential backoff with full jitter,
//     until the retry budget (WithRetry's maxElapsed, default 2 minutes, counted from the
//     first attempt) would be exceeded; then its events fail with ReasonRetriesExhausted.
//     When requests get no answer at all (connection refused or reset, timeouts,
//     502/503/504), the endpoint rather than one batch is failing: every batch then waits
//     on one endpoint-wide backoff, so an outage is probed, not hammered.
//   - ClassRateLimit (codes 4, 17, 32, 341, 613, 80000–80014, HTTP 429): the pixel, and only
//     that pixel, is held back for the longer of the backoff and the wait Meta's headers
//     give (Retry-After, X-Business-Use-Case-Usage's estimated_time_to_regain_access, a full
//     X-App-Usage); other pixels keep flowing and no in-flight slot is held while waiting.
//     Throttle waits are not charged to the retry budget, because a throttle says nothing
//     about whether the request is good; they are capped instead at five times maxElapsed
//     since the first attempt, so that one throttled advertiser cannot hold MaxPending, which
//     all pixels share, indefinitely.
//   - ClassAuth (190, or no token for the pixel) and ClassPermission (3, 10, 200–299, and
//     100/33, a pixel that does not exist for the token): every event of the batch fails at
//     once with ReasonAuth or ReasonPermission; retrying cannot help until the token or the
//     grant is fixed.
//   - ClassInvalid: one invalid event makes Meta reject the whole request. When the answer
//     is code 100 (or 413, or an event that could not be encoded as JSON) and the batch has
//     more than one event, it is bisected: each half is sent on its own, recursively, so k
//     bad events among n cost O(k·log n) extra requests and every good event is delivered. A
//     single event rejected this way fails with ReasonInvalid and Meta's code, subcode,
//     message and fbtrace_id. Other invalid answers (a 404, say) fail the whole batch.
//
// # Delivered
//
// An event is Delivered when Meta answered its request with 200 and events_received equal to
// the number of events sent. Meta documents no partial acceptance, so a 200 with a different
// count (or a body that is not a CAPI response) cannot say which events are missing: the
// Batcher treats it as a transient failure (ErrEventsReceivedMismatch), logs it and resends
// the batch. Like every retry after a request whose fate is unknown (a timeout), this may
// make Meta count an event twice; Meta's event_id deduplication is documented only between
// browser and server events. The relay prefers a possible duplicate to a lost conversion.
//
// An event that is not Delivered carries a Reason. ReasonShutdown is special: it means
// Close gave up before the event was settled, so the caller should neither commit nor
// dead-letter it, but let Kafka deliver it again.
//
// # Secrets
//
// Request never holds the access token; GraphClient adds it to the wire body only. Errors
// (APIError) and the Batcher's logs name the pixel, status, code, subcode and fbtrace_id,
// and any text that contains the token or proof is redacted.
package sink
