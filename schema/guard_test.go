package schema

import (
	"context"
	"math/rand/v2"
	"testing"
)

// richSchema exercises every Avro type the guard must walk, including a recursive named
// type, references by short and full name, and logical types.
const richSchema = `{"type":"record","name":"Rich","namespace":"t.ns","fields":[
 {"name":"n","type":"null"},
 {"name":"b","type":"boolean"},
 {"name":"i","type":"int"},
 {"name":"l","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"f","type":"float"},
 {"name":"d","type":"double"},
 {"name":"by","type":"bytes"},
 {"name":"s","type":"string"},
 {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
 {"name":"e2","type":"t.ns.Color"},
 {"name":"fx","type":{"type":"fixed","name":"Four","size":4}},
 {"name":"m","type":{"type":"map","values":"long"}},
 {"name":"nulls","type":{"type":"array","items":"null"}},
 {"name":"list","type":["null",{"type":"record","name":"Node","namespace":"other","fields":[
   {"name":"v","type":"string"},{"name":"next","type":["null","Node"]}]}]},
 {"name":"nodes","type":{"type":"array","items":"other.Node"}}
]}`

func TestGuardAgreesWithGoavro(t *testing.T) {
	g, err := newGuard(richSchema)
	if err != nil {
		t.Fatal(err)
	}
	node := func(v string, next any) map[string]any {
		return map[string]any{"v": v, "next": next}
	}
	for _, tc := range []map[string]any{
		{
			"n": nil, "b": true, "i": int32(-3), "l": int64(1_700_000_000_000), "f": float32(1.5), "d": 2.5,
			"by": []byte{1, 2, 3}, "s": "héllo", "e": "GREEN", "e2": "RED", "fx": []byte{9, 9, 9, 9},
			"m": map[string]any{"a": int64(1), "b": int64(-1)}, "nulls": []any{nil, nil, nil},
			"list":  map[string]any{"other.Node": node("x", map[string]any{"other.Node": node("y", nil)})},
			"nodes": []any{node("p", nil), node("q", nil)},
		},
		{
			"n": nil, "b": false, "i": int32(0), "l": int64(0), "f": float32(0), "d": 0.0,
			"by": []byte{}, "s": "", "e": "RED", "e2": "RED", "fx": []byte{0, 0, 0, 0},
			"m": map[string]any{}, "nulls": []any{}, "list": nil, "nodes": []any{},
		},
	} {
		b := encodeWith(t, richSchema, tc)
		rest, err := g.check(append(b, 0xAA), 0)
		if err != nil {
			t.Fatalf("guard rejected a valid value: %v", err)
		}
		if len(rest) != 1 {
			t.Errorf("guard consumed %d of %d bytes", len(b)+1-len(rest), len(b))
		}
		for cut := range b { // every strict prefix is short
			if _, err := g.check(b[:cut], 0); err == nil {
				t.Errorf("guard accepted a %d-byte prefix of a %d-byte value", cut, len(b))
			}
		}
	}
}

// TestHostileBlockCount: before the guard, these values made goavro allocate 32 GiB and
// the runtime abort the process.
func TestHostileBlockCount(t *testing.T) {
	huge := []byte{0xfe, 0xff, 0xff, 0xff, 0x0f} // zig-zag MaxInt32
	// WebEvent: event_id "a", event_name "b", event_time 1, pixel_id "c", then 12 empty
	// or null fields up to consent, custom_data branch 1, null value, currency, order_id.
	web := []byte{2, 'a', 2, 'b', 2, 2, 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0}
	negative := append(append([]byte(nil), web...), 0xfd, 0xff, 0xff, 0xff, 0x0f, 2) // count -MaxInt32, size 1
	web = append(web, huge...)

	withMap := `{"type":"record","name":"WebEvent","fields":[
 {"name":"event_id","type":"string"},{"name":"attrs","type":{"type":"map","values":"string"}}]}`
	withNulls := `{"type":"record","name":"WebEvent","fields":[
 {"name":"event_id","type":"string"},{"name":"xs","type":{"type":"array","items":"null"}}]}`

	dec := mustDecoder(t, map[string]TopicConfig{
		"web":   {Mode: ModeRaw, Schema: SchemaWebEvent},
		"map":   {Mode: ModeRaw, Schema: withMap},
		"nulls": {Mode: ModeRaw, Schema: withNulls},
	})
	for _, tc := range []struct {
		name, topic string
		value       []byte
	}{
		{"array of strings", "web", web},
		{"negative block count with size", "web", negative},
		{"map", "map", append([]byte{2, 'a'}, huge...)},
		{"array of nulls", "nulls", append([]byte{2, 'a'}, huge...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dec.Decode(context.Background(), tc.topic, tc.value)
			if ReasonOf(err) != ReasonAvro {
				t.Fatalf("want ReasonAvro, got %v", err)
			}
			t.Log(err)
		})
	}
}

// TestCorruptedRecordsNeverPanic flips random bytes of valid records: decoding must fail
// or succeed cleanly, and a success must still satisfy the required fields.
func TestCorruptedRecordsNeverPanic(t *testing.T) {
	enc := mustEncoder(t)
	dec := mustDecoder(t, DefaultTopics())
	web, err := enc.AppendRaw(nil, sampleWeb())
	if err != nil {
		t.Fatal(err)
	}
	off, err := enc.AppendRaw(nil, sampleOffline())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 9))
	for i := range 5000 {
		topic, src := DefaultWebTopic, web
		if i%2 == 1 {
			topic, src = DefaultOfflineTopic, off
		}
		v := append([]byte(nil), src...)
		for range 1 + rng.IntN(4) {
			v[rng.IntN(len(v))] = byte(rng.UintN(256))
		}
		if rng.IntN(4) == 0 {
			v = v[:rng.IntN(len(v))]
		}
		ev, err := dec.Decode(context.Background(), topic, v)
		if err == nil && (ev.EventID == "" || ev.EventName == "" || ev.PixelID == "" || ev.EventTime <= 0) {
			t.Fatalf("decoded an event without its required fields: %+v", ev)
		}
		if err != nil && ReasonOf(err) == 0 {
			t.Fatalf("untyped error: %v", err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	enc := mustEncoder(f)
	for _, ev := range []Event{sampleWeb(), sampleOffline()} {
		b, err := enc.AppendRaw(nil, ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ev.Kind == KindOffline, b)
	}
	dec := mustDecoder(f, DefaultTopics())
	f.Fuzz(func(t *testing.T, offline bool, v []byte) {
		topic := DefaultWebTopic
		if offline {
			topic = DefaultOfflineTopic
		}
		if _, err := dec.Decode(context.Background(), topic, v); err != nil && ReasonOf(err) == 0 {
			t.Fatalf("untyped error: %v", err)
		}
	})
}
