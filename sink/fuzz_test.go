package sink

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/capirelay/capirelay/schema"
)

// The fuzz targets check properties, not examples: whatever bytes arrive from Kafka or from
// Meta, the normalizers and the answer parser must not panic, and what they return must keep
// the promises the rest of the sink relies on. Each target's seeds (f.Add below plus
// testdata/fuzz/<Target>/) run as an ordinary test on every `go test`.
//
//	go test -run='^$' -fuzz='^FuzzNormalize$' -fuzztime=10s ./sink
//	go test -run='^$' -fuzz='^FuzzParseAnswer$' -fuzztime=10s ./sink

// fuzzNow is fixed so that a date of birth accepted today is accepted when the corpus reruns.
var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// normField is one normalizer as FuzzNormalize selects it by field byte.
type normField struct {
	name string
	norm func(string) (string, error)
	// check holds the field's own output rules, applied only to values that were normalized
	// (not passed through as an existing hash).
	check func(out string) error
}

var normFields = []normField{
	{fieldEm, NormalizeEmail, func(out string) error {
		if strings.Count(out, "@") != 1 || strings.HasPrefix(out, "@") {
			return errors.New("not one @ with a local part")
		}
		return nil
	}},
	{fieldPh, NormalizePhone, func(out string) error {
		if !allBytes(out, isDigit) || len(out) < 7 || len(out) > 15 || out[0] == '0' {
			return errors.New("not 7–15 digits without a leading zero")
		}
		return nil
	}},
	{fieldFn, NormalizeFirstName, noPunctuation},
	{fieldLn, NormalizeLastName, noPunctuation},
	{fieldCt, NormalizeCity, lettersOnly},
	{fieldSt, NormalizeState, lettersOnly},
	{fieldZp + "/us", func(s string) (string, error) { return NormalizeZip(s, "us") }, func(out string) error {
		if len(out) != 5 || !allBytes(out, isDigit) {
			return errors.New("US zip is not 5 digits")
		}
		return nil
	}},
	{fieldZp, func(s string) (string, error) { return NormalizeZip(s, "gb") }, func(out string) error {
		if len(out) < 2 || !allBytes(out, func(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'z' }) {
			return errors.New("zip is not ≥2 lowercase ASCII letters and digits")
		}
		return nil
	}},
	{fieldCountry, NormalizeCountry, func(out string) error {
		if len(out) != 2 || !allBytes(out, func(c byte) bool { return 'a' <= c && c <= 'z' }) {
			return errors.New("country is not two lowercase letters")
		}
		return nil
	}},
	{fieldGe, NormalizeGender, func(out string) error {
		if out != "f" && out != "m" {
			return errors.New("gender is not f or m")
		}
		return nil
	}},
	{fieldDb, func(s string) (string, error) { return NormalizeDateOfBirth(s, fuzzNow) }, func(out string) error {
		t, err := time.Parse("20060102", out)
		if err != nil || len(out) != 8 {
			return fmt.Errorf("not a YYYYMMDD date: %v", err)
		}
		if t.Year() < 1900 || t.After(fuzzNow) {
			return errors.New("date outside 1900..now")
		}
		return nil
	}},
	{fieldExternalID, NormalizeExternalID, func(string) error { return nil }},
}

func FuzzNormalize(f *testing.F) {
	seeds := []string{
		"", " ", "John_Smith@gmail.com", "  John_Smith@Gmail.COM \n", "a@b.co", "a@@b.co",
		"+1 (650) 555-1212", "001 650 555 1212", "+44 (0)20 7946 0958", "0000000",
		"Mary", "Valéry", "Vale\u0301ry", "O'Brien-Smith", "张伟", "İstanbul", "ǅemal", "ΣΟΦΙΑ",
		"New York", "California", "Québec", "94035-1234", "M1 1AE", "United States", "USA", "Deutschland",
		"Female", "M", "Mrs.", "2/16/1997", "16.02.1997", "1997-02-16T00:00:00Z", "16 Feb 1997",
		"19970216", "31/04/1990", "29.02.2001", "1899-12-31", "2026-03-02",
		strings.Repeat("A", 64), strings.Repeat("f", 32), strings.Repeat("a", 64) + ".AQYCAQAA",
		"User-42 ", "\xff\xfe", "a\u200bb", "\u00a0x\u00a0",
	}
	for i := range normFields {
		for _, s := range seeds {
			f.Add(byte(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, field byte, raw string) {
		nf := normFields[int(field)%len(normFields)]
		out, err := nf.norm(raw)
		if err != nil {
			var ne *NormalizeError
			if !errors.As(err, &ne) || ne.Field == "" || ne.Reason == "" {
				t.Fatalf("%s(%q): error %v (%T) is not a NormalizeError with field and reason", nf.name, raw, err, err)
			}
			if out != "" {
				t.Fatalf("%s(%q): error %v with output %q", nf.name, raw, err, out)
			}
			// The reason is a metrics label: it must be one of the fixed set, never the value.
			if !knownDropReasons[ne.Reason] || !strings.HasPrefix(nf.name, ne.Field) {
				t.Fatalf("%s(%q): error field %q reason %q", nf.name, raw, ne.Field, ne.Reason)
			}
			return
		}
		if out == "" {
			t.Fatalf("%s(%q): empty output without an error", nf.name, raw)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("%s(%q) = %q: not valid UTF-8", nf.name, raw, out)
		}
		if h := HashString(out); len(h) != 64 || !isLowerHex(h) {
			t.Fatalf("%s(%q): digest %q is not 64 lowercase hex", nf.name, raw, h)
		}
		again, err := nf.norm(out)
		if err != nil || again != out {
			t.Fatalf("%s not idempotent: %q → %q → %q (%v)", nf.name, raw, out, again, err)
		}
		for _, r := range out {
			if unicode.IsSpace(r) {
				t.Fatalf("%s(%q) = %q: contains whitespace", nf.name, raw, out)
			}
		}
		switch classifyHashed(strings.TrimSpace(raw)) {
		case hashedParamBuilder:
			// The parameter builder's suffix is base64url and keeps its case.
			if !IsWireHash(out) {
				t.Fatalf("%s(%q) = %q: a parameter-builder hash did not pass through", nf.name, raw, out)
			}
			return
		case hashedHex:
			if !IsWireHash(out) {
				t.Fatalf("%s(%q) = %q: an existing hash is not in wire form", nf.name, raw, out)
			}
			return
		}
		for _, r := range out {
			if unicode.ToLower(r) != r {
				t.Fatalf("%s(%q) = %q: contains uppercase %q", nf.name, raw, out, r)
			}
		}
		if err := nf.check(out); err != nil {
			t.Fatalf("%s(%q) = %q: %v", nf.name, raw, out, err)
		}
	})
}

var knownDropReasons = map[string]bool{
	DropInvalidEmail: true, DropInvalidPhone: true, DropInvalidName: true, DropInvalidCity: true,
	DropInvalidState: true, DropInvalidZip: true, DropUnknownCountry: true, DropUnknownGender: true,
	DropInvalidDateOfBirth: true, DropDateOutOfRange: true, DropInvalidExternalID: true,
}

func noPunctuation(out string) error {
	for _, r := range out {
		if unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsControl(r) {
			return fmt.Errorf("contains punctuation or symbol %q", r)
		}
	}
	return nil
}

func lettersOnly(out string) error {
	for _, r := range out {
		if !unicode.IsLetter(r) && !unicode.IsMark(r) {
			return fmt.Errorf("contains non-letter %q", r)
		}
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// Secrets FuzzParseAnswer plants: a body may echo them, the parsed error must not.
const (
	fuzzToken = "EAAfuzz-token-0123"
	fuzzProof = "5f0e3c1d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
)

func FuzzParseAnswer(f *testing.F) {
	seeds := []struct {
		status      int
		retryAfter  string
		buc, appUse string
		body        string
	}{
		{200, "", "", "", `{"events_received":3,"messages":[],"fbtrace_id":"AbC"}`},
		{200, "", "", "", `<html>login</html>`},
		{204, "", "", "", ``},
		{400, "", "", "", `{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2804003,"is_transient":false,"error_user_title":"Event Timestamp Too Old","error_user_msg":"event 0: too old","error_data":{"event_index":0},"fbtrace_id":"A1"}}`},
		{400, "", "", "", `{"error":{"message":"Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"x"}}`},
		{400, "7", "", "", `{"error":{"message":"User request limit reached","code":17,"error_subcode":2446079,"is_transient":true}}`},
		{429, "Wed, 01 Mar 2026 12:05:00 GMT", `{"1":[{"type":"ads_management","call_count":100,"estimated_time_to_regain_access":3}]}`, `{"call_count":100,"total_cputime":5,"total_time":5}`, `{"error":{"code":80004,"error_subcode":2446079,"message":"too many calls"}}`},
		{500, "-1", `not json`, `{"call_count":"x"}`, `{"error":{"message":"An unknown error occurred","code":1,"is_transient":true}}`},
		{502, "", "", "", `<html>bad gateway</html>`},
		{403, "", "", "", `{"error":{"message":"(#200) Permissions error","code":200}}`},
		{400, "", "", "", `{"error":{"message":"token ` + fuzzToken + ` proof ` + fuzzProof + `","type":"` + fuzzToken + `","code":190,"error_user_title":"` + fuzzToken + `","error_user_msg":"` + fuzzProof + `","error_data":"` + fuzzToken + `","fbtrace_id":"` + fuzzToken + `"}}`},
		{400, "", "", "", `{"error":{"code":100,"error_data":{"token":"EAAfuzz\u002dtoken-0123"}}}`},
		{400, "", "", "", `{"error":null}`},
		{301, "", "", "", `{"error":{"code":0,"message":""}}`},
		{0, "", "", "", ``},
		{999, "99999999999999999999", `{"1":[{"estimated_time_to_regain_access":1e308}]}`, "", `{"error":{"code":-1,"message":"x"}}`},
	}
	for _, s := range seeds {
		f.Add(s.status, s.retryAfter, s.buc, s.appUse, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, retryAfter, buc, appUse string, body []byte) {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		if buc != "" {
			h.Set("X-Business-Use-Case-Usage", buc)
		}
		if appUse != "" {
			h.Set("X-App-Usage", appUse)
		}
		statusText := fmt.Sprintf("%d %s", status, http.StatusText(status))
		resp, ae := parseAnswer("42", status, statusText, h, body, fuzzNow, fuzzToken, fuzzProof)
		if (resp == nil) == (ae == nil) {
			t.Fatalf("status %d: response %v and error %v: want exactly one", status, resp, ae)
		}
		if resp != nil {
			if status < 200 || status > 299 {
				t.Fatalf("status %d answered as success", status)
			}
			return
		}
		if ae.PixelID != "42" || ae.HTTPStatus != status {
			t.Fatalf("error %+v lost pixel or status %d", ae, status)
		}
		if ae.Class >= numClasses {
			t.Fatalf("class %d out of range", ae.Class)
		}
		hasGraph := ae.Graph.Code != 0 || ae.Graph.Message != ""
		if status >= 200 && status <= 299 {
			if ae.Class != ClassUnknown || ae.Err == nil || hasGraph {
				t.Fatalf("undecodable 2xx: %+v, want ClassUnknown with a cause", ae)
			}
		} else {
			var g *GraphError
			if hasGraph {
				g = &ae.Graph
			} else if ae.Err == nil {
				t.Fatalf("status %d without a Graph error carries no cause", status)
			}
			if want := Classify(status, g); ae.Class != want {
				t.Fatalf("class %v, Classify says %v", ae.Class, want)
			}
		}
		if ae.RetryAfter < 0 || ae.RetryAfter > 24*time.Hour {
			t.Fatalf("RetryAfter %v outside [0, 24h]", ae.RetryAfter)
		}
		if ae.RetryAfter != 0 && ae.Class != ClassRateLimit && ae.Class != ClassTransient {
			t.Fatalf("RetryAfter %v on a %v error", ae.RetryAfter, ae.Class)
		}
		if !ae.Class.Retryable() && ae.RetryAfter != 0 {
			t.Fatalf("non-retryable %v with a wait", ae.Class)
		}
		// What gets logged and dead-lettered: the message and the whole struct.
		js, err := json.Marshal(ae)
		if err != nil {
			t.Fatalf("APIError does not marshal: %v", err)
		}
		for _, text := range []string{ae.Error(), fmt.Sprintf("%+v", ae.Graph), string(js)} {
			if strings.Contains(text, fuzzToken) || strings.Contains(text, fuzzProof) {
				t.Fatalf("a secret survives parsing: %s", text)
			}
		}
	})
}

// FuzzBuildValidateBuilt holds the promise ValidateOptions.Built rests on: whatever a
// publisher puts in a hashed user_data field, every value Build emits is a wire hash, so
// validating with Built gives the verdict validating without it gives.
func FuzzBuildValidateBuilt(f *testing.F) {
	seeds := []string{
		"", "John_Smith@gmail.com", "+1 (650) 555-1212", "Valéry", "New York", "94035-1234",
		"Female", "2/16/1997", "USA", "user-42", "\xff\xfe", "a\u200bb",
		strings.Repeat("A", 64), strings.Repeat("f", 32), strings.Repeat("F", 32), strings.Repeat("g", 64),
		strings.Repeat("a", 64) + ".AQYCAQAA", strings.Repeat("a", 64) + ".Ag", strings.Repeat("A", 64) + ".Ag",
		strings.Repeat("a", 64) + ".A\"", strings.Repeat("a", 63) + ".AQYCAQAA", strings.Repeat("a", 65),
	}
	for field := range 11 {
		for _, s := range seeds {
			f.Add(byte(field), s, false)
			f.Add(byte(field), s, true)
		}
	}
	f.Fuzz(func(t *testing.T, field byte, raw string, alone bool) {
		src := webPurchase()
		u := &src.User
		slots := []*[]string{&u.Emails, &u.Phones, &u.FirstNames, &u.LastNames, &u.DatesOfBirth,
			&u.Genders, &u.Cities, &u.States, &u.Zips, &u.Countries, &u.ExternalIDs}
		if alone {
			// Only this value and the IP: whether the event is sendable hangs on it.
			*u = schema.UserData{ClientIPAddress: "203.0.113.7"}
		}
		*slots[int(field)%len(slots)] = []string{raw}
		ev, _ := Build(src, BuildOptions{Now: buildNow, Hasher: NewHasher()})
		w := ev.User
		for _, vals := range [][]string{w.Em, w.Ph, w.Fn, w.Ln, w.Db, w.Ge, w.Ct, w.St, w.Zp, w.Country} {
			for _, v := range vals {
				if !IsWireHash(v) {
					t.Fatalf("Build emitted %q, not a wire hash, from %q", v, raw)
				}
			}
		}
		opts := ValidateOptions{MaxFutureSkew: DefaultMaxFutureSkew}
		checked := Validate(&ev, buildNow, opts)
		opts.Built = true
		trusted := Validate(&ev, buildNow, opts)
		if fmt.Sprint(checked) != fmt.Sprint(trusted) {
			t.Fatalf("from %q: Validate = %v, with Built %v", raw, checked, trusted)
		}
	})
}
