package schema

import (
	"errors"
	"strconv"
	"strings"
)

// Reason classifies why a record could not be decoded. The processor uses it to decide
// between retrying (see [IsTransient]) and dead-lettering, and as the dead-letter reason.
type Reason uint8

const (
	// ReasonUnknownTopic: the record's topic has no configuration in the Decoder.
	ReasonUnknownTopic Reason = iota + 1
	// ReasonBadHeader: the topic expects the Confluent wire format but the value is shorter
	// than the 5-byte header or does not start with the magic byte 0.
	ReasonBadHeader
	// ReasonUnknownSchemaID: the schema registry answered that the header's schema id does
	// not exist. Permanent: the record can never be decoded.
	ReasonUnknownSchemaID
	// ReasonRegistryUnavailable: the schema registry could not be asked (network error,
	// timeout, 5xx, auth failure, cancelled context). Transient: retry the record later.
	ReasonRegistryUnavailable
	// ReasonBadSchema: the writer schema exists but cannot be used: not Avro, has schema
	// references, does not parse, is not a record, or its record name is neither WebEvent
	// nor OfflineEvent and the topic configures no Kind. Permanent.
	ReasonBadSchema
	// ReasonAvro: the body is not valid Avro for the writer schema (truncated, corrupt, or
	// trailing bytes, which usually mean the record was written with another schema).
	ReasonAvro
	// ReasonMissingField: a required field (event_id, event_name, event_time, pixel_id) is
	// absent from the writer schema, null or empty.
	ReasonMissingField
	// ReasonInvalidField: a field the decoder knows by name has a type it cannot convert
	// (e.g. event_time written as a string) or an impossible value (negative event_time).
	ReasonInvalidField
)

// String returns a short, stable, snake_case name suitable as a metric label or a
// dead-letter header.
func (r Reason) String() string {
	switch r {
	case ReasonUnknownTopic:
		return "unknown_topic"
	case ReasonBadHeader:
		return "bad_header"
	case ReasonUnknownSchemaID:
		return "unknown_schema_id"
	case ReasonRegistryUnavailable:
		return "registry_unavailable"
	case ReasonBadSchema:
		return "bad_schema"
	case ReasonAvro:
		return "avro"
	case ReasonMissingField:
		return "missing_field"
	case ReasonInvalidField:
		return "invalid_field"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// describe says what the reason means, for Error.
func (r Reason) describe() string {
	switch r {
	case ReasonUnknownTopic:
		return "topic is not configured for decoding"
	case ReasonBadHeader:
		return "value is not in Confluent wire format (magic byte 0 + 4-byte schema id)"
	case ReasonUnknownSchemaID:
		return "schema registry has no schema with this id"
	case ReasonRegistryUnavailable:
		return "schema registry unavailable"
	case ReasonBadSchema:
		return "writer schema is not usable"
	case ReasonAvro:
		return "body is not valid Avro for the writer schema"
	case ReasonMissingField:
		return "required field is missing or empty"
	case ReasonInvalidField:
		return "field has an unusable type or value"
	}
	return r.String()
}

// DecodeError is the only error type [Decoder.Decode] returns. It carries identifying
// facts (topic, schema id, field name) and never a field's value: values are personal data
// and errors end up in logs and dead-letter headers.
type DecodeError struct {
	Reason Reason
	// Topic is the topic the record was read from.
	Topic string
	// SchemaID is the id from the wire-format header; 0 for raw records (Confluent schema
	// registries assign ids from 1).
	SchemaID int
	// Field is the dotted path of the offending field (e.g. "custom_data.contents[2].id")
	// for ReasonMissingField and ReasonInvalidField; empty otherwise.
	Field string
	// Err is the underlying cause, if any: a registry client error, a goavro error, a
	// context error.
	Err error
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("schema: decoding record from topic ")
	b.WriteString(strconv.Quote(e.Topic))
	if e.SchemaID != 0 {
		b.WriteString(" (schema id ")
		b.WriteString(strconv.Itoa(e.SchemaID))
		b.WriteByte(')')
	}
	b.WriteString(": ")
	b.WriteString(e.Reason.describe())
	if e.Field != "" {
		b.WriteString(": field ")
		b.WriteString(strconv.Quote(e.Field))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Transient reports whether retrying the same record later may succeed, i.e. the
// failure was the schema registry's, not the record's.
func (e *DecodeError) Transient() bool { return e.Reason == ReasonRegistryUnavailable }

// IsTransient reports whether err (or an error it wraps) is a *DecodeError that should be
// retried rather than dead-lettered. Any other error, including nil, is not transient.
func IsTransient(err error) bool {
	var de *DecodeError
	return errors.As(err, &de) && de.Transient()
}

// ReasonOf returns the Reason of the *DecodeError in err's chain, or 0 if there is none.
func ReasonOf(err error) Reason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return 0
}
