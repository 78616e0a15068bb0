package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/schema"
)

var buildNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func f64(v float64) *float64 { return &v }

func webPurchase() schema.Event {
	return schema.Event{
		Kind:           schema.KindWeb,
		EventID:        "order-123",
		EventName:      "Purchase",
		EventTime:      buildNow.Unix() - 60,
		PixelID:        "1234567890",
		ActionSource:   "website",
		EventSourceURL: "https://shop.example.com/checkout/thanks",
		User: schema.UserData{
			Emails:          []string{"John_Smith@gmail.com", " john_smith@GMAIL.com", "not-an-email"},
			Phones:          []string{"+1 (650) 555-1212"},
			FirstNames:      []string{"Mary"},
			LastNames:       []string{"Smith"},
			DatesOfBirth:    []string{"2/16/1997"},
			Genders:         []string{"female"},
			Cities:          []string{"New York"},
			States:          []string{"California"},
			Zips:            []string{"94035-1234"},
			Countries:       []string{"United States"},
			ExternalIDs:     []string{"user-42"},
			ClientIPAddress: "2001:db8::1",
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
			FBC:             "fb.1.1554763741205.AbCdEf",
			FBP:             "fb.1.1558571054389.1098115397",
		},
		Custom: schema.CustomData{
			Value:       f64(123.45),
			Currency:    "usd",
			OrderID:     "order-123",
			ContentType: "product",
			Contents:    []schema.Content{{ID: "product123", Quantity: 1, ItemPrice: f64(123.45)}},
		},
		Consent: schema.Consent{Known: true, AdsAllowed: true},
	}
}

const webPurchaseGolden = `{
  "event_name": "Purchase",
  "event_time": 1772366340,
  "event_id": "order-123",
  "action_source": "website",
  "event_source_url": "https://shop.example.com/checkout/thanks",
  "user_data": {
    "em": ["62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"],
    "ph": ["e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"],
    "fn": ["6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"],
    "ln": ["6627835f988e2c5e50533d491163072d3f4f41f5c8b04630150debb3722ca2dd"],
    "db": ["01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"],
    "ge": ["252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"],
    "ct": ["350c754ba4d38897693aa077ef43072a859d23f613443133fecbbd90a3512ca5"],
    "st": ["6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"],
    "zp": ["1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e"],
    "country": ["79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"],
    "external_id": ["6d894aa3ee802549d7f340e7c1cf0d1c1cb14cd84f768d92ffaa6785337c4997"],
    "client_ip_address": "2001:db8::1",
    "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "fbc": "fb.1.1554763741205.AbCdEf",
    "fbp": "fb.1.1558571054389.1098115397"
  },
  "custom_data": {
    "value": 123.45,
    "currency": "USD",
    "order_id": "order-123",
    "content_type": "product",
    "contents": [{"id": "product123", "quantity": 1, "item_price": 123.45}]
  }
}`

func offlineApproval() schema.Event {
	return schema.Event{
		Kind:         schema.KindOffline,
		EventID:      "crm-approval-9",
		EventName:    "Approval",
		EventTime:    buildNow.Unix() - 3600,
		PixelID:      "1234567890",
		ActionSource: "System_Generated",
		User: schema.UserData{
			Emails:    []string{"309A0A5C3E211326AE75CA18196D301A9BDBD1A882A4D2569511033DA23F0ABD"}, // already hashed, uppercase
			Phones:    []string{digestPhone + ".AQYCAQAA"},                                          // param builder form
			Countries: []string{digestUS},                                                           // already hashed US
			Zips:      []string{"940351234"},
			LeadID:    " 1234567890123456 ",
		},
		Consent: schema.Consent{Known: true, AdsAllowed: true, LimitedDataUse: true, LDUCountry: 1, LDUState: 1000},
		CRMName: "Salesforce",
	}
}

const offlineApprovalGolden = `{
  "event_name": "Approval",
  "event_time": 1772362800,
  "event_id": "crm-approval-9",
  "action_source": "system_generated",
  "user_data": {
    "em": ["309a0a5c3e211326ae75ca18196d301a9bdbd1a882a4d2569511033da23f0abd"],
    "ph": ["e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176.AQYCAQAA"],
    "zp": ["1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e"],
    "country": ["79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"],
    "lead_id": 1234567890123456
  },
  "custom_data": {"event_source": "crm", "lead_event_source": "Salesforce"},
  "data_processing_options": ["LDU"],
  "data_processing_options_country": 1,
  "data_processing_options_state": 1000
}`

func assertJSON(t *testing.T, got any, want string) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(want)); err != nil {
		t.Fatalf("golden is not JSON: %v", err)
	}
	if !bytes.Equal(b, compact.Bytes()) {
		t.Fatalf("JSON mismatch\n got: %s\nwant: %s", b, compact.Bytes())
	}
}

func TestBuildGoldenWebPurchase(t *testing.T) {
	ev, drops := Build(webPurchase(), BuildOptions{Now: buildNow})
	assertJSON(t, ev, webPurchaseGolden)
	want := []Dropped{{Field: "em", Reason: DropInvalidEmail}}
	if !reflect.DeepEqual(drops, want) {
		t.Fatalf("drops = %+v, want %+v", drops, want)
	}
	if err := Validate(&ev, buildNow, ValidateOptions{}); err != nil {
		t.Fatalf("golden event does not validate: %v", err)
	}
}

func TestBuildGoldenOfflineApprovalCRM(t *testing.T) {
	ev, drops := Build(offlineApproval(), BuildOptions{Now: buildNow, Hasher: NewHasher()})
	assertJSON(t, ev, offlineApprovalGolden)
	if drops != nil {
		t.Fatalf("drops = %+v, want none", drops)
	}
	if err := Validate(&ev, buildNow, ValidateOptions{}); err != nil {
		t.Fatalf("golden event does not validate: %v", err)
	}
}

func TestBuildDrops(t *testing.T) {
	src := schema.Event{
		EventName: "Lead", EventTime: buildNow.Unix(), ActionSource: "website",
		User: schema.UserData{
			Emails:          []string{"", "   "}, // absent, not dropped
			Phones:          []string{"12"},
			Genders:         []string{"x"},
			Countries:       []string{"Atlantis"},
			ClientIPAddress: "999.1.1.1",
			LeadID:          "abc",
		},
		Custom: schema.CustomData{
			Value:    f64(math.NaN()),
			Currency: "dollars",
			Contents: []schema.Content{{ID: "a", ItemPrice: f64(math.Inf(1))}},
		},
	}
	ev, drops := Build(src, BuildOptions{Now: buildNow})
	want := []Dropped{
		{"country", DropUnknownCountry},
		{"ph", DropInvalidPhone},
		{"ge", DropUnknownGender},
		{"client_ip_address", DropInvalidIP},
		{"lead_id", DropInvalidLeadID},
		{"value", DropInvalidNumber},
		{"currency", DropInvalidCurrency},
		{"contents.item_price", DropInvalidNumber},
	}
	if !reflect.DeepEqual(drops, want) {
		t.Fatalf("drops =\n%+v\nwant\n%+v", drops, want)
	}
	if ev.User.Em != nil || ev.User.Ph != nil || ev.User.ClientIPAddress != "" || ev.User.LeadID != "" {
		t.Fatalf("dropped values still present: %+v", ev.User)
	}
	if _, err := json.Marshal(ev); err != nil {
		t.Fatalf("event with dropped NaN must still encode: %v", err)
	}
}

func TestBuildCustomDataNilWhenEmpty(t *testing.T) {
	src := schema.Event{EventName: "PageView", EventTime: buildNow.Unix(), ActionSource: "website"}
	ev, _ := Build(src, BuildOptions{Now: buildNow})
	if ev.Custom != nil {
		t.Fatalf("custom_data = %+v, want nil", ev.Custom)
	}
	// All of it dropped is empty too.
	src.Custom.Currency = "nope"
	if ev, _ = Build(src, BuildOptions{Now: buildNow}); ev.Custom != nil {
		t.Fatalf("custom_data = %+v, want nil after dropping", ev.Custom)
	}
}

func TestBuildNoLDU(t *testing.T) {
	src := webPurchase()
	src.Consent = schema.Consent{Known: true, AdsAllowed: true, LDUCountry: 1, LDUState: 1000}
	ev, _ := Build(src, BuildOptions{Now: buildNow})
	b, _ := json.Marshal(ev)
	if bytes.Contains(b, []byte("data_processing_options")) {
		t.Fatalf("LDU fields sent without LDU: %s", b)
	}
	src.Consent.LimitedDataUse = true
	src.Consent.LDUCountry, src.Consent.LDUState = 0, 0
	ev, _ = Build(src, BuildOptions{Now: buildNow})
	b, _ = json.Marshal(ev)
	if !bytes.Contains(b, []byte(`"data_processing_options":["LDU"],"data_processing_options_country":0,"data_processing_options_state":0`)) {
		t.Fatalf("geolocated LDU not encoded as Meta's example: %s", b)
	}
}

func TestBuildZipRuleFollowsCountry(t *testing.T) {
	base := schema.UserData{Zips: []string{"940351234"}}
	tests := []struct {
		countries []string
		want      string
	}{
		{[]string{"US"}, HashString("94035")},
		{[]string{"Canada"}, HashString("940351234")},
		{nil, HashString("940351234")},
		{[]string{"us", "ca"}, HashString("940351234")}, // ambiguous: no US cut
	}
	for _, tt := range tests {
		u := base
		u.Countries = tt.countries
		ev, _ := Build(schema.Event{User: u}, BuildOptions{Now: buildNow})
		if len(ev.User.Zp) != 1 || ev.User.Zp[0] != tt.want {
			t.Errorf("countries %v: zp = %v, want %s", tt.countries, ev.User.Zp, tt.want)
		}
	}
}

func TestBuildDedupesAndCapsSlices(t *testing.T) {
	src := schema.Event{User: schema.UserData{
		Emails:    []string{"a@example.com", "A@EXAMPLE.COM", HashString("a@example.com"), "b@example.com"},
		Phones:    []string{"+1 650 555 1212"},
		Countries: []string{"us", "USA", "United States"},
	}}
	ev, _ := Build(src, BuildOptions{Now: buildNow})
	if want := []string{HashString("a@example.com"), HashString("b@example.com")}; !reflect.DeepEqual(ev.User.Em, want) {
		t.Fatalf("em = %v, want %v", ev.User.Em, want)
	}
	if len(ev.User.Country) != 1 {
		t.Fatalf("country = %v, want one value", ev.User.Country)
	}
	// Appending to one field must not clobber the next one sharing the backing array.
	em := append(ev.User.Em, "x")
	_ = em
	if ev.User.Ph[0] != digestPhone {
		t.Fatalf("append to em overwrote ph: %v", ev.User.Ph)
	}
}

func TestBuildHasherReuseIsIsolated(t *testing.T) {
	h := NewHasher()
	first, _ := Build(webPurchase(), BuildOptions{Now: buildNow, Hasher: h})
	snapshot, _ := json.Marshal(first)
	other := webPurchase()
	other.User.Emails = []string{"someone@else.org"}
	other.User.FirstNames = []string{"Jane"}
	Build(other, BuildOptions{Now: buildNow, Hasher: h})
	again, _ := json.Marshal(first)
	if !bytes.Equal(snapshot, again) {
		t.Fatalf("reusing the Hasher changed an earlier event:\n%s\n%s", snapshot, again)
	}
}

func TestBuildNeverHashesUnhashedParams(t *testing.T) {
	ev, _ := Build(webPurchase(), BuildOptions{Now: buildNow})
	u := ev.User
	src := webPurchase().User
	if u.ClientIPAddress != src.ClientIPAddress || u.ClientUserAgent != src.ClientUserAgent ||
		u.FBC != src.FBC || u.FBP != src.FBP {
		t.Fatalf("never-hash params changed: %+v", u)
	}
}

func TestDroppedNeverCarriesValue(t *testing.T) {
	const email, phone = "leaky.person@example.com@", "+1 555 0"
	_, drops := Build(schema.Event{User: schema.UserData{Emails: []string{email}, Phones: []string{phone}}}, BuildOptions{})
	for _, d := range drops {
		s := d.Field + d.Reason
		if strings.Contains(s, "leaky") || strings.Contains(s, "555") {
			t.Fatalf("Dropped carries the value: %+v", d)
		}
	}
	if len(drops) != 2 {
		t.Fatalf("drops = %+v, want 2", drops)
	}
}

func BenchmarkBuildFullUserData(b *testing.B) {
	src := webPurchase()
	opts := BuildOptions{Now: buildNow, Hasher: NewHasher()}
	src.User.Emails = src.User.Emails[:1]
	b.ReportAllocs()
	for b.Loop() {
		ev, _ := Build(src, opts)
		if len(ev.User.Em) != 1 {
			b.Fatal("no email")
		}
	}
}

func BenchmarkEncodeRequest500(b *testing.B) {
	ev, _ := Build(webPurchase(), BuildOptions{Now: buildNow})
	req := Request{Data: make([]*Event, 500), PartnerAgent: "capirelay"}
	for i := range req.Data {
		req.Data[i] = &ev
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := json.Marshal(&req)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

// TestBuildIntoOverwritesEverything: BuildInto gives Build's result even into an Event
// that holds another event's every field, as a reused destination would.
func TestBuildIntoOverwritesEverything(t *testing.T) {
	full := webPurchase()
	full.Consent.LimitedDataUse = true
	full.MessagingChannel = "whatsapp"
	full.CRMName = "crm"
	full.OriginalEvent = &schema.OriginalEventData{EventName: "Lead", EventTime: buildNow.Unix() - 120}
	full.App = &schema.AppData{VendorID: "v"}
	var dirty Event
	BuildInto(&dirty, &full, BuildOptions{Now: buildNow, SegmentationTopLevel: true})
	// Set by hand too, so a field BuildInto never writes still shows.
	dirty.ReferrerURL, dirty.OptOut, dirty.User.FBC, dirty.User.AnonID = "https://r.example", true, "fb.1.2.3", "anon"
	for name, src := range map[string]schema.Event{"web": webPurchase(), "offline": offlineApproval(), "empty": {}} {
		want, wantDrops := Build(src, BuildOptions{Now: buildNow})
		got := dirty
		drops := BuildInto(&got, &src, BuildOptions{Now: buildNow})
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(drops, wantDrops) {
			t.Errorf("%s: BuildInto over a used Event\n got %+v\nwant %+v", name, got, want)
		}
	}
}

// TestBuildIntoCustomDataIsPerEvent: custom_data lives in room each Event keeps, so events
// built one after the other into different Events keep their own values, and rebuilding
// one Event leaves the other as it was.
func TestBuildIntoCustomDataIsPerEvent(t *testing.T) {
	srcs := make([]schema.Event, 3)
	evs := make([]Event, 3)
	for i := range srcs {
		srcs[i] = webPurchase()
		srcs[i].Custom.Value = f64(float64(100 * (i + 1)))
		srcs[i].Custom.OrderID = fmt.Sprintf("order-%d", i)
		BuildInto(&evs[i], &srcs[i], BuildOptions{Now: buildNow})
	}
	other := webPurchase()
	other.Custom.Value, other.Custom.OrderID = f64(7), "other"
	BuildInto(&evs[2], &other, BuildOptions{Now: buildNow})
	for i, want := range []float64{100, 200, 7} {
		c := evs[i].Custom
		if c == nil || c.Value == nil || *c.Value != want {
			t.Fatalf("event %d: custom_data %+v, want value %v", i, c, want)
		}
		if wantID := []string{"order-0", "order-1", "other"}[i]; c.OrderID != wantID {
			t.Fatalf("event %d: order_id %q, want %q", i, c.OrderID, wantID)
		}
	}
}
