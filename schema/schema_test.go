package schema

import (
	"context"
	"errors"
	"math/big"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// piiEmail is used in test records so tests can assert it never reaches an error string.
const piiEmail = "alice.pii@example.com"

func ptr(f float64) *float64 { return &f }

func sampleWeb() Event {
	return Event{
		Kind:           KindWeb,
		EventID:        "evt-web-1",
		EventName:      "Purchase",
		EventTime:      1_760_000_000,
		PixelID:        "123456789012345",
		ActionSource:   "website",
		EventSourceURL: "https://shop.example.com/checkout/done",
		ReferrerURL:    "https://shop.example.com/cart",
		OptOut:         true,
		User: UserData{
			Emails:          []string{piiEmail, "alice@work.example"},
			Phones:          []string{"+33 6 12 34 56 78"},
			FirstNames:      []string{"Alice"},
			Countries:       []string{"fr"},
			ExternalIDs:     []string{"cust-42"},
			ClientIPAddress: "203.0.113.7",
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
			FBC:             "fb.1.1554763741205.AbCdEf",
			FBP:             "fb.1.1558571054389.1098115397",
			SubscriptionID:  "sub-1",
			FBLoginID:       "100200300",
			MADID:           "38400000-8cf0-11bd-b23e-10b96e40000d",
		},
		Custom: CustomData{
			Value:       ptr(142.5),
			Currency:    "EUR",
			OrderID:     "order-9",
			ContentIDs:  []string{"sku-1", "sku-2"},
			ContentType: "product",
			Contents: []Content{
				{ID: "sku-1", Quantity: 2, ItemPrice: ptr(50), Title: "Mug", Brand: "Acme", DeliveryCategory: "home_delivery"},
				{ID: "sku-2", Quantity: 1},
			},
			ItemNumber:       "1",
			ContentName:      "Checkout",
			ContentCategory:  "kitchen",
			PredictedLTV:     ptr(900),
			NetRevenue:       ptr(40.25),
			NumItems:         3,
			SearchString:     "mug",
			Status:           "done",
			DeliveryCategory: "home_delivery",
		},
		Consent:              Consent{Known: true, AdsAllowed: true, LimitedDataUse: true, LDUCountry: 1, LDUState: 1000},
		CustomerSegmentation: "new_customer_to_business",
		OriginalEvent:        &OriginalEventData{EventName: "AddToCart", EventTime: 1_759_999_000, EventID: "evt-web-0"},
		App: &AppData{
			AdvertiserTrackingEnabled: ptrBool(true),
			ExtInfo:                   []string{"i2", "com.shop", "", "", "17.0", "", "", "", "", "", "", "", "", "", "", ""},
			URLSchemes:                []string{"shop"},
			VendorID:                  "vendor-1",
		},
	}
}

func ptrBool(b bool) *bool { return &b }

func sampleOffline() Event {
	return Event{
		Kind:         KindOffline,
		EventID:      "crm-act-77",
		EventName:    "Approval",
		EventTime:    1_760_000_100,
		PixelID:      "123456789012345",
		ActionSource: "system_generated",
		User: UserData{
			Emails:       []string{piiEmail, "alice@work.example"},
			Phones:       []string{"+14155550100"},
			FirstNames:   []string{"Alice"},
			LastNames:    []string{"Martin"},
			DatesOfBirth: []string{"19900101"},
			Genders:      []string{"f"},
			Cities:       []string{"Lyon"},
			States:       []string{"ara"},
			Zips:         []string{"69001"},
			Countries:    []string{"fr"},
			ExternalIDs:  []string{"sf-003"},
			LeadID:       "1234567890123456",
			FBC:          "fb.1.1554763741205.AbCdEf",

			PageID:                    "1000001",
			PageScopedUserID:          "2000002",
			CTWAClid:                  "ctwa-1",
			WhatsAppBusinessAccountID: "3000003",
			IGAccountID:               "4000004",
			IGSID:                     "5000005",
			AnonID:                    "anon-1",
			SubscriptionID:            "sub-9",
		},
		Custom: CustomData{
			Value:      ptr(0),
			Currency:   "EUR",
			OrderID:    "app-5",
			ItemNumber: "card-gold",
			Contents:   []Content{{ID: "card-gold", Quantity: 1, ItemPrice: ptr(0), Category: "cards"}},
			ContentIDs: []string{"card-gold"},
			Store:      &StoreData{StoreCode: "branch-12", StorePageID: "6000006"},
		},
		Consent:              Consent{Known: true, AdsAllowed: true},
		CRMName:              "Salesforce",
		OptOut:               true,
		MessagingChannel:     "whatsapp",
		CustomerSegmentation: "existing_customer_to_business",
		OriginalEvent:        &OriginalEventData{EventName: "Lead", EventTime: 1_759_000_000, OrderID: "app-5"},
	}
}

type registry struct {
	*srfake.Registry
	client *sr.Client
	gets   atomic.Int64 // GET /schemas/ids/{id} requests seen
}

func newRegistry(t testing.TB) *registry {
	t.Helper()
	r := &registry{Registry: srfake.New()}
	t.Cleanup(r.Close)
	r.Intercept(func(_ http.ResponseWriter, req *http.Request) bool {
		if strings.HasPrefix(req.URL.Path, "/schemas/ids/") {
			r.gets.Add(1)
		}
		return false
	})
	cl, err := sr.NewClient(sr.URLs(r.URL()))
	if err != nil {
		t.Fatal(err)
	}
	r.client = cl
	return r
}

func (r *registry) seed(subject string, id int, text string) {
	r.SeedSchema(subject, id, id, sr.Schema{Schema: text, Type: sr.TypeAvro})
}

func mustEncoder(t testing.TB) *Encoder {
	t.Helper()
	enc, err := NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func mustDecoder(t testing.TB, topics map[string]TopicConfig, opts ...Option) *Decoder {
	t.Helper()
	d, err := NewDecoder(topics, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// encodeWith encodes a native record with an arbitrary schema, for evolution tests.
func encodeWith(t testing.TB, text string, native map[string]any) []byte {
	t.Helper()
	c, err := goavro.NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.BinaryFromNative(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	reg := newRegistry(t)
	reg.seed("capi.web-value", 1, webEventAvsc)
	reg.seed("capi.offline-value", 2, offlineEventAvsc)
	enc := mustEncoder(t)
	dec := mustDecoder(t, map[string]TopicConfig{
		"raw.web":      {Mode: ModeRaw, Schema: SchemaWebEvent},
		"raw.offline":  {Mode: ModeRaw, Schema: SchemaOfflineEvent},
		"wire.any":     {Mode: ModeWire},
		"auto.web":     {Schema: SchemaWebEvent},
		"auto.offline": {Schema: SchemaOfflineEvent},
	}, WithRegistry(reg.client))

	sparse := Event{Kind: KindWeb, EventID: "e", EventName: "PageView", EventTime: 1, PixelID: "p"}
	sparseWant := sparse
	sparseWant.ActionSource = "website"

	for _, tc := range []struct {
		name  string
		topic string
		id    int // 0: raw
		in    Event
		want  Event
	}{
		{"web raw", "raw.web", 0, sampleWeb(), sampleWeb()},
		{"offline raw", "raw.offline", 0, sampleOffline(), sampleOffline()},
		{"web wire", "wire.any", 1, sampleWeb(), sampleWeb()},
		{"offline wire", "wire.any", 2, sampleOffline(), sampleOffline()},
		{"web auto raw", "auto.web", 0, sampleWeb(), sampleWeb()},
		{"web auto wire", "auto.web", 1, sampleWeb(), sampleWeb()},
		{"offline auto wire", "auto.offline", 2, sampleOffline(), sampleOffline()},
		{"sparse web raw", "raw.web", 0, sparse, sparseWant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b []byte
			var err error
			if tc.id == 0 {
				b, err = enc.AppendRaw(nil, tc.in)
			} else {
				b, err = enc.AppendWire(nil, tc.id, tc.in)
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := dec.Decode(context.Background(), tc.topic, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("round trip mismatch\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// webV2 is WebEvent as a publisher evolved it: it gained loyalty_tier and dropped the
// optional referrer_url and phone, and it lives in the publisher's own namespace.
const webV2 = `{"type":"record","name":"WebEvent","namespace":"com.shop.tracking","fields":[
 {"name":"event_id","type":"string"},
 {"name":"event_name","type":"string"},
 {"name":"event_time","type":"long"},
 {"name":"pixel_id","type":"string"},
 {"name":"loyalty_tier","type":["null","string"],"default":null},
 {"name":"event_source_url","type":"string"},
 {"name":"action_source","type":["null","string"],"default":null},
 {"name":"client_ip_address","type":"string"},
 {"name":"client_user_agent","type":"string"},
 {"name":"fbp","type":"string"},
 {"name":"fbc","type":"string"},
 {"name":"external_id","type":["null","string"],"default":null},
 {"name":"email","type":["null","string"],"default":null},
 {"name":"custom_data","type":["null",{"type":"record","name":"CD","fields":[
   {"name":"value","type":["null","double"],"default":null},
   {"name":"currency","type":["null","string"],"default":null}]}],"default":null}
]}`

func webV2Native() map[string]any {
	return map[string]any{
		"event_id": "evt-2", "event_name": "AddToCart", "event_time": int64(1_760_000_000_123),
		"pixel_id": "px", "loyalty_tier": goavro.Union("string", "gold"),
		"event_source_url": "https://shop.example.com/p/1", "action_source": nil,
		"client_ip_address": "198.51.100.1", "client_user_agent": "UA", "fbp": "fb.1.2.3", "fbc": "",
		"external_id": nil, "email": goavro.Union("string", piiEmail),
		"custom_data": goavro.Union("com.shop.tracking.CD", map[string]any{
			"value": goavro.Union("double", 9.99), "currency": goavro.Union("string", "USD"),
		}),
	}
}

func webV2Want() Event {
	return Event{
		Kind: KindWeb, EventID: "evt-2", EventName: "AddToCart", EventTime: 1_760_000_000,
		PixelID: "px", ActionSource: "website", EventSourceURL: "https://shop.example.com/p/1",
		User:   UserData{Emails: []string{piiEmail}, ClientIPAddress: "198.51.100.1", ClientUserAgent: "UA", FBP: "fb.1.2.3"},
		Custom: CustomData{Value: ptr(9.99), Currency: "USD"},
	}
}

// checkout is a web event under a publisher's own record name; only Kind says what it is.
const checkout = `{"type":"record","name":"CheckoutCompleted","fields":[
 {"name":"event_id","type":"string"},
 {"name":"event_name","type":"string"},
 {"name":"event_time","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"pixel_id","type":"string"},
 {"name":"email","type":{"type":"array","items":"string"},"default":[]},
 {"name":"custom_data","type":{"type":"record","name":"Money","fields":[
   {"name":"value","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
   {"name":"currency","type":"string"}]}}
]}`

func TestEvolution(t *testing.T) {
	reg := newRegistry(t)
	reg.seed("capi.web-value", 7, webV2)
	reg.seed("checkout-value", 8, checkout)

	v2 := encodeWith(t, webV2, webV2Native())
	co := encodeWith(t, checkout, map[string]any{
		"event_id": "c-1", "event_name": "Purchase", "event_time": time.UnixMilli(1_760_000_000_999),
		"pixel_id": "px", "email": []any{piiEmail, ""},
		"custom_data": map[string]any{"value": mustRat(t, "12.34"), "currency": "EUR"},
	})
	coWant := Event{
		Kind: KindWeb, EventID: "c-1", EventName: "Purchase", EventTime: 1_760_000_000, PixelID: "px",
		ActionSource: "website", User: UserData{Emails: []string{piiEmail}},
		Custom: CustomData{Value: ptr(12.34), Currency: "EUR"},
	}

	dec := mustDecoder(t, map[string]TopicConfig{
		"wire":         {Mode: ModeWire, Kind: KindWeb},
		"raw.v2":       {Mode: ModeRaw, Schema: webV2},
		"raw.checkout": {Mode: ModeRaw, Schema: checkout, Kind: KindWeb},
	}, WithRegistry(reg.client))

	for _, tc := range []struct {
		name, topic string
		value       []byte
		want        Event
	}{
		{"registry writer with added and dropped optional fields", "wire", append(AppendWireHeader(nil, 7), v2...), webV2Want()},
		{"configured raw writer schema", "raw.v2", v2, webV2Want()},
		{"foreign record name, logical types, email array", "raw.checkout", co, coWant},
		{"foreign record name via registry and topic kind", "wire", append(AppendWireHeader(nil, 8), co...), coWant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dec.Decode(context.Background(), tc.topic, tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("mismatch\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func mustRat(t *testing.T, s string) any {
	t.Helper()
	c, err := goavro.NewCodec(`{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}`)
	if err != nil {
		t.Fatal(err)
	}
	// Round-trip through the codec so the value has exactly the Go type goavro expects.
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad rational %q", s)
	}
	b, err := c.BinaryFromNative(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := c.NativeFromBinary(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEventTimeAndActionSource(t *testing.T) {
	enc := mustEncoder(t)
	dec := mustDecoder(t, DefaultTopics())
	for _, tc := range []struct {
		name       string
		topic      string
		ev         Event
		wantTime   int64
		wantSource string
	}{
		{"web seconds, default source", DefaultWebTopic, Event{Kind: KindWeb, EventTime: 1_760_000_000}, 1_760_000_000, "website"},
		{"web millis", DefaultWebTopic, Event{Kind: KindWeb, EventTime: 1_760_000_000_456}, 1_760_000_000, "website"},
		{"web explicit source kept", DefaultWebTopic, Event{Kind: KindWeb, EventTime: 5, ActionSource: "app"}, 5, "app"},
		{"offline millis, source as written", DefaultOfflineTopic, Event{Kind: KindOffline, EventTime: 1_700_000_000_000, ActionSource: "physical_store"}, 1_700_000_000, "physical_store"},
		{"offline empty source not defaulted", DefaultOfflineTopic, Event{Kind: KindOffline, EventTime: 9}, 9, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.EventID, tc.ev.EventName, tc.ev.PixelID = "id", "Lead", "px"
			b, err := enc.AppendRaw(nil, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dec.Decode(context.Background(), tc.topic, b)
			if err != nil {
				t.Fatal(err)
			}
			if got.EventTime != tc.wantTime || got.ActionSource != tc.wantSource {
				t.Errorf("got time %d source %q, want %d %q", got.EventTime, got.ActionSource, tc.wantTime, tc.wantSource)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	reg := newRegistry(t)
	reg.seed("capi.web-value", 1, webEventAvsc)
	reg.seed("noevt-value", 3, strings.Replace(webV2, `{"name":"pixel_id","type":"string"},`, "", 1))
	reg.SeedSchema("proto-value", 4, 4, sr.Schema{Schema: `syntax = "proto3"; message M {}`, Type: sr.TypeProtobuf})
	reg.seed("badtype-value", 5, strings.Replace(webV2, `{"name":"event_time","type":"long"}`, `{"name":"event_time","type":"string"}`, 1))
	reg.Intercept(func(w http.ResponseWriter, req *http.Request) bool {
		switch req.URL.Path {
		case "/schemas/ids/500":
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		case "/schemas/ids/404":
			http.Error(w, "no such route", http.StatusNotFound) // a proxy, not the registry
			return true
		}
		return false
	})

	down := newRegistry(t)
	down.Close()

	enc := mustEncoder(t)
	topics := map[string]TopicConfig{
		"raw":  {Mode: ModeRaw, Schema: SchemaWebEvent},
		"wire": {Mode: ModeWire, Kind: KindWeb},
	}
	dec := mustDecoder(t, topics, WithRegistry(reg.client))
	decDown := mustDecoder(t, topics, WithRegistry(down.client))

	good := sampleWeb()
	rawGood, err := enc.AppendRaw(nil, good)
	if err != nil {
		t.Fatal(err)
	}
	wire := func(id int, body []byte) []byte { return append(AppendWireHeader(nil, id), body...) }
	withEvent := func(f func(*Event)) []byte {
		ev := sampleWeb()
		f(&ev)
		b, err := enc.AppendRaw(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	randomBytes := make([]byte, 64)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range randomBytes {
		randomBytes[i] = byte(rng.UintN(256))
	}
	badContents := encodeWith(t, `{"type":"record","name":"WebEvent","fields":[
 {"name":"event_id","type":"string"},{"name":"event_name","type":"string"},
 {"name":"event_time","type":"long"},{"name":"pixel_id","type":"string"},
 {"name":"email","type":"string"},
 {"name":"custom_data","type":{"type":"record","name":"CD","fields":[
  {"name":"contents","type":{"type":"array","items":{"type":"record","name":"I","fields":[
   {"name":"id","type":"string"},{"name":"quantity","type":["long","string"]}]}}}]}}]}`,
		map[string]any{"event_id": "e", "event_name": "n", "event_time": int64(1), "pixel_id": "p", "email": piiEmail,
			"custom_data": map[string]any{"contents": []any{
				map[string]any{"id": "a", "quantity": goavro.Union("long", int64(1))},
				map[string]any{"id": "b", "quantity": goavro.Union("string", piiEmail)},
			}}})
	reg.seed("contents-value", 6, `{"type":"record","name":"WebEvent","fields":[
 {"name":"event_id","type":"string"},{"name":"event_name","type":"string"},
 {"name":"event_time","type":"long"},{"name":"pixel_id","type":"string"},
 {"name":"email","type":"string"},
 {"name":"custom_data","type":{"type":"record","name":"CD","fields":[
  {"name":"contents","type":{"type":"array","items":{"type":"record","name":"I","fields":[
   {"name":"id","type":"string"},{"name":"quantity","type":["long","string"]}]}}}]}}]}`)

	for _, tc := range []struct {
		name      string
		dec       *Decoder
		topic     string
		value     []byte
		reason    Reason
		field     string
		id        int
		transient bool
	}{
		{"unknown topic", dec, "nope", rawGood, ReasonUnknownTopic, "", 0, false},
		{"random bytes", dec, "raw", randomBytes, ReasonAvro, "", 0, false},
		{"truncated body", dec, "raw", rawGood[:len(rawGood)-3], ReasonAvro, "", 0, false},
		{"trailing bytes", dec, "raw", append(append([]byte(nil), rawGood...), 2, 4), ReasonAvro, "", 0, false},
		{"empty value", dec, "raw", nil, ReasonAvro, "", 0, false},
		{"bad magic byte", dec, "wire", append([]byte{1, 0, 0, 0, 1}, rawGood...), ReasonBadHeader, "", 0, false},
		{"short header", dec, "wire", []byte{0, 0, 1}, ReasonBadHeader, "", 0, false},
		{"unknown schema id", dec, "wire", wire(99, rawGood), ReasonUnknownSchemaID, "", 99, false},
		{"registry 5xx", dec, "wire", wire(500, rawGood), ReasonRegistryUnavailable, "", 500, true},
		{"bare 404 from a proxy", dec, "wire", wire(404, rawGood), ReasonRegistryUnavailable, "", 404, true},
		{"registry down", decDown, "wire", wire(1, rawGood), ReasonRegistryUnavailable, "", 1, true},
		{"non-Avro schema", dec, "wire", wire(4, rawGood), ReasonBadSchema, "", 4, false},
		{"wire body truncated", dec, "wire", wire(1, rawGood[:10]), ReasonAvro, "", 1, false},
		{"empty event_id", dec, "raw", withEvent(func(e *Event) { e.EventID = "" }), ReasonMissingField, "event_id", 0, false},
		{"empty event_name", dec, "wire", wire(1, withEvent(func(e *Event) { e.EventName = "" })), ReasonMissingField, "event_name", 1, false},
		{"zero event_time", dec, "raw", withEvent(func(e *Event) { e.EventTime = 0 }), ReasonMissingField, "event_time", 0, false},
		{"negative event_time", dec, "raw", withEvent(func(e *Event) { e.EventTime = -5 }), ReasonInvalidField, "event_time", 0, false},
		{"microsecond event_time", dec, "raw", withEvent(func(e *Event) { e.EventTime = 1_760_000_000_000_000 }), ReasonInvalidField, "event_time", 0, false},
		{"pixel_id absent from writer schema", dec, "wire", wire(3, encodeWith(t, strings.Replace(webV2, `{"name":"pixel_id","type":"string"},`, "", 1), withoutKey(webV2Native(), "pixel_id"))), ReasonMissingField, "pixel_id", 3, false},
		{"event_time of wrong type", dec, "wire", wire(5, encodeWith(t, strings.Replace(webV2, `{"name":"event_time","type":"long"}`, `{"name":"event_time","type":"string"}`, 1), withKey(webV2Native(), "event_time", piiEmail))), ReasonInvalidField, "event_time", 5, false},
		{"nested field of wrong type", dec, "wire", wire(6, badContents), ReasonInvalidField, "custom_data.contents[1].quantity", 6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := tc.dec.Decode(context.Background(), tc.topic, tc.value)
			if err == nil {
				t.Fatalf("no error; decoded %+v", ev)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError: %v", err, err)
			}
			if de.Reason != tc.reason || de.Field != tc.field || de.SchemaID != tc.id || de.Topic != tc.topic {
				t.Errorf("got reason %s field %q id %d topic %q, want %s %q %d %q (%v)",
					de.Reason, de.Field, de.SchemaID, de.Topic, tc.reason, tc.field, tc.id, tc.topic, err)
			}
			if IsTransient(err) != tc.transient {
				t.Errorf("IsTransient = %v, want %v (%v)", IsTransient(err), tc.transient, err)
			}
			if ReasonOf(err) != tc.reason {
				t.Errorf("ReasonOf = %s", ReasonOf(err))
			}
			msg := err.Error()
			if strings.Contains(msg, piiEmail) || strings.Contains(msg, "alice") {
				t.Errorf("error string leaks personal data: %s", msg)
			}
			if tc.field != "" && !strings.Contains(msg, tc.field) {
				t.Errorf("error %q does not name field %q", msg, tc.field)
			}
			if !strings.Contains(msg, tc.topic) {
				t.Errorf("error %q does not name the topic", msg)
			}
			if !reflect.DeepEqual(ev, Event{}) {
				t.Errorf("failed decode returned a non-zero event")
			}
			t.Log(msg)
		})
	}
}

func withoutKey(m map[string]any, k string) map[string]any { delete(m, k); return m }
func withKey(m map[string]any, k string, v any) map[string]any {
	m[k] = v
	return m
}

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("x"), false},
		{&DecodeError{Reason: ReasonAvro}, false},
		{&DecodeError{Reason: ReasonUnknownSchemaID}, false},
		{&DecodeError{Reason: ReasonRegistryUnavailable}, true},
		{errWrap{&DecodeError{Reason: ReasonRegistryUnavailable}}, true},
	} {
		if got := IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	inner := errors.New("inner")
	if !errors.Is(&DecodeError{Reason: ReasonAvro, Err: inner}, inner) {
		t.Error("DecodeError does not unwrap to its cause")
	}
}

type errWrap struct{ error }

func (e errWrap) Unwrap() error { return e.error }

func TestSchemaCache(t *testing.T) {
	enc := mustEncoder(t)
	body, err := enc.AppendRaw(nil, sampleWeb())
	if err != nil {
		t.Fatal(err)
	}
	wire := func(id int) []byte { return append(AppendWireHeader(nil, id), body...) }
	ctx := context.Background()
	topics := map[string]TopicConfig{"t": {Mode: ModeWire}}

	t.Run("concurrent decodes of a new id fetch once", func(t *testing.T) {
		reg := newRegistry(t)
		reg.seed("s", 11, webEventAvsc)
		// Hold the lookup so that every goroutine arrives while it is in flight.
		release := make(chan struct{})
		reg.Intercept(func(http.ResponseWriter, *http.Request) bool { <-release; return false })
		dec := mustDecoder(t, topics, WithRegistry(reg.client))

		const n = 64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		var started sync.WaitGroup
		started.Add(n)
		for range n {
			wg.Go(func() {
				started.Done()
				_, err := dec.Decode(ctx, "t", wire(11))
				errs <- err
			})
		}
		started.Wait()
		time.Sleep(20 * time.Millisecond) // let the goroutines reach the wait
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for range 10 {
			if _, err := dec.Decode(ctx, "t", wire(11)); err != nil {
				t.Fatal(err)
			}
		}
		if got := reg.gets.Load(); got != 1 {
			t.Errorf("registry asked %d times, want 1", got)
		}
	})

	t.Run("transient failure is not cached", func(t *testing.T) {
		reg := newRegistry(t)
		reg.seed("s", 12, webEventAvsc)
		var fail atomic.Bool
		fail.Store(true)
		reg.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
			if fail.Load() {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return true
			}
			return false
		})
		dec := mustDecoder(t, topics, WithRegistry(reg.client))
		if _, err := dec.Decode(ctx, "t", wire(12)); !IsTransient(err) {
			t.Fatalf("want transient error, got %v", err)
		}
		fail.Store(false)
		if _, err := dec.Decode(ctx, "t", wire(12)); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})

	t.Run("not found is remembered for the TTL only", func(t *testing.T) {
		reg := newRegistry(t)
		dec := mustDecoder(t, topics, WithRegistry(reg.client), WithNotFoundTTL(150*time.Millisecond))
		for range 5 {
			if _, err := dec.Decode(ctx, "t", wire(13)); ReasonOf(err) != ReasonUnknownSchemaID {
				t.Fatalf("want unknown schema id, got %v", err)
			}
		}
		if got := reg.gets.Load(); got != 1 {
			t.Errorf("registry asked %d times within the TTL, want 1", got)
		}
		reg.seed("s", 13, webEventAvsc) // registered late
		time.Sleep(200 * time.Millisecond)
		if _, err := dec.Decode(ctx, "t", wire(13)); err != nil {
			t.Fatalf("after TTL: %v", err)
		}
	})

	t.Run("caller context ends the wait, not the lookup", func(t *testing.T) {
		reg := newRegistry(t)
		reg.seed("s", 14, webEventAvsc)
		release := make(chan struct{})
		reg.Intercept(func(http.ResponseWriter, *http.Request) bool { <-release; return false })
		dec := mustDecoder(t, topics, WithRegistry(reg.client))
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, err := dec.Decode(cctx, "t", wire(14))
		if !IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want transient deadline error, got %v", err)
		}
		close(release)
		if _, err := dec.Decode(ctx, "t", wire(14)); err != nil {
			t.Fatal(err)
		}
		if got := reg.gets.Load(); got != 1 {
			t.Errorf("registry asked %d times, want 1 (the abandoned lookup should be reused)", got)
		}
	})
}

func TestNewDecoderConfig(t *testing.T) {
	reg := newRegistry(t)
	for _, tc := range []struct {
		name   string
		topics map[string]TopicConfig
		opts   []Option
		ok     bool
	}{
		{"defaults", DefaultTopics(), nil, true},
		{"wire without registry", map[string]TopicConfig{"t": {Mode: ModeWire}}, nil, false},
		{"wire with schema", map[string]TopicConfig{"t": {Mode: ModeWire, Schema: SchemaWebEvent}}, []Option{WithRegistry(reg.client)}, false},
		{"raw without schema", map[string]TopicConfig{"t": {Mode: ModeRaw}}, nil, false},
		{"auto without schema", map[string]TopicConfig{"t": {}}, []Option{WithRegistry(reg.client)}, false},
		{"unknown schema name", map[string]TopicConfig{"t": {Schema: "ClickEvent"}}, nil, false},
		{"schema does not parse", map[string]TopicConfig{"t": {Schema: `{"type":"record"`}}, nil, false},
		{"schema not a record", map[string]TopicConfig{"t": {Schema: `{"type":"string"}`}}, nil, false},
		{"foreign record name without kind", map[string]TopicConfig{"t": {Schema: checkout}}, nil, false},
		{"foreign record name with kind", map[string]TopicConfig{"t": {Schema: checkout, Kind: KindWeb}}, nil, true},
		{"bad mode", map[string]TopicConfig{"t": {Mode: 9, Schema: SchemaWebEvent}}, nil, false},
		{"bad kind", map[string]TopicConfig{"t": {Schema: SchemaWebEvent, Kind: 9}}, nil, false},
		{"bad fetch timeout", DefaultTopics(), []Option{WithFetchTimeout(0)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDecoder(tc.topics, tc.opts...)
			if (err == nil) != tc.ok {
				t.Errorf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestAutoWithoutRegistryReadsRaw(t *testing.T) {
	dec := mustDecoder(t, DefaultTopics())
	enc := mustEncoder(t)
	b, err := enc.AppendWire(nil, 1, sampleWeb())
	if err != nil {
		t.Fatal(err)
	}
	// Without a registry a wire-format value is read as raw, and fails as Avro: the header
	// is a 0-length event_id followed by garbage.
	if _, err := dec.Decode(context.Background(), DefaultWebTopic, b); ReasonOf(err) == 0 || IsTransient(err) {
		t.Fatalf("want a permanent decode error, got %v", err)
	}
}

func TestMode(t *testing.T) {
	for _, s := range []string{"auto", "raw", "wire"} {
		var m Mode
		if err := m.UnmarshalText([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if b, _ := m.MarshalText(); string(b) != s {
			t.Errorf("%q round-tripped to %q", s, b)
		}
	}
	if m, err := ParseMode(""); err != nil || m != ModeAuto {
		t.Errorf("ParseMode(\"\") = %v, %v", m, err)
	}
	if _, err := ParseMode("avro"); err == nil {
		t.Error("ParseMode accepted an unknown mode")
	}
}

func TestEncoderRefusesLoss(t *testing.T) {
	enc := mustEncoder(t)
	for _, tc := range []struct {
		name string
		ev   Event
		want string
	}{
		{"web with two first names", func() Event { e := sampleWeb(); e.User.FirstNames = []string{"a", "b"}; return e }(), "User.FirstNames"},
		{"web with CRM name", func() Event { e := sampleWeb(); e.CRMName = "HubSpot"; return e }(), "CRMName"},
		{"web with messaging channel", func() Event { e := sampleWeb(); e.MessagingChannel = "whatsapp"; return e }(), "MessagingChannel"},
		{"offline with app data", func() Event { e := sampleOffline(); e.App = &AppData{VendorID: "v"}; return e }(), "App"},
		{"offline with url", func() Event { e := sampleOffline(); e.EventSourceURL = "https://x"; return e }(), "EventSourceURL"},
		{"no kind", Event{}, "kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := enc.AppendRaw(nil, tc.ev)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestEmbeddedSchemasDocumented(t *testing.T) {
	for _, name := range []string{SchemaWebEvent, SchemaOfflineEvent} {
		text, ok := EmbeddedSchema(name)
		if !ok {
			t.Fatalf("%s not embedded", name)
		}
		w, err := compile(text)
		if err != nil {
			t.Fatal(err)
		}
		if w.name != namespace+"."+name {
			t.Errorf("record name %q", w.name)
		}
	}
}

func benchDecode(b *testing.B, wire bool) {
	reg := newRegistry(b)
	reg.seed("capi.web-value", 1, webEventAvsc)
	enc := mustEncoder(b)
	mode := ModeRaw
	schemaName := SchemaWebEvent
	var v []byte
	var err error
	if wire {
		mode, schemaName = ModeWire, ""
		v, err = enc.AppendWire(nil, 1, sampleWeb())
	} else {
		v, err = enc.AppendRaw(nil, sampleWeb())
	}
	if err != nil {
		b.Fatal(err)
	}
	dec := mustDecoder(b, map[string]TopicConfig{"t": {Mode: mode, Schema: schemaName}}, WithRegistry(reg.client))
	ctx := context.Background()
	if _, err := dec.Decode(ctx, "t", v); err != nil { // warm the schema cache
		b.Fatal(err)
	}
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(ctx, "t", v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRaw(b *testing.B)  { benchDecode(b, false) }
func BenchmarkDecodeWire(b *testing.B) { benchDecode(b, true) }

func BenchmarkDecodeWireParallel(b *testing.B) {
	reg := newRegistry(b)
	reg.seed("capi.web-value", 1, webEventAvsc)
	v, err := mustEncoder(b).AppendWire(nil, 1, sampleWeb())
	if err != nil {
		b.Fatal(err)
	}
	dec := mustDecoder(b, map[string]TopicConfig{"t": {Mode: ModeWire}}, WithRegistry(reg.client))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := dec.Decode(ctx, "t", v); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
