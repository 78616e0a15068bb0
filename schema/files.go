package schema

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/linkedin/goavro/v2"
)

// DecodeJSON maps one JSON object, written with the Avro schema's field names and plain
// values (no Avro-JSON union wrappers: "email": "a@b.c", not {"string": "a@b.c"}), into an
// Event of the given kind. It is how people hand-write events to check a mapping with
// `capirelay inspect`; the same by-name mapping as Decode applies.
func DecodeJSON(kind Kind, b []byte) (Event, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var rec map[string]any
	if err := dec.Decode(&rec); err != nil {
		return Event{}, &DecodeError{Reason: ReasonAvro, Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	native, ok := nativeFromJSON(rec).(map[string]any)
	if !ok {
		return Event{}, &DecodeError{Reason: ReasonAvro, Err: errors.New("not a JSON object")}
	}
	ev, derr := toEvent(native, kind)
	if derr != nil {
		return Event{}, derr
	}
	return ev, nil
}

// nativeFromJSON turns json.Number into the int64 or float64 goavro would have produced, so
// the mapper sees the same Go types as for Avro.
func nativeFromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, err := x.Float64()
		if err != nil {
			return math.NaN()
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = nativeFromJSON(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = nativeFromJSON(e)
		}
		return x
	}
	return v
}

// ReadJSONLines decodes one event per non-empty line. An error names the line; fn may stop
// the reading by returning an error.
func ReadJSONLines(r io.Reader, kind Kind, fn func(line int, ev Event, err error) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ev, err := DecodeJSON(kind, b)
		if err := fn(line, ev, err); err != nil {
			return err
		}
	}
	return sc.Err()
}

// ReadContainerFile decodes the records of an Avro object container file (.avro), whose
// header carries the writer schema. The kind comes from the schema's record name
// (WebEvent, OfflineEvent), else from fallback.
func ReadContainerFile(r io.Reader, fallback Kind, fn func(index int, ev Event, err error) error) error {
	ocf, err := goavro.NewOCFReader(bufio.NewReader(r))
	if err != nil {
		return fmt.Errorf("schema: not an Avro container file: %w", err)
	}
	w, err := compile(ocf.Codec().Schema())
	if err != nil {
		return fmt.Errorf("schema: container file's schema: %w", err)
	}
	kind := w.kind
	if kind == 0 {
		kind = fallback
	}
	if kind == 0 {
		return fmt.Errorf("schema: container file's record %s is neither %s nor %s; say which kind it holds", w.name, SchemaWebEvent, SchemaOfflineEvent)
	}
	for i := 0; ocf.Scan(); i++ {
		native, err := ocf.Read()
		var ev Event
		if err == nil {
			rec, ok := native.(map[string]any)
			if !ok {
				err = fmt.Errorf("record %d is not a record", i)
			} else if e, derr := toEvent(rec, kind); derr != nil {
				err = derr
			} else {
				ev = e
			}
		}
		if err := fn(i, ev, err); err != nil {
			return err
		}
	}
	return ocf.Err()
}
