package schema

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/linkedin/goavro/v2"
)

// Names of the embedded schemas, usable as [TopicConfig.Schema].
const (
	SchemaWebEvent     = "WebEvent"
	SchemaOfflineEvent = "OfflineEvent"
)

// Default topics the published record types are written to.
const (
	DefaultWebTopic     = "capi.web"
	DefaultOfflineTopic = "capi.offline"
)

// namespace is the Avro namespace of the embedded schemas; named types inside unions are
// keyed by their full name in goavro's native form.
const namespace = "io.capirelay.events"

var (
	//go:embed avro/WebEvent.avsc
	webEventAvsc string
	//go:embed avro/OfflineEvent.avsc
	offlineEventAvsc string

	// The versions first published. Raw records carry no schema id, so a raw topic
	// configured with an embedded schema's name also reads bodies written with these (see
	// topic.older): a producer still on v1 keeps working after capirelay upgrades.
	//go:embed avro/v1/WebEvent.avsc
	webEventV1Avsc string
	//go:embed avro/v1/OfflineEvent.avsc
	offlineEventV1Avsc string
)

// earlierVersions returns the texts of the earlier published versions of an embedded
// schema, newest first.
func earlierVersions(name string) []string {
	switch name {
	case SchemaWebEvent:
		return []string{webEventV1Avsc}
	case SchemaOfflineEvent:
		return []string{offlineEventV1Avsc}
	}
	return nil
}

// EmbeddedSchema returns the Avro schema text of an embedded schema by name
// ([SchemaWebEvent] or [SchemaOfflineEvent]), e.g. to register it in a schema registry.
func EmbeddedSchema(name string) (string, bool) {
	switch name {
	case SchemaWebEvent:
		return webEventAvsc, true
	case SchemaOfflineEvent:
		return offlineEventAvsc, true
	}
	return "", false
}

// DefaultTopics returns the configuration for the default topics: each in ModeAuto with
// its embedded schema as the raw-format writer schema.
func DefaultTopics() map[string]TopicConfig {
	return map[string]TopicConfig{
		DefaultWebTopic:     {Mode: ModeAuto, Schema: SchemaWebEvent},
		DefaultOfflineTopic: {Mode: ModeAuto, Schema: SchemaOfflineEvent},
	}
}

// writer is a compiled writer schema: the codec and the record kind its name implies.
type writer struct {
	codec *goavro.Codec
	guard *guard
	// fast decodes bodies without goavro (see fastprog.go); nil when the schema uses
	// something it does not handle, and fastErr says what.
	fast    *fastProg
	fastErr error
	// kind is 0 when the record name is neither WebEvent nor OfflineEvent.
	kind Kind
	// name is the record's full name, for error messages.
	name string
}

// codecOptions: publishers on the JVM write decimals the way the Avro spec says, which
// goavro only reads when asked to.
func codecOptions() *goavro.CodecOption {
	o := goavro.DefaultCodecOption()
	o.EnableDecimalBinarySpecCompliantEncoding = true
	return o
}

// compile parses a writer schema. Errors are plain errors; callers classify them as
// ReasonBadSchema (registry) or a configuration error (raw topics).
func compile(text string) (*writer, error) {
	var head struct {
		Type      any    `json:"type"`
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	if err := json.Unmarshal([]byte(text), &head); err != nil {
		return nil, fmt.Errorf("schema is not a JSON object: %w", err)
	}
	if head.Type != "record" {
		return nil, fmt.Errorf("top-level schema type is %v, want record", head.Type)
	}
	codec, err := goavro.NewCodecWithOptions(text, codecOptions())
	if err != nil {
		return nil, err
	}
	g, err := newGuard(text)
	if err != nil {
		return nil, fmt.Errorf("walking schema: %w", err)
	}
	// A name may be written fully qualified; the namespace never matters for the kind, so
	// that publishers can use their own.
	short := head.Name
	if i := strings.LastIndexByte(short, '.'); i >= 0 {
		short = short[i+1:]
	}
	full := head.Name
	if head.Namespace != "" && !strings.Contains(full, ".") {
		full = head.Namespace + "." + full
	}
	w := &writer{codec: codec, guard: g, name: full}
	// The program is compiled only from text goavro accepted, so it never has to judge a
	// schema goavro would refuse. Failing to compile one is no error: goavro reads it.
	if root, err := parseFast(text); err != nil {
		w.fastErr = err
	} else {
		w.fast, w.fastErr = compileFast(root)
	}
	switch short {
	case SchemaWebEvent:
		w.kind = KindWeb
	case SchemaOfflineEvent:
		w.kind = KindOffline
	}
	return w, nil
}

// resolveSchemaText turns TopicConfig.Schema into schema text: an embedded schema's name,
// or the schema itself.
func resolveSchemaText(s string) (string, error) {
	if text, ok := EmbeddedSchema(s); ok {
		return text, nil
	}
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		return s, nil
	}
	return "", fmt.Errorf("schema %q is neither %q, %q nor an Avro record schema", s, SchemaWebEvent, SchemaOfflineEvent)
}
