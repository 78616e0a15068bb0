package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

func TestSplitArray(t *testing.T) {
	tests := []struct {
		in   string
		want []string // nil: an error is expected
	}{
		{`[]`, []string{}},
		{" \t\r\n[ \n] \n", []string{}},
		{`[1]`, []string{`1`}},
		{`[ 1 , "a" ,{"b":[true,false,null]} ]`, []string{`1`, `"a"`, `{"b":[true,false,null]}`}},
		{`[[],{},[[]],{"":{}}]`, []string{`[]`, `{}`, `[[]]`, `{"":{}}`}},
		{`[{ "a" : [ 1 , 2 ] , "b" : { } }]`, []string{`{ "a" : [ 1 , 2 ] , "b" : { } }`}},
		{`[-0,0,1e5,1.5E-3,-12.25e+07,0.0,1E0]`, []string{`-0`, `0`, `1e5`, `1.5E-3`, `-12.25e+07`, `0.0`, `1E0`}},
		{`["\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"]`, []string{`"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`}},
		{`["\ud800","\uDFFF\u0000"]`, []string{`"\ud800"`, `"\uDFFF\u0000"`}}, // lone surrogates
		{"[\"Valéry \xff\xfe\x7f\"]", []string{"\"Valéry \xff\xfe\x7f\""}},    // invalid UTF-8 passes
		{`["]"]`, []string{`"]"`}},
		{`[01]`, nil},
		{`[1.]`, nil},
		{`[.5]`, nil},
		{`[+1]`, nil},
		{`[-]`, nil},
		{`[1e]`, nil},
		{`[1e+]`, nil},
		{`[0x1]`, nil},
		{`[1,]`, nil},
		{`[,1]`, nil},
		{`[1 2]`, nil},
		{`[`, nil},
		{`[1`, nil},
		{`["abc]`, nil},
		{`["\x"]`, nil},
		{`["\u12G4"]`, nil},
		{`["\u12"]`, nil},
		{"[\"a\tb\"]", nil},
		{"[\"a\x00\"]", nil},
		{`[tru]`, nil},
		{`[truex]`, nil},
		{`[nul]`, nil},
		{`[True]`, nil},
		{`[{"a"}]`, nil},
		{`[{"a":}]`, nil},
		{`[{a:1}]`, nil},
		{`[{"a":1,}]`, nil},
		{`[{"a" 1}]`, nil},
		{`[1]]`, nil},
		{`[1] x`, nil},
		{`[]]`, nil},
		{`[}`, nil},
		{`[{]}`, nil},
		{"\ufeff[]", nil},
		{"[\v]", nil},
		{``, nil},
		{`   `, nil},
		{`{}`, nil},
		{`"[]"`, nil},
		{`1`, nil},
		{`true`, nil},
		{`nullx`, nil},
		{`null null`, nil},
	}
	for _, tt := range tests {
		got, err := splitArray([]byte(tt.in))
		if tt.want == nil {
			if err == nil {
				t.Errorf("splitArray(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("splitArray(%q): %v", tt.in, err)
			continue
		}
		if got == nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("splitArray(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// null is no array, but encoding/json decodes it into a nil slice without complaint.
	for _, in := range []string{`null`, " null\n"} {
		if got, err := splitArray([]byte(in)); got != nil || err != nil {
			t.Errorf("splitArray(%q) = %q, %v; want nil, nil", in, got, err)
		}
	}
}

func TestSplitObject(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string // nil: an error is expected
	}{
		{`{}`, map[string]string{}},
		{` { } `, map[string]string{}},
		{`{"data":[1, 2],"access_token":"t"}`, map[string]string{"data": `[1, 2]`, "access_token": `"t"`}},
		{`{"a":1,"b":null,"a":{"x":[]}}`, map[string]string{"a": `{"x":[]}`, "b": `null`}}, // last one wins
		{`{"a\u0062":1,"ab":2}`, map[string]string{"ab": `2`}},                             // escaped name
		{`{"\"":true,"\\":false,"":0}`, map[string]string{`"`: `true`, `\`: `false`, "": `0`}},
		{"{\"\xff\":1}", map[string]string{"\ufffd": `1`}}, // invalid UTF-8 in a name: U+FFFD
		{`{"\ud800":1}`, map[string]string{"\ufffd": `1`}},
		{`{"é":-0.5e1}`, map[string]string{"é": `-0.5e1`}},
		{`{"a":1,}`, nil},
		{`{,}`, nil},
		{`{"a":1 "b":2}`, nil},
		{`{"a",1}`, nil},
		{`{"a":}`, nil},
		{`{'a':1}`, nil},
		{`{1:1}`, nil},
		{`{"a":1`, nil},
		{`{"a":01}`, nil},
		{`{"a":[}`, nil},
		{`{"a":1}}`, nil},
		{`[]`, nil},
		{`"{}"`, nil},
		{``, nil},
	}
	for _, tt := range tests {
		got, err := splitObject([]byte(tt.in))
		if tt.want == nil {
			if err == nil {
				t.Errorf("splitObject(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("splitObject(%q): %v", tt.in, err)
			continue
		}
		if got == nil || len(got) != len(tt.want) {
			t.Errorf("splitObject(%q) = %q, want %q", tt.in, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if string(got[k]) != v {
				t.Errorf("splitObject(%q)[%q] = %q, want %q", tt.in, k, got[k], v)
			}
		}
	}
	if got, err := splitObject([]byte(" null ")); got != nil || err != nil {
		t.Errorf("splitObject(null) = %q, %v; want nil, nil", got, err)
	}
}

func TestSplitErrorMessage(t *testing.T) {
	_, err := splitArray([]byte(`[1, 2 3]`))
	if err == nil || err.Error() != `invalid JSON at offset 6: unexpected "3", want "," or "]"` {
		t.Errorf("err = %v", err)
	}
}

// skipString steps over a word at a time; every special byte must be seen wherever it
// falls in a word, next to whatever neighbours could confuse the bit tricks.
func TestSplitStringWordBoundaries(t *testing.T) {
	specials := []byte{'"', '\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff}
	for pos := range 20 {
		for _, c := range specials {
			for _, fill := range []byte{'a', 0xff, 0x01, 0x21} {
				s := bytes.Repeat([]byte{fill}, pos)
				s = append(s, c)
				s = append(s, bytes.Repeat([]byte{fill}, 20-pos)...)
				checkSplitLikeJSON(t, append(append([]byte(`["`), s...), `"]`...))
				checkSplitLikeJSON(t, append(append([]byte(`{"`), s...), `":0}`...))
			}
		}
	}
}

// encoding/json allows 10000 open arrays and objects and no more; the scanner must agree
// and must not recurse its way into a stack overflow on far deeper input.
func TestSplitNesting(t *testing.T) {
	nest := func(depth int, open, close string) []byte {
		return []byte(strings.Repeat(open, depth) + strings.Repeat(close, depth))
	}
	for _, tt := range []struct {
		in []byte
		ok bool
	}{
		{nest(maxNesting, "[", "]"), true},
		{nest(maxNesting+1, "[", "]"), false},
		{[]byte(strings.Repeat(`{"a":`, maxNesting) + "1" + strings.Repeat("}", maxNesting)), true},
		{[]byte(strings.Repeat(`{"a":`, maxNesting+1) + "1" + strings.Repeat("}", maxNesting+1)), false},
		{append([]byte(`{"a":`), append(nest(maxNesting-1, "[", "]"), '}')...), true},
		{append([]byte(`{"a":`), append(nest(maxNesting, "[", "]"), '}')...), false},
		{[]byte(strings.Repeat("[", 1_000_000)), false},
		{[]byte("[" + strings.Repeat(`{"a":`, 1_000_000)), false},
	} {
		if tt.in[0] == '[' {
			_, err := splitArray(tt.in)
			if (err == nil) != tt.ok {
				t.Errorf("splitArray(%.20q… %d bytes): err = %v, want ok %v", tt.in, len(tt.in), err, tt.ok)
			}
		} else {
			_, err := splitObject(tt.in)
			if (err == nil) != tt.ok {
				t.Errorf("splitObject(%.20q… %d bytes): err = %v, want ok %v", tt.in, len(tt.in), err, tt.ok)
			}
		}
		checkSplitLikeJSON(t, tt.in)
	}
}

// The scanner must not change a single answer of the emulator, whatever the body.
func TestJSONBodyAnswers(t *testing.T) {
	const (
		notObject  = "The request body is not a JSON object."
		notArray   = "The parameter data must be a JSON array of events."
		required   = "The parameter data is required."
		oneAtLeast = "The parameter data must contain at least one event."
	)
	deep := strings.Repeat("[", maxNesting) + strings.Repeat("]", maxNesting)
	tests := []struct {
		body    string
		subcode int
		msg     string // error_user_msg; "" to check only the subcode
	}{
		{`null`, SubcodeEmptyData, required},
		{` {} `, SubcodeEmptyData, required},
		{`{"data":null}`, SubcodeEmptyData, oneAtLeast},
		{`{"data":[]}`, SubcodeEmptyData, oneAtLeast},
		{`{"data":[{}],"data":[]}`, SubcodeEmptyData, oneAtLeast},
		{`{"d\u0061ta":[]}`, SubcodeEmptyData, oneAtLeast},
		{`{"data":{}}`, SubcodeMalformedBody, notArray},
		{`{"data":"[{}]"}`, SubcodeMalformedBody, notArray},
		{`{"data":0}`, SubcodeMalformedBody, notArray},
		{`{"data":[{}],"partner_agent":5}`, SubcodeMalformedBody, "The parameter partner_agent must be a string."},
		{`[]`, SubcodeMalformedBody, notObject},
		{`"{}"`, SubcodeMalformedBody, notObject},
		{``, SubcodeMalformedBody, notObject},
		{`{"data":[{}],}`, SubcodeMalformedBody, notObject},
		{`{"data":[01]}`, SubcodeMalformedBody, notObject},
		{`{"data":[{}]} {}`, SubcodeMalformedBody, notObject},
		{`{"data":[` + deep + `]}`, SubcodeMalformedBody, notObject},
		{`{"data":[` + deep[2:len(deep)-2] + `]}`, SubcodeNotAnEvent, ""}, // 10000 deep with body and data
		{`{"data":["\ud800"]}`, SubcodeNotAnEvent, ""},
		{"{\"data\":[{\"event_name\":\"\xff\"}]}", SubcodeInvalidTime, ""}, // past parsing
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPost, eventsPath(pixel, token), strings.NewReader(tt.body))
		req.Header.Set("Content-Type", "application/json")
		r := do(t, newServer(), req)
		e := r.err.Error
		if r.status != http.StatusBadRequest || e.Subcode != tt.subcode || tt.msg != "" && e.UserMessage != tt.msg {
			t.Errorf("body %.40q: %d %d %q, want 400 %d %q", tt.body, r.status, e.Subcode, e.UserMessage, tt.subcode, tt.msg)
		}
	}
}

// checkSplitLikeJSON fails t unless splitArray and splitObject accept exactly the inputs
// json.Unmarshal into []json.RawMessage and map[string]json.RawMessage accepts, with the
// same bytes for every element and member.
func checkSplitLikeJSON(t testing.TB, in []byte) {
	t.Helper()
	var wantArr []json.RawMessage
	wantErr := json.Unmarshal(in, &wantArr)
	arr, err := splitArray(in)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("splitArray(%q): err = %v, encoding/json: %v", in, err, wantErr)
	case err == nil && ((arr == nil) != (wantArr == nil) || len(arr) != len(wantArr)):
		t.Fatalf("splitArray(%q) = %q, encoding/json: %q", in, arr, wantArr)
	case err == nil:
		for i := range arr {
			if !bytes.Equal(arr[i], wantArr[i]) {
				t.Fatalf("splitArray(%q)[%d] = %q, encoding/json: %q", in, i, arr[i], wantArr[i])
			}
		}
	}

	var wantObj map[string]json.RawMessage
	wantErr = json.Unmarshal(in, &wantObj)
	obj, err := splitObject(in)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("splitObject(%q): err = %v, encoding/json: %v", in, err, wantErr)
	case err == nil && ((obj == nil) != (wantObj == nil) || len(obj) != len(wantObj)):
		t.Fatalf("splitObject(%q) = %q, encoding/json: %q", in, obj, wantObj)
	case err == nil:
		for k, v := range wantObj {
			if got, ok := obj[k]; !ok || !bytes.Equal(got, v) {
				t.Fatalf("splitObject(%q)[%q] = %q, encoding/json: %q", in, k, got, v)
			}
		}
	}
}

// jsonGen writes random JSON that is valid most of the time and subtly broken otherwise:
// the tokens are drawn from the corners of the grammar where a scanner goes wrong.
type jsonGen struct {
	r   *rand.Rand
	buf []byte
}

var (
	genNumbers = []string{"0", "-0", "1", "-1", "10", "0.5", "-0.0", "1e5", "1E+5", "1.5e-3",
		"123456789012345678901234567890", "1e400", "01", "1.", ".5", "+1", "-", "1e", "1e+", "--1", "0x10", "1.2.3", "Infinity", "NaN"}
	genEscapes = []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u0041`, `\u00e9`, `\uD83D\uDE00`,
		`\ud800`, `\uDFFF`, `\u0000`, `\uFFFF`, `\x`, `\u12`, `\U0041`, `\'`, `\`}
	genChars = []string{"a", "Z", " ", "é", "😀", "\xff", "\xc3", "\xed\xa0\x80", "\x7f", "\x1f", "\t", "\x00", "[", "{", ":", ","}
	genLits  = []string{"true", "false", "null", "tru", "nul", "True", "nulll", "fals"}
	genSpace = []string{"", "", "", " ", "\n", "\r\n\t ", "\v", "\u00a0"}
	genKeys  = []string{"data", "access_token", "a", "ab", `a\u0062`, "", `\u0000`, "\xff", `\ufffd`, `\ud800`, "é", `\"`}
)

func (g *jsonGen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *jsonGen) space() {
	if g.r.IntN(4) == 0 {
		g.buf = append(g.buf, g.pick(genSpace)...)
	}
}

func (g *jsonGen) str() {
	g.buf = append(g.buf, '"')
	for n := g.r.IntN(6); n > 0; n-- {
		if g.r.IntN(3) == 0 {
			g.buf = append(g.buf, g.pick(genEscapes)...)
		} else {
			g.buf = append(g.buf, g.pick(genChars)...)
		}
	}
	if g.r.IntN(50) != 0 {
		g.buf = append(g.buf, '"')
	}
}

func (g *jsonGen) value(depth int) {
	g.space()
	switch k := g.r.IntN(10); {
	case k < 2 && depth < 6:
		g.container(depth, '[', ']', false)
	case k < 4 && depth < 6:
		g.container(depth, '{', '}', true)
	case k < 6:
		g.str()
	case k < 7:
		g.buf = append(g.buf, g.pick(genNumbers)...)
	case k < 8:
		// Numbers are where the grammar is fiddliest: run the gamut of digit soups.
		for n := 1 + g.r.IntN(6); n > 0; n-- {
			g.buf = append(g.buf, "-+.eE0123456789"[g.r.IntN(15)])
		}
	default:
		g.buf = append(g.buf, g.pick(genLits)...)
	}
	g.space()
}

func (g *jsonGen) container(depth int, open, close byte, object bool) {
	g.buf = append(g.buf, open)
	for i, n := 0, g.r.IntN(5); i < n; i++ {
		if i > 0 || g.r.IntN(40) == 0 {
			g.buf = append(g.buf, ',')
		}
		if object {
			g.space()
			if g.r.IntN(40) == 0 {
				g.str()
			} else {
				g.buf = append(g.buf, '"')
				g.buf = append(g.buf, g.pick(genKeys)...)
				g.buf = append(g.buf, '"')
			}
			g.space()
			if g.r.IntN(40) != 0 {
				g.buf = append(g.buf, ':')
			}
		}
		g.value(depth + 1)
	}
	if g.r.IntN(40) == 0 {
		g.buf = append(g.buf, ',')
	}
	g.space()
	if g.r.IntN(40) != 0 {
		g.buf = append(g.buf, close)
	}
}

// mutate damages a document the way truncated, spliced or bit-flipped bodies are damaged.
func (g *jsonGen) mutate(b []byte) []byte {
	const alphabet = "[]{}\",:\\ \t\n0123456789.eE+-tfnulrsa\x00\x1f\x7f\xff"
	b = bytes.Clone(b)
	for n := 1 + g.r.IntN(3); n > 0 && len(b) > 0; n-- {
		i := g.r.IntN(len(b))
		switch g.r.IntN(5) {
		case 0:
			b = append(b[:i], b[i+1:]...)
		case 1:
			b = append(b[:i], append([]byte{alphabet[g.r.IntN(len(alphabet))]}, b[i:]...)...)
		case 2:
			b[i] = alphabet[g.r.IntN(len(alphabet))]
		case 3:
			b = b[:i]
		default:
			j := i + g.r.IntN(len(b)-i)
			b = append(b[:j], append(bytes.Clone(b[i:j]), b[j:]...)...)
		}
	}
	return b
}

// doc returns a random document, mostly an array or object as a request body would be.
func (g *jsonGen) doc() []byte {
	g.buf = g.buf[:0]
	switch g.r.IntN(8) {
	case 0:
		g.value(0)
	case 1, 2, 3:
		g.space()
		g.container(0, '[', ']', false)
		g.space()
	default:
		g.space()
		g.container(0, '{', '}', true)
		g.space()
	}
	if g.r.IntN(3) == 0 {
		return g.mutate(g.buf)
	}
	return bytes.Clone(g.buf)
}

func TestSplitMatchesEncodingJSON(t *testing.T) {
	n := 50_000
	if testing.Short() {
		n = 5_000
	}
	g := &jsonGen{r: rand.New(rand.NewPCG(1, 2))}
	valid := 0
	for range n {
		in := g.doc()
		if json.Valid(in) {
			valid++
		}
		checkSplitLikeJSON(t, in)
	}
	// A generator that only produced garbage (or only valid JSON) would prove little.
	if valid < n/10 || valid > n*9/10 {
		t.Fatalf("%d of %d generated documents are valid JSON; the mix is off", valid, n)
	}
	for _, body := range goldenBodies(t) {
		checkSplitLikeJSON(t, body)
		g := &jsonGen{r: rand.New(rand.NewPCG(uint64(len(body)), 3))}
		for range 200 {
			checkSplitLikeJSON(t, g.mutate(body))
		}
	}
}

// goldenBodies are the sink's golden request bodies, real-shaped input for the tests.
func goldenBodies(t testing.TB) [][]byte {
	paths, err := filepath.Glob(filepath.Join("..", "testdata", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden bodies in ../testdata: %v", err)
	}
	var bodies [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	return bodies
}

func FuzzSplitJSON(f *testing.F) {
	for _, body := range goldenBodies(f) {
		f.Add(body)
	}
	for _, s := range []string{`null`, `[]`, `{}`, `[1,"a",{"b":null}]`, `{"a":1,"a":2}`, `{"a\u0062":1,"ab":2}`,
		"{\"\xff\":1,\"\\ufffd\":2}", `["\ud800"]`, `[01]`, `[1.]`, `[-]`, `[1,]`, `{"a":1,}`, `[[[[]]]]`, "[\"\x1f\"]"} {
		f.Add([]byte(s))
	}
	g := &jsonGen{r: rand.New(rand.NewPCG(4, 5))}
	for range 30 {
		f.Add(g.doc())
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkSplitLikeJSON(t, in) })
}

// benchBody is a data array of n events shaped like the benchmark's web purchases, as the
// relay encodes them.
func benchBody(b *testing.B, n int) []byte {
	events := make([]*sink.Event, n)
	for i := range events {
		id := "order-" + strconv.Itoa(1_000_000+i)
		value := float64(500+(i*7919)%20000) / 100
		ev, drops := sink.Build(schema.Event{
			EventID: id, EventName: "Purchase", EventTime: testNow.Unix() - int64(i%3600),
			ActionSource: "website", EventSourceURL: "https://shop.example.com/checkout/thanks?o=" + id,
			User: schema.UserData{
				Emails:          []string{fmt.Sprintf("customer.%d@example.com", i)},
				Phones:          []string{fmt.Sprintf("+1 (650) 555-%04d", i%10000)},
				ExternalIDs:     []string{"crm-user-" + strconv.Itoa(i)},
				FirstNames:      []string{"Valéry"},
				Cities:          []string{"Palo Alto"},
				Zips:            []string{"94301-1234"},
				ClientIPAddress: fmt.Sprintf("203.0.113.%d", i%250+1),
				ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
				FBP:             fmt.Sprintf("fb.1.%d.%d", testNow.UnixMilli(), 1_000_000_000+i),
			},
			Custom: schema.CustomData{Value: &value, Currency: "usd", OrderID: id, ContentType: "product",
				Contents: []schema.Content{{ID: "sku-" + strconv.Itoa(i%500), Quantity: 1, ItemPrice: &value}}},
			Consent: schema.Consent{Known: true, AdsAllowed: true},
		}, sink.BuildOptions{Now: testNow})
		if drops != nil {
			b.Fatalf("drops = %+v", drops)
		}
		events[i] = &ev
	}
	body, err := json.Marshal(struct {
		sink.Request
		AccessToken string `json:"access_token"`
	}{sink.Request{Data: events, PartnerAgent: "capirelay"}, token})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkParseRequestBody measures what the fast-mode emulator spends on a body before
// its Fault hook answers: finding the members, then the events of "data". "handler" is the
// whole request through ServeHTTP with such a hook, for scale.
func BenchmarkParseRequestBody(b *testing.B) {
	const events = 500
	body := benchBody(b, events)
	parsers := []struct {
		name  string
		parse func([]byte) (int, error)
	}{
		{"encoding_json", func(body []byte) (int, error) {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(body, &fields); err != nil {
				return 0, err
			}
			var evs []json.RawMessage
			err := json.Unmarshal(fields["data"], &evs)
			return len(evs), err
		}},
		{"scan", func(body []byte) (int, error) {
			fields, err := splitObject(body)
			if err != nil {
				return 0, err
			}
			evs, err := splitArray(fields["data"])
			return len(evs), err
		}},
	}
	for _, p := range parsers {
		b.Run(p.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if n, err := p.parse(body); n != events || err != nil {
					b.Fatalf("parsed %d events, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
		})
	}
	b.Run("handler", func(b *testing.B) {
		ack := &FaultResponse{Status: http.StatusOK, Body: []byte(`{"events_received":500}`)}
		s := newServer(WithFault(func(FaultRequest) *FaultResponse { return ack }))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, eventsPath(pixel, ""), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
	})
}
