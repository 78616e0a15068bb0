package sink

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// wireRequest is the reference appendRequest must match byte for byte: the body GraphClient
// used to encode with encoding/json.
type wireRequest struct {
	*Request
	AccessToken    string `json:"access_token"`
	AppSecretProof string `json:"appsecret_proof,omitempty"`
}

// referenceBody encodes as GraphClient.Send did before appendRequest.
func referenceBody(req *Request, token, proof string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(wireRequest{Request: req, AccessToken: token, AppSecretProof: proof})
	return buf.Bytes(), err
}

// checkSameAsReference fails t unless appendRequest and encoding/json agree: same bytes, or
// the same error message.
func checkSameAsReference(t *testing.T, req *Request, token, proof string) {
	t.Helper()
	want, wantErr := referenceBody(req, token, proof)
	got, gotErr := appendRequest([]byte("prefix"), req, token, proof)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("error mismatch: encoding/json %v, appendRequest %v\nrequest %#v", wantErr, gotErr, req)
	}
	if wantErr != nil {
		if wantErr.Error() != gotErr.Error() {
			t.Fatalf("error text: encoding/json %q, appendRequest %q", wantErr, gotErr)
		}
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("appendRequest overwrote dst: %q", got[:min(len(got), 10)])
	}
	if got = got[len("prefix"):]; !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("bodies differ at byte %d:\nencoding/json %q\nappendRequest %q", i,
			want[max(0, i-40):min(len(want), i+40)], got[max(0, i-40):min(len(got), i+40)])
	}
}

// Interesting values the generator picks from, besides raw bytes.
var (
	genStrings = []string{
		"", "a", `"`, `\`, `a"b\c`, "\x00", "\x01\x1f", "\b\f\n\r\t", "\x7f", "<>&", "é", "日本語",
		"\u2028", "\u2029", "x\u2028y\u2029z", "\xff", "\xc3", "\xed\xa0\x80", "a\xffb", "🎉",
		"\ufffd", "https://shop.example/p?a=1&b=<2>", strings.Repeat("x", 300),
		"7b17fb0bd173f625b58636fb796407c22b3d16fc78302d79f0fd30c2fc2fc068",
	}
	genFloats = []float64{
		0, math.Copysign(0, -1), 1, -1, 123.45, 1e21, 1e20, 999999999999999999999, 1e-6, 1e-7,
		1.5e-7, 5e-324, math.MaxFloat64, -math.MaxFloat64, 1 << 53, 1<<53 + 1, 0.1, 1e100, -2.5e-10,
		math.NaN(), math.Inf(1), math.Inf(-1),
	}
	genNumbers = []json.Number{
		"", "0", "1", "-1", "123456789012345", "12345678901234567", "1.5", "-0.0e+10", "1E5",
		"01", "1.", ".5", "+1", "abc", "1e", "-", "0x10", "1e+", "1 ",
	}
)

// eventGen builds requests from a byte string, so random tests and the fuzzer share one
// generator and every mutation of the input reaches some field. An exhausted input reads
// as zeros: absent fields.
type eventGen struct{ data []byte }

func (g *eventGen) byte() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

func (g *eventGen) bool() bool { return g.byte()&1 == 1 }

func (g *eventGen) int64() int64 {
	var b [8]byte
	n := int(g.byte() % 9) // short inputs give small numbers, which omitempty cares about
	for i := range n {
		b[i] = g.byte()
	}
	v := int64(binary.LittleEndian.Uint64(b[:]))
	if g.bool() {
		v = -v
	}
	return v
}

func (g *eventGen) string() string {
	k := g.byte()
	if k&0x80 != 0 {
		return genStrings[int(k&0x7f)%len(genStrings)]
	}
	n := min(int(k), len(g.data))
	s := string(g.data[:n])
	g.data = g.data[n:]
	return s
}

func (g *eventGen) strings() []string {
	switch k := g.byte() % 4; k {
	case 0:
		return nil
	case 1:
		return []string{}
	default:
		out := make([]string, k-1)
		for i := range out {
			out[i] = g.string()
		}
		return out
	}
}

func (g *eventGen) float() *float64 {
	k := g.byte()
	if k == 0 {
		return nil
	}
	var f float64
	if k&0x80 != 0 {
		f = genFloats[int(k&0x7f)%len(genFloats)]
	} else {
		var b [8]byte
		for i := range b {
			b[i] = g.byte()
		}
		f = math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
	}
	return &f
}

func (g *eventGen) number() json.Number {
	k := g.byte()
	if k&0x80 != 0 {
		return genNumbers[int(k&0x7f)%len(genNumbers)]
	}
	if k&1 == 0 {
		return ""
	}
	return json.Number(g.string())
}

func (g *eventGen) boolPtr() *bool {
	switch g.byte() % 3 {
	case 1:
		return new(false)
	case 2:
		return new(true)
	}
	return nil
}

func (g *eventGen) int32Ptr() *int32 {
	if !g.bool() {
		return nil
	}
	return new(int32(g.int64()))
}

func (g *eventGen) event() Event {
	ev := Event{
		EventName: g.string(), EventTime: g.int64(), EventID: g.string(), ActionSource: g.string(),
		EventSourceURL: g.string(), ReferrerURL: g.string(), OptOut: g.bool(),
		MessagingChannel: g.string(), CustomerSegmentation: g.string(),
		User: UserData{
			Em: g.strings(), Ph: g.strings(), Fn: g.strings(), Ln: g.strings(), Db: g.strings(),
			Ge: g.strings(), Ct: g.strings(), St: g.strings(), Zp: g.strings(),
			Country: g.strings(), ExternalID: g.strings(),
			ClientIPAddress: g.string(), ClientUserAgent: g.string(), FBC: g.string(),
			FBP: g.string(), SubscriptionID: g.string(), FBLoginID: g.number(), LeadID: g.number(),
			AnonID: g.string(), MADID: g.string(), PageID: g.string(), PageScopedUserID: g.string(),
			CTWAClid: g.string(), IGAccountID: g.string(), IGSID: g.string(),
			WhatsAppBusinessAccountID: g.string(),
		},
		DataProcessingOptions:        g.strings(),
		DataProcessingOptionsCountry: g.int32Ptr(),
		DataProcessingOptionsState:   g.int32Ptr(),
	}
	if g.bool() {
		c := &CustomData{
			Value: g.float(), Currency: g.string(), OrderID: g.string(), ItemNumber: g.string(),
			ContentIDs: g.strings(), ContentType: g.string(),
			ContentName: g.string(), ContentCategory: g.string(), PredictedLTV: g.float(),
			NetRevenue: g.float(), NumItems: g.int64(), SearchString: g.string(), Status: g.string(),
			DeliveryCategory: g.string(), CustomerSegmentation: g.string(),
			EventSource: g.string(), LeadEventSource: g.string(),
		}
		switch g.byte() % 3 {
		case 1:
			c.Contents = []Content{}
		case 2:
			for range 1 + g.byte()%3 {
				c.Contents = append(c.Contents, Content{
					ID: g.string(), Quantity: g.int64(), ItemPrice: g.float(), Title: g.string(),
					Description: g.string(), Brand: g.string(), Category: g.string(),
					DeliveryCategory: g.string(),
				})
			}
		}
		if g.bool() {
			c.StoreData = &StoreData{StorePageID: g.string(), BrandPageID: g.string(), StoreCode: g.string()}
		}
		ev.Custom = c
	}
	if g.bool() {
		ev.App = &AppData{
			AdvertiserTrackingEnabled: g.boolPtr(), ApplicationTrackingEnabled: g.boolPtr(),
			ExtInfo: g.strings(), CampaignIDs: g.string(), InstallReferrer: g.string(),
			InstallerPackage: g.string(), URLSchemes: g.strings(),
			WindowsAttributionID: g.string(), VendorID: g.string(),
		}
	}
	if g.bool() {
		ev.OriginalEventData = &OriginalEventData{
			EventName: g.string(), EventTime: g.int64(), OrderID: g.string(), EventID: g.string(),
		}
	}
	return ev
}

// request builds a whole request, nil Request and nil Data included.
func (g *eventGen) request() (req *Request, token, proof string) {
	token, proof = g.string(), g.string()
	switch g.byte() % 8 {
	case 0:
		return nil, token, proof
	case 1:
		return &Request{PartnerAgent: g.string()}, token, proof
	}
	req = &Request{Data: []*Event{}, PartnerAgent: g.string(), TestEventCode: g.string()}
	for range g.byte() % 4 {
		if g.byte()%8 == 0 {
			req.Data = append(req.Data, nil) // encoding/json writes null
			continue
		}
		ev := g.event()
		req.Data = append(req.Data, &ev)
	}
	return req, token, proof
}

func TestAppendRequestMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Inputs of all-zero and all-0xff bytes give the empty event and one with every field
	// and every optional struct set.
	inputs := [][]byte{nil, bytes.Repeat([]byte{0xff}, 4096), bytes.Repeat([]byte{0x81}, 4096)}
	for range 20000 {
		b := make([]byte, rng.IntN(3000))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		inputs = append(inputs, b)
	}
	var errs, full int
	for _, in := range inputs {
		g := &eventGen{data: in}
		req, token, proof := g.request()
		checkSameAsReference(t, req, token, proof)
		if _, err := referenceBody(req, token, proof); err != nil {
			errs++
		} else if req != nil && len(req.Data) > 0 {
			full++
		}
	}
	// The generator must exercise both outcomes, or the test proves little.
	if errs < 100 || full < 1000 {
		t.Fatalf("weak coverage: %d error cases, %d encodable non-empty requests", errs, full)
	}
}

// TestAppendRequestAllFields pins every field populated at once, by name, so that a field
// added to Event but not to the encoder fails here even if the generator misses it.
func TestAppendRequestAllFields(t *testing.T) {
	f := 12.5
	one := int32(1)
	all := Event{
		EventName: "Purchase", EventTime: 1700000000, EventID: "e", ActionSource: "website",
		EventSourceURL: "https://a/?b=1&c=<d>", ReferrerURL: "r", OptOut: true,
		MessagingChannel: "whatsapp", CustomerSegmentation: "new_customer_to_business",
		User: UserData{
			Em: []string{"a"}, Ph: []string{"b"}, Fn: []string{"c"}, Ln: []string{"d"},
			Db: []string{"e"}, Ge: []string{"f"}, Ct: []string{"g"}, St: []string{"h"},
			Zp: []string{"i"}, Country: []string{"j"}, ExternalID: []string{"k", "l"},
			ClientIPAddress: "1.2.3.4", ClientUserAgent: "ua", FBC: "fbc", FBP: "fbp",
			SubscriptionID: "s", FBLoginID: "123", LeadID: "123456789012345", AnonID: "an",
			MADID: "m", PageID: "p", PageScopedUserID: "psid", CTWAClid: "ct", IGAccountID: "ig",
			IGSID: "igsid", WhatsAppBusinessAccountID: "waba",
		},
		Custom: &CustomData{
			Value: &f, Currency: "usd", OrderID: "o", ItemNumber: "in", ContentIDs: []string{"x"},
			ContentType: "product", Contents: []Content{{ID: "1", Quantity: 2, ItemPrice: &f,
				Title: "t", Description: "d", Brand: "b", Category: "c", DeliveryCategory: "home_delivery"}, {}},
			ContentName: "cn", ContentCategory: "cc", PredictedLTV: &f, NetRevenue: &f, NumItems: 3,
			SearchString: "ss", Status: "st", DeliveryCategory: "curbside", CustomerSegmentation: "cs",
			StoreData:   &StoreData{StorePageID: "1", BrandPageID: "2", StoreCode: "3"},
			EventSource: "crm", LeadEventSource: "hubspot",
		},
		App: &AppData{
			AdvertiserTrackingEnabled: new(false), ApplicationTrackingEnabled: new(true),
			ExtInfo: []string{"a2", "", "x"}, CampaignIDs: "c", InstallReferrer: "ir",
			InstallerPackage: "ip", URLSchemes: []string{"u"}, WindowsAttributionID: "w", VendorID: "v",
		},
		OriginalEventData:            &OriginalEventData{EventName: "Lead", EventTime: 1, OrderID: "o", EventID: "e"},
		DataProcessingOptions:        []string{"LDU"},
		DataProcessingOptionsCountry: &one,
		DataProcessingOptionsState:   &one,
	}
	req := &Request{Data: []*Event{&all, nil, {}, {Custom: &CustomData{}, App: &AppData{}, OriginalEventData: &OriginalEventData{}}}, PartnerAgent: "pa", TestEventCode: "TEST1"}
	checkSameAsReference(t, req, "tok", "proof")
	checkSameAsReference(t, req, "tok", "")
	body, _ := appendRequest(nil, req, "tok", "proof")
	// Every json tag of the wire types must appear in the body.
	for _, v := range []any{Event{}, UserData{}, CustomData{}, Content{}, StoreData{}, AppData{}, OriginalEventData{}, Request{}} {
		for _, name := range jsonNames(v) {
			if !bytes.Contains(body, []byte(`"`+name+`":`)) {
				t.Errorf("%T.%s missing from the all-fields body", v, name)
			}
		}
	}
}

// jsonNames lists the json names of v's fields, via encoding/json itself.
func jsonNames(v any) []string {
	var names []string
	b, _ := json.Marshal(v)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	for k := range m {
		names = append(names, k)
	}
	// omitempty fields are absent from a zero value's JSON; read them from the tags instead.
	return append(names, omitemptyNames(v)...)
}

// omitemptyNames reads the json names from the struct tags.
func omitemptyNames(v any) []string {
	var out []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("json")
		if name, _, _ := strings.Cut(tag, ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func TestAppendRequestEncodeErrors(t *testing.T) {
	nan := math.NaN()
	for _, req := range []*Request{
		{Data: []*Event{{Custom: &CustomData{Value: &nan}}}},
		{Data: []*Event{{}, {Custom: &CustomData{Contents: []Content{{ItemPrice: new(math.Inf(-1))}}}}}},
		{Data: []*Event{{User: UserData{LeadID: "12a"}}}},
		{Data: []*Event{{User: UserData{FBLoginID: "1.", LeadID: "x"}}}},
	} {
		checkSameAsReference(t, req, "secret-token", "secret-proof")
		_, err := appendRequest(nil, req, "secret-token", "secret-proof")
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Fatalf("err = %v", err)
		}
	}
}

// TestGraphClientSendsReferenceBody checks the body on the wire, end to end through Send.
func TestGraphClientSendsReferenceBody(t *testing.T) {
	var got []byte
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got, _ = io.ReadAll(r.Body)
		r.Body.Close()
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"events_received":1}`))}, nil
	})}
	c := NewGraphClient(WithHTTPClient(hc), WithTokenSource(func(string) (string, bool) { return "tok&<", true }),
		WithAppSecret("s"))
	ev, _ := Build(webPurchase(), BuildOptions{Now: buildNow})
	ev.EventSourceURL = "https://shop.example/p?a=1&b=<2>\u2028\x00\xff"
	req := &Request{Data: []*Event{&ev, {}}, PartnerAgent: "capirelay"}
	for range 3 { // pooled buffers are reused
		got = nil
		if _, err := c.Send(context.Background(), "42", req); err != nil {
			t.Fatal(err)
		}
		want, err := referenceBody(req, "tok&<", AppSecretProof([]byte("s"), "tok&<"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("body on the wire differs from encoding/json's:\n%s\n%s", got, want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzAppendRequest holds appendRequest to encoding/json's output on generated requests.
//
//	go test -run='^$' -fuzz='^FuzzAppendRequest$' -fuzztime=30s ./sink
func FuzzAppendRequest(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 512))
	f.Add(bytes.Repeat([]byte{0x81}, 512))
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &eventGen{data: data}
		req, token, proof := g.request()
		checkSameAsReference(t, req, token, proof)
	})
}

func BenchmarkAppendRequest500(b *testing.B) {
	ev, _ := Build(webPurchase(), BuildOptions{Now: buildNow})
	req := Request{Data: make([]*Event, 500), PartnerAgent: "capirelay"}
	for i := range req.Data {
		req.Data[i] = &ev
	}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		var err error
		buf, err = appendRequest(buf[:0], &req, "token", "proof")
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// TestPlain8 checks the 8-byte fast path against the byte-by-byte rule: every byte value at
// every position, and random mixes of the values around each boundary.
func TestPlain8(t *testing.T) {
	naive := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if b := s[i]; b < 0x20 || b == '"' || b == '\\' || b >= 0x80 {
				return false
			}
		}
		return true
	}
	for p := range 8 {
		for b := range 256 {
			for _, fill := range []byte{'a', 0x20, 0x7f, '!', '#', 0x5b, 0x5d, 0x21} {
				s := []byte(strings.Repeat(string(rune(fill)), 8))
				s[p] = byte(b)
				if got, want := plain8(string(s)), naive(string(s)); got != want {
					t.Fatalf("plain8(%q) = %v, want %v", s, got, want)
				}
			}
		}
	}
	edge := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xff, 'a'}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		var s [8]byte
		for i := range s {
			s[i] = edge[rng.IntN(len(edge))]
		}
		if got, want := plain8(string(s[:])), naive(string(s[:])); got != want {
			t.Fatalf("plain8(%q) = %v, want %v", s, got, want)
		}
	}
}
