// Package schema turns Kafka record values holding Avro-encoded conversion events into
// the one internal type, [Event].
//
// # Record types
//
// Two record types are published, and their schemas are embedded in this package (see
// [EmbeddedSchema]): WebEvent, browser-side events forwarded by web backends (default
// topic capi.web), and OfflineEvent, down-funnel events from CRMs and store systems
// (default topic capi.offline). A record's [Kind] comes from its writer schema's record
// name, WebEvent or OfflineEvent, whatever the namespace; a topic whose publisher named
// its record otherwise sets [TopicConfig.Kind].
//
// # Formats
//
// A record value is either
//
//   - raw: a bare Avro body, written with the schema configured for the topic
//     ([TopicConfig.Schema]); or
//   - Confluent wire format: a magic byte 0, the writer schema's registry id as a 4-byte
//     big-endian integer, then the Avro body. The writer schema is fetched from the schema
//     registry ([WithRegistry]) the first time an id is seen, compiled once and kept for
//     the life of the Decoder.
//
// Each topic says which to expect ([Mode]); [ModeAuto] tells them apart by the first byte,
// which is unambiguous for the embedded schemas but not for every schema (see ModeAuto).
//
// # Evolution
//
// Bodies are always decoded with the schema they were written with, and the decoded
// record is then mapped into an Event field by field, by name. So a publisher may add
// optional fields (they are ignored until the decoder learns their names) or drop optional
// ones (they read as zero values) without a coordinated deploy, and records written with
// different versions of a schema can share a topic. Only event_id, event_name, event_time
// and pixel_id are required. Some changes are read leniently: a single string where an
// array is expected and vice versa, bytes for string, int for long, timestamp and decimal
// logical types for event_time and money. event_time above 1e12 is taken as milliseconds.
//
// # Errors
//
// [Decoder.Decode] returns only *[DecodeError]. Its [Reason] says what went wrong, and
// errors fall into two classes:
//
//   - transient ([IsTransient]): the schema registry could not be asked
//     (ReasonRegistryUnavailable). The record is fine; retry it later, do not dead-letter.
//   - permanent: everything else. The record will never decode: unconfigured topic, bad
//     header, a schema id the registry says does not exist, an unusable schema, a corrupt
//     body, a missing or invalid field. Dead-letter it with the reason.
//
// Errors name topics, schema ids and field paths but never field values, which are
// personal data.
//
// # Decoding paths
//
// When a writer schema is compiled, a decoding program is compiled from it too (see
// fastprog.go): it reads the body straight into an Event, by field name, with the same
// conversions as the mapping from goavro's native form, without goavro's maps. A schema
// using a shape the program does not reproduce exactly (a map or a one-field record where
// the mapping reads a value, a validated-string, a field name with a dot, …) is read by
// goavro only. The program also gives up on every body that goavro or the mapping would
// reject, and such a body is decoded again the old way, so errors are the same either
// way; tests compare the two paths on random and corrupted bodies.
//
// Before goavro sees a body, it is walked once against the writer schema without
// allocating: goavro sizes arrays from the count a body claims, so a few corrupt bytes
// could otherwise make it request gigabytes and crash the process on a record that would
// then be redelivered forever. Such bodies fail with ReasonAvro instead. The program
// bounds counts the same way, so it needs no such walk before it.
package schema
