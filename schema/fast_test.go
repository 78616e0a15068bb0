package schema

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The fast path is proven by comparison: every body is decoded by a Decoder using it and
// by one using only goavro, and the two must agree on the Event, or on the error's
// Reason, Field and text.

// schemaEverything is a WebEvent whose writer uses every Avro type in fields nobody
// reads, and the lenient conversions in fields toEvent reads.
const schemaEverything = `{"type":"record","name":"WebEvent","namespace":"x.y","fields":[
 {"name":"u_null","type":"null"},
 {"name":"u_bool","type":"boolean"},
 {"name":"event_id","type":"string"},
 {"name":"u_int","type":"int"},
 {"name":"u_long","type":"long"},
 {"name":"u_float","type":"float"},
 {"name":"u_double","type":"double"},
 {"name":"u_bytes","type":"bytes"},
 {"name":"u_enum","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
 {"name":"u_enum2","type":"Color"},
 {"name":"u_fixed","type":{"type":"fixed","name":"Four","size":4}},
 {"name":"u_map","type":{"type":"map","values":["null","long","string"]}},
 {"name":"u_arr","type":{"type":"array","items":{"type":"record","name":"Pair","fields":[{"name":"a","type":"int"},{"name":"b","type":["string","null"]}]}}},
 {"name":"u_nulls","type":{"type":"array","items":"null"}},
 {"name":"u_list","type":["null",{"type":"record","name":"Node","namespace":"other","fields":[
   {"name":"v","type":"string"},{"name":"next","type":["null","Node"]}]}]},
 {"name":"u_nodes","type":{"type":"array","items":"other.Node"}},
 {"name":"u_ts","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"u_date","type":{"type":"int","logicalType":"date"}},
 {"name":"u_tm","type":{"type":"int","logicalType":"time-millis"}},
 {"name":"u_dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
 {"name":"u_uuid","type":{"type":"string","logicalType":"uuid"}},
 {"name":"event_name","type":{"type":"enum","name":"Name","symbols":["Purchase","Lead"]}},
 {"name":"event_time","type":["null",{"type":"long","logicalType":"timestamp-millis"}]},
 {"name":"pixel_id","type":"bytes"},
 {"name":"action_source","type":["string","null","int"]},
 {"name":"email","type":["null",{"type":"array","items":["null","string","bytes"]}]},
 {"name":"phone","type":{"type":"array","items":"string"}},
 {"name":"external_id","type":["null","string","long"]},
 {"name":"fbp","type":{"type":"fixed","name":"F3","size":3}},
 {"name":"fbc","type":["null","Color"]},
 {"name":"opt_out","type":["null","boolean"]},
 {"name":"consent","type":["null","string",{"type":"record","name":"Consent","fields":[
   {"name":"u","type":"Four"},{"name":"ads_allowed","type":["null","boolean"]},
   {"name":"ldu_country","type":"long"},{"name":"ldu_state","type":["int","null"]}]}]},
 {"name":"custom_data","type":["null",{"type":"record","name":"CD","fields":[
   {"name":"value","type":["null",{"type":"bytes","logicalType":"decimal","precision":12,"scale":3},"double"]},
   {"name":"predicted_ltv","type":["float","null","int"]},
   {"name":"net_revenue","type":"long"},
   {"name":"num_items","type":["null","int","long"]},
   {"name":"content_ids","type":["null","string",{"type":"array","items":"string"}]},
   {"name":"contents","type":["null",{"type":"array","items":["null",{"type":"record","name":"Item","fields":[
     {"name":"id","type":["null","string"]},{"name":"extra","type":{"type":"map","values":"int"}},
     {"name":"quantity","type":["null","int","string"]},{"name":"item_price","type":["null","double","float"]}]},"string"]}]},
   {"name":"store_data","type":["null",{"type":"record","name":"SD","fields":[{"name":"store_code","type":["null","string"]},{"name":"zz","type":"Color"}]}]}]}]},
 {"name":"customer","type":["null",{"type":"record","name":"Customer","fields":[
   {"name":"emails","type":["null",{"type":"array","items":"string"},"string"]},
   {"name":"first_name","type":["null","string",{"type":"array","items":["string","null"]}]},
   {"name":"external_id","type":{"type":"array","items":"string"}},
   {"name":"lead_id","type":["null","string"]},
   {"name":"madid","type":["null","bytes"]}]}]},
 {"name":"original_event_data","type":["null",{"type":"record","name":"OED","fields":[
   {"name":"event_time","type":["null","long","int"]},{"name":"event_id","type":["null","string"]}]},"long"]},
 {"name":"app_data","type":["null",{"type":"record","name":"AD","fields":[
   {"name":"advertiser_tracking_enabled","type":["null","boolean","string"]},
   {"name":"extinfo","type":["null",{"type":"array","items":["null","string","long"]}]},
   {"name":"url_schemes","type":["null","string",{"type":"array","items":"string"}]},
   {"name":"vendor_id","type":["null","string"]}]}]},
 {"name":"u_tail","type":["null",{"type":"map","values":{"type":"array","items":"Pair"}}]}
]}`

// schemaOfflineOdd is an OfflineEvent with fixed decimals, timestamp-micros and a date for
// event_time-like fields, direct (non-union) records, and named references.
const schemaOfflineOdd = `{"type":"record","name":"io.other.OfflineEvent","fields":[
 {"name":"event_id","type":"string"},{"name":"event_name","type":"string"},
 {"name":"event_time","type":["null",{"type":"long","logicalType":"timestamp-micros"},{"type":"int","logicalType":"date"},"string"]},
 {"name":"pixel_id","type":"string"},
 {"name":"custom_data","type":{"type":"record","name":"OCD","fields":[
   {"name":"value","type":{"type":"fixed","name":"Money","size":8,"logicalType":"decimal","precision":18,"scale":4}},
   {"name":"net_revenue","type":["null","Money"]},
   {"name":"contents","type":{"type":"array","items":{"type":"record","name":"CI","fields":[
     {"name":"id","type":"string"},{"name":"quantity","type":"long"},{"name":"n","type":"null"}]}}},
   {"name":"store_data","type":{"type":"record","name":"SD","fields":[{"name":"store_page_id","type":"string"},{"name":"brand_page_id","type":"string"}]}}]}},
 {"name":"consent","type":{"type":"record","name":"C","fields":[{"name":"ads_allowed","type":"boolean"},{"name":"limited_data_use","type":"boolean"}]}},
 {"name":"customer","type":["null",{"type":"record","name":"Cust","fields":[
   {"name":"phones","type":{"type":"array","items":"string"}},{"name":"city","type":"string"}]}]},
 {"name":"crm_name","type":{"type":"string","logicalType":"uuid"}},
 {"name":"original_event_data","type":"SD"}
]}`

// schemaFallback uses shapes the fast path leaves to goavro.
var schemaFallback = []string{
	// A map where a string is read: mapping.union unwraps a one-entry map.
	`{"type":"record","name":"WebEvent","fields":[{"name":"event_id","type":{"type":"map","values":"string"}},
	 {"name":"event_name","type":"string"},{"name":"event_time","type":"long"},{"name":"pixel_id","type":"string"}]}`,
	// A one-field record not in a union: mapping.record takes it for a union wrapper.
	`{"type":"record","name":"WebEvent","fields":[{"name":"event_id","type":"string"},
	 {"name":"event_name","type":"string"},{"name":"event_time","type":"long"},{"name":"pixel_id","type":"string"},
	 {"name":"consent","type":{"type":"record","name":"C","fields":[{"name":"ads_allowed","type":["null","boolean"]}]}}]}`,
	`{"type":"record","name":"WebEvent","fields":[{"name":"event_id","type":{"type":"string","logicalType":"validated-string","name":"VS","pattern":"^a"}},
	 {"name":"event_name","type":"string"},{"name":"event_time","type":"long"},{"name":"pixel_id","type":"string"}]}`,
}

// fastSchemas are the writer schemas the differential tests run, all expected to compile
// to a program.
func fastSchemas(t testing.TB) []string {
	return []string{webEventAvsc, offlineEventAvsc, readV1(t, SchemaWebEvent), readV1(t, SchemaOfflineEvent),
		schemaEverything, schemaOfflineOdd}
}

func TestFastPathCompiles(t *testing.T) {
	for i, text := range fastSchemas(t) {
		w, err := compile(text)
		if err != nil {
			t.Fatal(err)
		}
		if w.fast == nil {
			t.Errorf("schema %d keeps the goavro path: %v", i, w.fastErr)
		}
	}
	for i, text := range schemaFallback {
		w, err := compile(text)
		if err != nil {
			t.Fatal(err)
		}
		if w.fast != nil || !errors.Is(w.fastErr, errUnsupported) {
			t.Errorf("fallback schema %d compiled to a program (%v)", i, w.fastErr)
		}
	}
}

// pair is two Decoders over the same topics: one with the fast path, one goavro only.
type pair struct{ fast, slow *Decoder }

func newPair(t testing.TB, schemas []string) pair {
	topics := make(map[string]TopicConfig, len(schemas))
	for i, s := range schemas {
		topics[topicName(i)] = TopicConfig{Mode: ModeRaw, Schema: s, Kind: KindWeb}
	}
	fast := mustDecoder(t, topics)
	slow := mustDecoder(t, topics)
	slow.opts.goavroOnly = true
	return pair{fast, slow}
}

func topicName(i int) string { return "t" + string(rune('a'+i)) }

// check decodes v both ways and fails unless the results are identical. It reports
// whether the body decoded.
func (p pair) check(t testing.TB, topic string, v []byte) bool {
	t.Helper()
	gotEv, gotErr := p.fast.Decode(context.Background(), topic, v)
	wantEv, wantErr := p.slow.Decode(context.Background(), topic, v)
	if !reflect.DeepEqual(gotEv, wantEv) {
		t.Fatalf("topic %s body %x:\nfast   %+v\ngoavro %+v", topic, v, gotEv, wantEv)
	}
	// DecodeOwned reads the same Event out of a body it may keep.
	ownedEv, ownedErr := p.fast.DecodeOwned(context.Background(), topic, bytes.Clone(v))
	if !reflect.DeepEqual(ownedEv, wantEv) || (ownedErr == nil) != (wantErr == nil) {
		t.Fatalf("topic %s body %x:\nowned  %+v (%v)\ngoavro %+v (%v)", topic, v, ownedEv, ownedErr, wantEv, wantErr)
	}
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("topic %s body %x:\nfast   error %v\ngoavro error %v", topic, v, gotErr, wantErr)
	}
	var g, w *DecodeError
	if gotErr != nil && (!errors.As(gotErr, &g) || !errors.As(wantErr, &w) || g.Reason != w.Reason || g.Field != w.Field) {
		t.Fatalf("errors differ: %v / %v", gotErr, wantErr)
	}
	// The program must accept every body goavro accepts (or the raw topic's earlier
	// version must), or the equality above proves nothing about it.
	if tp := p.fast.topics[topic]; wantErr == nil && tp.raw.fast != nil {
		accepted := false
		for _, w := range append([]*writer{tp.raw}, tp.older...) {
			if w.fast == nil {
				continue
			}
			kind := w.kind
			if kind == 0 {
				kind = tp.kind
			}
			ev, ok := w.fast.decode(v, kind, false)
			if w.fast.gen != 0 {
				// The generated decoder and the interpreter agree on every body.
				var iev Event
				iok := w.fast.decodeInto(v, kind, false, true, &iev)
				if iok != ok || ok && !reflect.DeepEqual(iev, ev) {
					t.Fatalf("topic %s body %x:\ngenerated %v %+v\ninterpreted %v %+v", topic, v, ok, ev, iok, iev)
				}
			}
			if ok {
				accepted = true
				break
			}
		}
		if !accepted {
			t.Fatalf("topic %s body %x: goavro decodes it, the program gives up", topic, v)
		}
	}
	return gotErr == nil
}

// mutate corrupts a copy of b: byte flips, truncation, or bytes appended.
func mutate(rng *rand.Rand, b []byte) []byte {
	v := append([]byte(nil), b...)
	switch rng.IntN(4) {
	case 0:
		if len(v) > 0 {
			v = v[:rng.IntN(len(v))]
		}
	case 1:
		v = append(v, byte(rng.UintN(256)))
	default:
		for range 1 + rng.IntN(3) {
			if len(v) > 0 {
				v[rng.IntN(len(v))] = byte(rng.UintN(256))
			}
		}
	}
	return v
}

var (
	pickStrings = []string{"", "", "a", piiEmail, "Purchase", "héllo wörld", "123456789012345", strings.Repeat("x", 200)}
	pickLongs   = []int64{0, 0, 1, -1, 5, 127, 128, -5, 1_760_000_000, 1_760_000_000_123, 1_760_000_000_000_000,
		math.MaxInt32, math.MinInt32, math.MaxInt32 + 1, math.MaxInt64, math.MinInt64}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func randomStrs(rng *rand.Rand, max int) []string {
	if rng.IntN(3) == 0 {
		return nil
	}
	out := make([]string, 1+rng.IntN(max))
	for i := range out {
		out[i] = pick(rng, pickStrings[2:]) // the Encoder writes what it is given
	}
	return out
}

func randomFloat(rng *rand.Rand) *float64 {
	if rng.IntN(2) == 0 {
		return nil
	}
	f := pick(rng, []float64{0, 1.5, -2, 142.25, math.MaxFloat64, math.NaN(), math.Inf(1)})
	return &f
}

// randomEvent fills every field of an Event of a kind, each populated or not, within
// what the embedded schema of that kind can carry.
func randomEvent(rng *rand.Rand, kind Kind) Event {
	s := func() string {
		if rng.IntN(3) == 0 {
			return ""
		}
		return pick(rng, pickStrings)
	}
	one := func() []string {
		if rng.IntN(2) == 0 {
			return nil
		}
		return []string{pick(rng, pickStrings[2:])}
	}
	ev := Event{Kind: kind, EventID: s(), EventName: s(), EventTime: pick(rng, pickLongs), PixelID: s(),
		ActionSource: s(), OptOut: rng.IntN(2) == 0, CustomerSegmentation: s()}
	if rng.IntN(4) != 0 {
		ev.EventID, ev.EventName, ev.PixelID = "id-"+s(), "n"+s(), "px"
		ev.EventTime = pick(rng, []int64{1_760_000_000, 1_760_000_000_456, 42})
	}
	u := &ev.User
	u.Emails, u.Phones = randomStrs(rng, 3), randomStrs(rng, 3)
	u.FirstNames, u.LastNames, u.DatesOfBirth, u.Genders = one(), one(), one(), one()
	u.Cities, u.States, u.Zips, u.Countries, u.ExternalIDs = one(), one(), one(), one(), one()
	u.ClientIPAddress, u.ClientUserAgent, u.FBC, u.FBP, u.LeadID = s(), s(), s(), s(), s()
	u.SubscriptionID, u.FBLoginID, u.AnonID, u.MADID, u.PageID = s(), s(), s(), s(), s()
	u.PageScopedUserID, u.CTWAClid, u.IGAccountID, u.IGSID, u.WhatsAppBusinessAccountID = s(), s(), s(), s(), s()
	if rng.IntN(3) != 0 {
		c := &ev.Custom
		c.Value, c.PredictedLTV, c.NetRevenue = randomFloat(rng), randomFloat(rng), randomFloat(rng)
		c.Currency, c.OrderID, c.ItemNumber, c.ContentType, c.ContentName = s(), s(), s(), s(), s()
		c.ContentCategory, c.SearchString, c.Status, c.DeliveryCategory = s(), s(), s(), s()
		c.ContentIDs = randomStrs(rng, 4)
		c.NumItems = pick(rng, pickLongs)
		for range rng.IntN(4) {
			c.Contents = append(c.Contents, Content{ID: s(), Quantity: pick(rng, pickLongs), ItemPrice: randomFloat(rng),
				Title: s(), Description: s(), Brand: s(), Category: s(), DeliveryCategory: s()})
		}
		if rng.IntN(2) == 0 {
			c.Store = &StoreData{StorePageID: s(), BrandPageID: s(), StoreCode: s()}
		}
	}
	if rng.IntN(2) == 0 {
		ev.Consent = Consent{Known: true, AdsAllowed: rng.IntN(2) == 0, LimitedDataUse: rng.IntN(2) == 0,
			LDUCountry: int32(rng.IntN(3)), LDUState: int32(rng.IntN(2000))}
	}
	if rng.IntN(2) == 0 {
		ev.OriginalEvent = &OriginalEventData{EventName: s(), EventTime: pick(rng, pickLongs), OrderID: s(), EventID: s()}
	}
	b := func() *bool {
		if rng.IntN(3) == 0 {
			return nil
		}
		v := rng.IntN(2) == 0
		return &v
	}
	if kind == KindWeb {
		ev.EventSourceURL, ev.ReferrerURL = s(), s()
		if rng.IntN(2) == 0 {
			ev.App = &AppData{AdvertiserTrackingEnabled: b(), ApplicationTrackingEnabled: b(),
				CampaignIDs: s(), InstallReferrer: s(), InstallerPackage: s(), WindowsAttributionID: s(), VendorID: s(),
				URLSchemes: randomStrs(rng, 2)}
			for range rng.IntN(17) {
				ev.App.ExtInfo = append(ev.App.ExtInfo, s())
			}
		}
	} else {
		ev.CRMName, ev.MessagingChannel = s(), s()
	}
	return ev
}

// TestFastMatchesGoavroOnEncodedEvents: random Events of both kinds through the Encoder,
// intact and corrupted.
func TestFastMatchesGoavroOnEncodedEvents(t *testing.T) {
	enc := mustEncoder(t)
	p := newPair(t, []string{SchemaWebEvent, SchemaOfflineEvent})
	rng := rand.New(rand.NewPCG(11, 12))
	ok := 0
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		kind, topic := KindWeb, topicName(0)
		if i%2 == 1 {
			kind, topic = KindOffline, topicName(1)
		}
		b, err := enc.AppendRaw(nil, randomEvent(rng, kind))
		if err != nil {
			t.Fatal(err)
		}
		if p.check(t, topic, b) {
			ok++
		}
		for range 3 {
			p.check(t, topic, mutate(rng, b))
		}
	}
	if ok < n/3 {
		t.Errorf("only %d of %d random events decoded; the test checks too few successes", ok, n)
	}
}

// genBody writes a random body for a schema node. Field names bias the values toward
// ones toEvent accepts, so that successes are tested as much as failures.
func genBody(rng *rand.Rand, dst []byte, n *fnode, field string, depth int) []byte {
	long := func(v int64) []byte { return binary.AppendVarint(dst, v) }
	switch n.nat {
	case nUnion:
		i := rng.IntN(len(n.branches))
		if len(n.branches) > 2 && rng.IntN(2) == 0 {
			i = rng.IntN(2) // the later branches of the test schemas are mostly type errors
		}
		if depth > 6 { // end recursion through nullable branches
			for j, b := range n.branches {
				if b.nat == nNull {
					i = j
				}
			}
		}
		dst = binary.AppendVarint(dst, int64(i))
		return genBody(rng, dst, n.branches[i], field, depth+1)
	case nRecord:
		for _, f := range n.fields {
			dst = genBody(rng, dst, f.typ, f.name, depth+1)
		}
		return dst
	case nArray, nMap:
		cnt := rng.IntN(4)
		if depth > 6 {
			cnt = 0
		}
		if cnt > 0 {
			if rng.IntN(4) == 0 { // a negative count carries the block's size
				var block []byte
				for j := range cnt {
					if n.nat == nMap {
						block = binary.AppendVarint(block, 2)
						block = append(block, byte('a'+j))
					}
					block = genBody(rng, block, n.items, "", depth+1)
				}
				dst = binary.AppendVarint(dst, int64(-cnt))
				dst = binary.AppendVarint(dst, int64(len(block)))
				dst = append(dst, block...)
			} else {
				dst = binary.AppendVarint(dst, int64(cnt))
				for j := range cnt {
					if n.nat == nMap {
						key := byte('a' + j)
						if rng.IntN(20) == 0 {
							key = 'a' // sometimes a duplicate key
						}
						dst = append(binary.AppendVarint(dst, 2), key)
					}
					dst = genBody(rng, dst, n.items, field, depth+1)
				}
			}
		}
		return binary.AppendVarint(dst, 0)
	}
	switch n.wire {
	case nNull:
		return dst
	case nBool:
		if rng.IntN(50) == 0 {
			return append(dst, 2)
		}
		return append(dst, byte(rng.IntN(2)))
	case nInt, nLong:
		switch {
		case field == "event_time" && n.logical == lTimestampMicros:
			return long(pick(rng, []int64{1_760_000_000_000_000, 0, -1}))
		case field == "event_time" && n.logical == lTimestampMillis:
			return long(pick(rng, []int64{1_760_000_000_000, 1_760_000_000_000_000, 0, -1}))
		case field == "event_time" && n.logical == lDate:
			return long(pick(rng, []int64{20_000, 0, -3}))
		case field == "event_time" && rng.IntN(4) != 0:
			return long(pick(rng, []int64{1_760_000_000, 1_760_000_000_000}))
		}
		return long(pick(rng, pickLongs))
	case nFloat:
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(pick(rng, []float32{0, 1.25, -3, float32(math.Inf(1))})))
	case nDouble:
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(pick(rng, []float64{0, 2.5, -7, math.NaN()})))
	case nEnum:
		return long(int64(rng.IntN(len(n.symbols))))
	case nFixed:
		for range n.size {
			dst = append(dst, pick(rng, []byte{0, 'a', 0x80, 0xff, 7}))
		}
		return dst
	case nBytes, nString:
		var s string
		switch field {
		case "event_id", "event_name", "pixel_id":
			s = pick(rng, pickStrings[2:])
		default:
			s = pick(rng, pickStrings)
		}
		if n.logical == lDecimal {
			s = string(pick(rng, [][]byte{{}, {0x01}, {0xff, 0x38}, {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}))
		}
		return append(binary.AppendVarint(dst, int64(len(s))), s...)
	}
	panic("unknown node")
}

// TestFastMatchesGoavroOnWriterSchemas: random bodies of writer schemas that exercise
// unknown fields of every type, nested and recursive records, unions in every branch
// order, enums, fixed, maps and logical types, intact and corrupted; plus the schemas
// that fall back.
func TestFastMatchesGoavroOnWriterSchemas(t *testing.T) {
	schemas := append(fastSchemas(t), schemaFallback...)
	p := newPair(t, schemas)
	rng := rand.New(rand.NewPCG(3, 4))
	n := 5000
	if testing.Short() {
		n = 500
	}
	for i, text := range schemas {
		root, err := parseFast(text)
		if errors.Is(err, errUnsupported) {
			continue // schemas the parser rejects get no random bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		ok := 0
		for range n {
			b := genBody(rng, nil, root, "", 0)
			if p.check(t, topicName(i), b) {
				ok++
			}
			p.check(t, topicName(i), mutate(rng, b))
		}
		t.Logf("schema %d: %d of %d random bodies decoded", i, ok, n)
		if ok == 0 && i < len(fastSchemas(t)) {
			t.Errorf("schema %d: no random body decoded; the test checks no successes", i)
		}
	}
}

// FuzzDecodeFastVsGoavro: whatever the body, the fast path and goavro agree.
func FuzzDecodeFastVsGoavro(f *testing.F) {
	schemas := fastSchemas(f)
	enc := mustEncoder(f)
	for _, ev := range []Event{sampleWeb(), sampleOffline()} {
		b, err := enc.AppendRaw(nil, ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(ev.Kind-1), b)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i, text := range schemas {
		root, err := parseFast(text)
		if err != nil {
			f.Fatal(err)
		}
		for range 3 {
			f.Add(uint8(i), genBody(rng, nil, root, "", 0))
		}
	}
	p := newPair(f, schemas)
	f.Fuzz(func(t *testing.T, schema uint8, v []byte) {
		p.check(t, topicName(int(schema)%len(schemas)), v)
	})
}

// TestManyBlocksOfNulls: blocks of zero-byte items cost a few bytes each, so the budget
// for them is per body. Before, a 300 KB body meant 6·10⁹ items for the guard to walk and
// goavro to allocate.
func TestManyBlocksOfNulls(t *testing.T) {
	withNulls := `{"type":"record","name":"WebEvent","fields":[
 {"name":"event_id","type":"string"},{"name":"xs","type":{"type":"array","items":"null"}}]}`
	p := newPair(t, []string{withNulls})
	body := []byte{2, 'a'}
	for range 100_000 {
		body = binary.AppendVarint(body, maxEmptyItems)
	}
	body = append(body, 0)
	start := time.Now()
	p.check(t, topicName(0), body)
	if _, err := p.fast.Decode(context.Background(), topicName(0), body); ReasonOf(err) != ReasonAvro {
		t.Errorf("want ReasonAvro, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// Decode copies what it keeps, so a caller may reuse the value (a pooled fetch buffer);
// DecodeOwned shares it, which is why the caller must hand the value over.
func TestDecodeCopiesUnlessOwned(t *testing.T) {
	enc := mustEncoder(t)
	body, err := enc.AppendRaw(nil, sampleWeb())
	if err != nil {
		t.Fatal(err)
	}
	dec := mustDecoder(t, map[string]TopicConfig{"web": {Mode: ModeRaw, Schema: SchemaWebEvent, Kind: KindWeb}})
	for _, owned := range []bool{false, true} {
		v := bytes.Clone(body)
		decode := dec.Decode
		if owned {
			decode = dec.DecodeOwned
		}
		ev, err := decode(context.Background(), "web", v)
		if err != nil {
			t.Fatal(err)
		}
		id := strings.Clone(ev.EventID)
		for i := range v {
			v[i] = 'x'
		}
		if changed := ev.EventID != id; changed != owned {
			t.Errorf("owned %v: event_id changed with the value: %v", owned, changed)
		}
	}
}

// TestDecodeOwnedIntoOverwritesEverything: decoding into an Event that holds another
// event's every field gives what DecodeOwned gives, on the fast path and on goavro's. The
// destination is filled by hand: filled by a decoder that leaves fields alone, it would
// hide exactly that.
func TestDecodeOwnedIntoOverwritesEverything(t *testing.T) {
	enc := mustEncoder(t)
	web, err := enc.AppendRaw(nil, sampleWeb())
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string]TopicConfig{"web": {Mode: ModeRaw, Schema: SchemaWebEvent, Kind: KindWeb}}
	for _, goavroOnly := range []bool{false, true} {
		dec := mustDecoder(t, topics)
		dec.opts.goavroOnly = goavroOnly
		ctx := context.Background()
		// Every field set, whatever the decoders do, so that a field they leave alone shows.
		dst := sampleOffline()
		dst.App = &AppData{VendorID: "v"}
		dst.OriginalEvent = &OriginalEventData{EventName: "Lead"}
		dst.MessagingChannel = "whatsapp"
		if err := dec.DecodeOwnedInto(ctx, "web", bytes.Clone(web), &dst); err != nil {
			t.Fatal(err)
		}
		want, err := dec.DecodeOwned(ctx, "web", bytes.Clone(web))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(dst, want) {
			t.Errorf("goavro only %v: into a used Event\n got %+v\nwant %+v", goavroOnly, dst, want)
		}
	}
}
