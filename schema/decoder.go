package schema

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// Mode says how a topic's record values are framed.
type Mode uint8

const (
	// ModeAuto, the zero value, decodes a value as wire format when its first byte is the
	// magic byte 0 and the Decoder has a registry, and as raw Avro otherwise.
	//
	// This is a guess, and it is ambiguous: a raw Avro body can start with a 0 byte too.
	// For the embedded schemas it cannot start with 0 and still be valid, because their
	// first field is the required event_id string and a 0 byte there is an empty string, so
	// auto never misreads a valid record. A custom raw schema whose encoding can start with
	// 0 (a first field that is a number, a boolean, an empty string or array, or a union
	// whose first branch is null) must use ModeRaw or ModeWire instead.
	ModeAuto Mode = iota
	// ModeRaw decodes every value as a bare Avro body written with the topic's Schema.
	ModeRaw
	// ModeWire decodes every value as Confluent wire format: magic byte 0, a 4-byte
	// big-endian schema id, then the Avro body written with that registry schema.
	ModeWire
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeRaw:
		return "raw"
	case ModeWire:
		return "wire"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses "auto", "raw" or "wire"; the empty string is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return ModeAuto, nil
	case "raw":
		return ModeRaw, nil
	case "wire":
		return ModeWire, nil
	}
	return 0, fmt.Errorf("schema: unknown mode %q (want auto, raw or wire)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseMode], so that a Mode can
// be read straight from a configuration file.
func (m *Mode) UnmarshalText(b []byte) error {
	p, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = p
	return nil
}

// TopicConfig says how to decode one topic.
type TopicConfig struct {
	// Mode is the framing of the topic's values; the zero value is ModeAuto.
	Mode Mode
	// Schema is the writer schema of raw records: the name of an embedded schema
	// ([SchemaWebEvent], [SchemaOfflineEvent]) or Avro schema JSON. Required for ModeRaw and
	// ModeAuto; must be empty for ModeWire, where each record names its writer schema.
	Schema string
	// Kind is used when the writer schema's record name is neither WebEvent nor
	// OfflineEvent (namespaces are ignored). Zero means records must be named one of those.
	Kind Kind
}

// Option configures a Decoder.
type Option func(*options)

type options struct {
	registry     *sr.Client
	fetchTimeout time.Duration
	notFoundTTL  time.Duration
	// goavroOnly turns the fast path off, so tests can compare the two.
	goavroOnly bool
}

// WithRegistry sets the schema registry that wire-format schema ids are resolved against.
// Without it, ModeWire topics are rejected and ModeAuto topics are always read as raw.
func WithRegistry(cl *sr.Client) Option {
	return func(o *options) { o.registry = cl }
}

// WithFetchTimeout bounds one schema registry lookup, default 10s. The lookup is shared by
// every Decode waiting on the same schema id, so it does not run under any one caller's
// context; each caller still stops waiting when its own context is done.
func WithFetchTimeout(d time.Duration) Option {
	return func(o *options) { o.fetchTimeout = d }
}

// WithNotFoundTTL sets how long the registry's "no schema with this id" answer is
// remembered, default 30s. Remembering it keeps a topic full of records with a bogus id
// from sending one registry request per record; forgetting it lets an id that was
// registered late (e.g. a lagging registry replica) start working. Zero disables it.
func WithNotFoundTTL(d time.Duration) Option {
	return func(o *options) { o.notFoundTTL = d }
}

// Decoder decodes record values into Events. It is safe for concurrent use; create one
// per process and share it, so that compiled schemas are shared too. It needs no closing:
// a registry lookup left behind by callers that gave up ends within the fetch timeout.
type Decoder struct {
	topics map[string]*topic
	opts   options

	// cache maps a schema id to its compiled writer schema or its permanent failure. It is
	// copy-on-write so the hot path is a lock-free load; writes happen once per new id.
	cache atomic.Pointer[map[int]*cached]

	mu       sync.Mutex // guards inflight and cache writes
	inflight map[int]*fetch
}

type topic struct {
	mode Mode
	raw  *writer // nil for ModeWire
	// older are earlier versions of an embedded raw schema, newest first, tried when a raw
	// body does not fit raw: it was written before the schema gained fields.
	older []*writer
	kind  Kind
}

// cached is a schema id's settled lookup: a writer, or a permanent error until expires.
type cached struct {
	w       *writer
	reason  Reason
	err     error
	expires time.Time
}

// fetch is one registry lookup in progress; done is closed when res is set.
type fetch struct {
	done chan struct{}
	res  cached
}

// NewDecoder returns a Decoder for the given topics. It compiles every raw schema now, so
// configuration mistakes fail at startup rather than per record.
func NewDecoder(topics map[string]TopicConfig, opts ...Option) (*Decoder, error) {
	d := &Decoder{
		topics:   make(map[string]*topic, len(topics)),
		opts:     options{fetchTimeout: 10 * time.Second, notFoundTTL: 30 * time.Second},
		inflight: make(map[int]*fetch),
	}
	for _, o := range opts {
		o(&d.opts)
	}
	if d.opts.fetchTimeout <= 0 {
		return nil, errors.New("schema: fetch timeout must be positive")
	}
	for name, tc := range topics {
		t := &topic{mode: tc.Mode, kind: tc.Kind}
		switch tc.Mode {
		case ModeWire:
			if d.opts.registry == nil {
				return nil, fmt.Errorf("schema: topic %q: mode wire needs a registry (WithRegistry)", name)
			}
			if tc.Schema != "" {
				return nil, fmt.Errorf("schema: topic %q: mode wire takes writer schemas from the registry; Schema must be empty", name)
			}
		case ModeRaw, ModeAuto:
			if tc.Schema == "" {
				return nil, fmt.Errorf("schema: topic %q: mode %s needs a Schema for raw records", name, tc.Mode)
			}
			text, err := resolveSchemaText(tc.Schema)
			if err != nil {
				return nil, fmt.Errorf("schema: topic %q: %w", name, err)
			}
			w, err := compile(text)
			if err != nil {
				return nil, fmt.Errorf("schema: topic %q: compiling schema: %w", name, err)
			}
			if w.kind == 0 && tc.Kind == 0 {
				return nil, fmt.Errorf("schema: topic %q: record %s is neither %s nor %s; set Kind", name, w.name, SchemaWebEvent, SchemaOfflineEvent)
			}
			t.raw = w
			for _, old := range earlierVersions(tc.Schema) {
				ow, err := compile(old)
				if err != nil {
					return nil, fmt.Errorf("schema: topic %q: compiling an earlier %s: %w", name, tc.Schema, err)
				}
				t.older = append(t.older, ow)
			}
		default:
			return nil, fmt.Errorf("schema: topic %q: unknown mode %d", name, tc.Mode)
		}
		switch tc.Kind {
		case 0, KindWeb, KindOffline:
		default:
			return nil, fmt.Errorf("schema: topic %q: unknown kind %d", name, tc.Kind)
		}
		d.topics[name] = t
	}
	empty := make(map[int]*cached)
	d.cache.Store(&empty)
	return d, nil
}

// Decode decodes one record value read from topic. ctx bounds the wait for a schema
// registry lookup, which only happens the first time a wire-format schema id is seen.
//
// The returned Event does not refer to value's memory, so the caller may reuse it.
// Every error is a *DecodeError; use [IsTransient] to tell registry outages (retry) from
// bad records (dead-letter).
func (d *Decoder) Decode(ctx context.Context, topic string, value []byte) (Event, error) {
	var ev Event
	if err := d.decode(ctx, topic, value, false, &ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// DecodeOwned is Decode for a value the caller hands over: the returned Event's strings may
// share value's memory, which saves copying every record once more. The caller must not
// modify value afterwards.
func (d *Decoder) DecodeOwned(ctx context.Context, topic string, value []byte) (Event, error) {
	var ev Event
	if err := d.DecodeOwnedInto(ctx, topic, value, &ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// DecodeOwnedInto is DecodeOwned writing the Event into *dst: all of it when it returns
// nil, and nothing to rely on when it returns an error. An Event is close to a kilobyte,
// and a relay decoding tens of thousands a second into one reused Event saves copying it
// out through every layer.
func (d *Decoder) DecodeOwnedInto(ctx context.Context, topic string, value []byte, dst *Event) error {
	return d.decode(ctx, topic, value, true, dst)
}

func (d *Decoder) decode(ctx context.Context, topic string, value []byte, owned bool, dst *Event) error {
	t, ok := d.topics[topic]
	if !ok {
		return &DecodeError{Reason: ReasonUnknownTopic, Topic: topic}
	}
	wire := t.mode == ModeWire ||
		t.mode == ModeAuto && d.opts.registry != nil && len(value) > 0 && value[0] == 0
	if !wire {
		err := d.decodeBody(topic, t, 0, t.raw, value, owned, dst)
		if err != nil && len(t.older) > 0 && ReasonOf(err) == ReasonAvro {
			// The guard makes a version accept a body only if it reads it exactly to the
			// end, so an older version that does is the one the producer wrote with.
			for _, w := range t.older {
				if oerr := d.decodeBody(topic, t, 0, w, value, owned, dst); oerr == nil {
					return nil
				}
			}
		}
		return err
	}
	if len(value) < 5 || value[0] != 0 {
		var err error
		if len(value) < 5 {
			err = fmt.Errorf("value is %d bytes, shorter than the 5-byte header", len(value))
		} else {
			err = fmt.Errorf("magic byte is %d, want 0", value[0])
		}
		return &DecodeError{Reason: ReasonBadHeader, Topic: topic, Err: err}
	}
	id := int(binary.BigEndian.Uint32(value[1:5]))
	w, reason, err := d.writerFor(ctx, id)
	if err != nil {
		return &DecodeError{Reason: reason, Topic: topic, SchemaID: id, Err: err}
	}
	return d.decodeBody(topic, t, id, w, value[5:], owned, dst)
}

func (d *Decoder) decodeBody(topicName string, t *topic, id int, w *writer, body []byte, owned bool, dst *Event) error {
	kind := w.kind
	if kind == 0 {
		kind = t.kind
	}
	if w.fast != nil && kind != 0 && !d.opts.goavroOnly {
		// The program bounds block counts and nesting as the guard does and reads the body
		// exactly to its end, so it needs no guard in front. It gives up on every body
		// goavro or toEvent would reject, without saying why; the path below then
		// produces the error with its Reason, Field and message.
		if w.fast.decodeInto(body, kind, owned, false, dst) {
			return nil
		}
	}
	// The guard runs first because goavro can die on a hostile body (see guard.go); it
	// also rejects trailing bytes before goavro does any work.
	rest, err := w.guard.check(body, 0)
	if err != nil {
		return &DecodeError{Reason: ReasonAvro, Topic: topicName, SchemaID: id,
			Err: fmt.Errorf("record %s: %w", w.name, err)}
	}
	if len(rest) != 0 {
		return &DecodeError{Reason: ReasonAvro, Topic: topicName, SchemaID: id,
			Err: fmt.Errorf("%d bytes left over after the %s record; was it written with another schema?", len(rest), w.name)}
	}
	native, _, err := w.codec.NativeFromBinary(body)
	if err != nil {
		return &DecodeError{Reason: ReasonAvro, Topic: topicName, SchemaID: id, Err: err}
	}
	if kind == 0 {
		return &DecodeError{Reason: ReasonBadSchema, Topic: topicName, SchemaID: id,
			Err: fmt.Errorf("record %s is neither %s nor %s and the topic configures no Kind", w.name, SchemaWebEvent, SchemaOfflineEvent)}
	}
	rec, _ := native.(map[string]any) // compile only accepts record schemas
	ev, derr := toEvent(rec, kind)
	if derr != nil {
		derr.Topic, derr.SchemaID = topicName, id
		return derr
	}
	*dst = ev
	return nil
}

// writerFor returns the compiled writer schema for a registry schema id, fetching it at
// most once at a time per id.
func (d *Decoder) writerFor(ctx context.Context, id int) (*writer, Reason, error) {
	if c, ok := (*d.cache.Load())[id]; ok {
		if c.w != nil {
			return c.w, 0, nil
		}
		if time.Now().Before(c.expires) {
			return nil, c.reason, c.err
		}
	}

	d.mu.Lock()
	// Another goroutine may have settled this id between the load above and the lock.
	if c, ok := (*d.cache.Load())[id]; ok && (c.w != nil || time.Now().Before(c.expires)) {
		d.mu.Unlock()
		return c.w, c.reason, c.err
	}
	f, ok := d.inflight[id]
	if !ok {
		f = &fetch{done: make(chan struct{})}
		d.inflight[id] = f
		// The lookup outlives this caller if it gives up, so the other waiters and the
		// next record still get its answer; fetchTimeout bounds it.
		go d.fetch(context.WithoutCancel(ctx), id, f)
	}
	d.mu.Unlock()

	select {
	case <-f.done:
		return f.res.w, f.res.reason, f.res.err
	case <-ctx.Done():
		return nil, ReasonRegistryUnavailable, fmt.Errorf("waiting for schema registry: %w", context.Cause(ctx))
	}
}

func (d *Decoder) fetch(ctx context.Context, id int, f *fetch) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.fetchTimeout)
	defer cancel()
	f.res = d.lookup(ctx, id)

	d.mu.Lock()
	delete(d.inflight, id)
	// Transient failures are not cached: the next record asks the registry again.
	if f.res.w != nil || (f.res.reason != ReasonRegistryUnavailable && d.opts.notFoundTTL > 0) {
		now := time.Now()
		if f.res.w == nil {
			f.res.expires = now.Add(d.opts.notFoundTTL)
		}
		old := *d.cache.Load()
		next := make(map[int]*cached, len(old)+1)
		for k, v := range old {
			if v.w != nil || now.Before(v.expires) { // drop expired failures while copying
				next[k] = v
			}
		}
		res := f.res
		next[id] = &res
		d.cache.Store(&next)
	}
	d.mu.Unlock()
	close(f.done)
}

// lookup asks the registry for a schema and classifies any failure.
func (d *Decoder) lookup(ctx context.Context, id int) cached {
	s, err := d.opts.registry.SchemaByID(ctx, id)
	if err != nil {
		if notFound(err) {
			return cached{reason: ReasonUnknownSchemaID, err: err}
		}
		return cached{reason: ReasonRegistryUnavailable, err: err}
	}
	if s.Type != sr.TypeAvro {
		return cached{reason: ReasonBadSchema, err: fmt.Errorf("schema type is %s, want AVRO", s.Type)}
	}
	if len(s.References) > 0 {
		return cached{reason: ReasonBadSchema, err: fmt.Errorf("schema has %d references, which are not supported", len(s.References))}
	}
	w, err := compile(s.Schema)
	if err != nil {
		return cached{reason: ReasonBadSchema, err: err}
	}
	return cached{w: w}
}

// notFound reports whether the registry positively answered that the id does not exist.
// Only that answer is permanent: a bare 404 without the registry's error code may come
// from a proxy or a wrong URL, and treating it as permanent would dead-letter every record
// of a healthy topic because of a configuration mistake.
func notFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound && re.ErrorCode == sr.ErrSchemaNotFound.Code
}
