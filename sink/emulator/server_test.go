package emulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

const (
	pixel      = "1234567890"
	otherPixel = "555000111"
	token      = "EAAtest-token"
	otherToken = "EAAother-token"
	sha        = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f" // sha256(john_smith@gmail.com)
	shaUS      = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"
	shaF       = "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"
	shaMary    = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newServer(opts ...Option) *Server {
	base := []Option{
		WithPixel(pixel, token),
		WithPixel(otherPixel, otherToken),
		WithClock(func() time.Time { return testNow }),
	}
	return New(append(base, opts...)...)
}

func validEvent() map[string]any {
	return map[string]any{
		"event_name":       "Purchase",
		"event_time":       testNow.Unix() - 60,
		"event_id":         "order-1",
		"action_source":    "website",
		"event_source_url": "https://shop.example.com/thanks",
		"user_data": map[string]any{
			"em":                []string{sha},
			"client_user_agent": "Mozilla/5.0",
			"client_ip_address": "203.0.113.7",
		},
		"custom_data": map[string]any{"currency": "USD", "value": 12.5},
	}
}

type result struct {
	status int
	raw    string
	body   map[string]any
	err    sink.ErrorBody // decoded with the client's types
}

func do(t *testing.T, s *Server, req *http.Request) result {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	res := result{status: rec.Code, raw: rec.Body.String()}
	if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, res.raw)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res.err); err != nil {
		t.Fatalf("response does not decode as sink.ErrorBody: %v", err)
	}
	return res
}

func postJSON(t *testing.T, s *Server, path string, body any) result {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	return do(t, s, req)
}

func eventsPath(p, tok string) string {
	path := "/v25.0/" + p + "/events"
	if tok != "" {
		path += "?access_token=" + url.QueryEscape(tok)
	}
	return path
}

func wantError(t *testing.T, r result, code, subcode int) {
	t.Helper()
	if r.status != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400: %s", r.status, r.raw)
	}
	e := r.err.Error
	if e.Code != code || e.Subcode != subcode {
		t.Fatalf("error = %d/%d, want %d/%d: %s", e.Code, e.Subcode, code, subcode, r.raw)
	}
	if e.Message == "" || e.FBTraceID == "" || e.IsTransient {
		t.Fatalf("error body incomplete: %s", r.raw)
	}
	if _, ok := r.body["error"].(map[string]any)["is_transient"]; !ok {
		t.Fatalf("is_transient missing from body: %s", r.raw)
	}
}

func TestAuthentication(t *testing.T) {
	body := map[string]any{"data": []any{validEvent()}}
	tests := []struct {
		name          string
		pixel, token  string
		code, subcode int
	}{
		{"missing token", pixel, "", 190, 0},
		{"unknown token", pixel, "EAAnope", 190, SubcodeInvalidToken},
		{"unknown pixel", "999999", token, 100, SubcodeObjectNotFound},
		{"token of another pixel", pixel, otherToken, 100, SubcodeObjectNotFound},
		{"non-numeric pixel", "me", token, 100, SubcodeObjectNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer()
			r := postJSON(t, s, eventsPath(tt.pixel, tt.token), body)
			wantError(t, r, tt.code, tt.subcode)
			if len(s.Received()) != 0 {
				t.Fatal("rejected request stored events")
			}
			if tt.subcode == SubcodeObjectNotFound && !strings.Contains(r.err.Error.Message, "Object with ID '"+tt.pixel+"' does not exist") {
				t.Fatalf("message = %q", r.err.Error.Message)
			}
		})
	}
	s := newServer()
	if r := postJSON(t, s, eventsPath(otherPixel, otherToken), body); r.status != http.StatusOK {
		t.Fatalf("other pixel with its token: %d %s", r.status, r.raw)
	}
}

func TestOpenModeAcceptsAnyToken(t *testing.T) {
	s := New(WithClock(func() time.Time { return testNow }))
	body := map[string]any{"data": []any{validEvent()}}
	if r := postJSON(t, s, eventsPath("42", "anything"), body); r.status != http.StatusOK {
		t.Fatalf("open mode: %d %s", r.status, r.raw)
	}
	wantError(t, postJSON(t, s, eventsPath("42", ""), body), 190, 0)
}

func TestVersions(t *testing.T) {
	body := map[string]any{"data": []any{validEvent()}}
	tests := []struct {
		version string
		code    int
	}{
		{"v25.0", 0},
		{"v26.0", 0},
		{"v12.0", CodeDeprecatedAPI},
		{"v99.0", CodeUnknownPath},
		{"latest", CodeUnknownPath},
		{"v25", CodeUnknownPath},
	}
	for _, tt := range tests {
		s := newServer()
		r := postJSON(t, s, "/"+tt.version+"/"+pixel+"/events?access_token="+token, body)
		if tt.code == 0 {
			if r.status != http.StatusOK {
				t.Errorf("%s: %d %s", tt.version, r.status, r.raw)
			}
			continue
		}
		if r.status != http.StatusBadRequest || r.err.Error.Code != tt.code {
			t.Errorf("%s: got %d code %d, want code %d", tt.version, r.status, r.err.Error.Code, tt.code)
		}
	}
	s := newServer(WithAPIVersions("v24.0"))
	if r := postJSON(t, s, eventsPath(pixel, token), body); r.err.Error.Code != CodeUnknownPath {
		t.Fatalf("v25.0 with only v24.0 allowed: %s", r.raw)
	}
}

func TestEventRules(t *testing.T) {
	user := func(e map[string]any) map[string]any { return e["user_data"].(map[string]any) }
	tests := []struct {
		name    string
		mutate  func(map[string]any)
		subcode int // 0 means accepted
	}{
		{"valid", func(map[string]any) {}, 0},
		{"missing event_name", func(e map[string]any) { delete(e, "event_name") }, SubcodeMissingName},
		{"empty event_name", func(e map[string]any) { e["event_name"] = "" }, SubcodeMissingName},
		{"missing event_time", func(e map[string]any) { delete(e, "event_time") }, SubcodeInvalidTime},
		{"event_time string", func(e map[string]any) { e["event_time"] = fmt.Sprint(testNow.Unix()) }, SubcodeInvalidTime},
		{"event_time float", func(e map[string]any) { e["event_time"] = float64(testNow.Unix()) + 0.5 }, SubcodeInvalidTime},
		{"too old", func(e map[string]any) { e["event_time"] = testNow.Add(-7*24*time.Hour - time.Second).Unix() }, SubcodeEventTooOld},
		{"6 days old", func(e map[string]any) { e["event_time"] = testNow.Add(-6 * 24 * time.Hour).Unix() }, 0},
		{"milliseconds", func(e map[string]any) { e["event_time"] = testNow.UnixMilli() }, SubcodeEventInFuture},
		{"future within skew", func(e map[string]any) { e["event_time"] = testNow.Add(4 * time.Minute).Unix() }, 0},
		{"future beyond skew", func(e map[string]any) { e["event_time"] = testNow.Add(6 * time.Minute).Unix() }, SubcodeEventInFuture},
		{"missing action_source", func(e map[string]any) { delete(e, "action_source") }, SubcodeMissingSource},
		{"unknown action_source", func(e map[string]any) { e["action_source"] = "offline" }, SubcodeInvalidSource},
		{"action_source not a string", func(e map[string]any) { e["action_source"] = 3 }, SubcodeInvalidSource},
		{"website without url", func(e map[string]any) { delete(e, "event_source_url") }, SubcodeWebsiteURL},
		{"website without ua", func(e map[string]any) { delete(user(e), "client_user_agent") }, SubcodeWebsiteUA},
		{"store without url or ua", func(e map[string]any) {
			e["action_source"] = "physical_store"
			delete(e, "event_source_url")
			delete(user(e), "client_user_agent")
		}, 0},
		{"app without app_data", func(e map[string]any) { e["action_source"] = "app" }, SubcodeAppData},
		{"missing user_data", func(e map[string]any) { delete(e, "user_data") }, SubcodeNoUserData},
		{"user_data not object", func(e map[string]any) { e["user_data"] = "x" }, SubcodeNoUserData},
		{"empty user_data", func(e map[string]any) { e["action_source"] = "email"; e["user_data"] = map[string]any{} }, SubcodeNoUserData},
		{"unhashed email", func(e map[string]any) { user(e)["em"] = []string{"john_smith@gmail.com"} }, SubcodeUnhashed},
		{"unhashed email string", func(e map[string]any) { user(e)["em"] = "john_smith@gmail.com" }, SubcodeUnhashed},
		{"uppercase hash", func(e map[string]any) { user(e)["ph"] = []string{strings.ToUpper(sha)} }, SubcodeUnhashed},
		{"unhashed country", func(e map[string]any) { user(e)["country"] = "us" }, SubcodeUnhashed},
		{"hash as string ok", func(e map[string]any) { user(e)["em"] = sha }, 0},
		{"param builder hash ok", func(e map[string]any) { user(e)["em"] = []string{sha + ".AQYCAQAA"} }, 0},
		{"em not string", func(e map[string]any) { user(e)["em"] = 5 }, SubcodeInvalidUserData},
		{"bad lead_id", func(e map[string]any) { user(e)["lead_id"] = 12 }, SubcodeInvalidLeadID},
		{"lead_id number ok", func(e map[string]any) { user(e)["lead_id"] = json.Number("1234567890123456") }, 0},
		{"only ua", func(e map[string]any) { e["user_data"] = map[string]any{"client_user_agent": "UA"} }, SubcodeInsufficient},
		{"location and ua", func(e map[string]any) {
			e["user_data"] = map[string]any{"country": shaUS, "ge": []string{shaF}, "client_user_agent": "UA"}
		}, SubcodeInsufficient},
		{"fn+ge", func(e map[string]any) {
			e["action_source"] = "chat"
			e["user_data"] = map[string]any{"fn": shaMary, "ge": shaF}
		}, SubcodeInsufficient},
		{"purchase without currency", func(e map[string]any) { delete(e["custom_data"].(map[string]any), "currency") }, SubcodePurchase},
		{"purchase without value", func(e map[string]any) { delete(e["custom_data"].(map[string]any), "value") }, SubcodePurchase},
		{"purchase without custom_data", func(e map[string]any) { delete(e, "custom_data") }, SubcodePurchase},
		{"value as string ok", func(e map[string]any) { e["custom_data"].(map[string]any)["value"] = "12.50" }, 0},
		{"value not a number", func(e map[string]any) { e["custom_data"].(map[string]any)["value"] = "twelve" }, SubcodeInvalidCustom},
		{"bad currency", func(e map[string]any) { e["custom_data"].(map[string]any)["currency"] = "US$" }, SubcodeInvalidCustom},
		{"custom_data not object", func(e map[string]any) { e["event_name"] = "Lead"; e["custom_data"] = []int{1} }, SubcodeInvalidCustom},
		{"dpo other value", func(e map[string]any) { e["data_processing_options"] = []string{"GDPR"} }, SubcodeInvalidDPO},
		{"ldu without country", func(e map[string]any) { e["data_processing_options"] = []string{"LDU"} }, SubcodeInvalidDPO},
		{"ldu bad state", func(e map[string]any) {
			e["data_processing_options"] = []string{"LDU"}
			e["data_processing_options_country"] = 1
			e["data_processing_options_state"] = 1099
		}, SubcodeInvalidDPO},
		{"ldu california", func(e map[string]any) {
			e["data_processing_options"] = []string{"LDU"}
			e["data_processing_options_country"] = 1
			e["data_processing_options_state"] = 1000
		}, 0},
		{"no ldu", func(e map[string]any) { e["data_processing_options"] = []string{} }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer()
			bad := validEvent()
			tt.mutate(bad)
			// A valid event first: one invalid event must reject both.
			r := postJSON(t, s, eventsPath(pixel, token), map[string]any{"data": []any{validEvent(), bad}})
			if tt.subcode == 0 {
				if r.status != http.StatusOK {
					t.Fatalf("status %d: %s", r.status, r.raw)
				}
				if len(s.Received()) != 2 {
					t.Fatalf("stored %d events, want 2", len(s.Received()))
				}
				return
			}
			wantError(t, r, CodeInvalidParameter, tt.subcode)
			e := r.err.Error
			if !strings.Contains(e.Message, "event 1:") || !strings.HasPrefix(e.UserMessage, "event 1: ") || e.UserTitle == "" {
				t.Fatalf("error does not name event 1: %s", r.raw)
			}
			if string(e.ErrorData) != `{"event_index":1}` {
				t.Fatalf("error_data = %s", e.ErrorData)
			}
			if n := len(s.Received()); n != 0 {
				t.Fatalf("stored %d events from a rejected request", n)
			}
		})
	}
}

func TestTooOldMatchesMeta(t *testing.T) {
	s := newServer()
	ev := validEvent()
	ev["event_time"] = testNow.Add(-8 * 24 * time.Hour).Unix()
	r := postJSON(t, s, eventsPath(pixel, token), map[string]any{"data": []any{ev}})
	wantError(t, r, 100, 2804003)
	if r.err.Error.UserTitle != "Event Timestamp Too Old" || !strings.Contains(r.err.Error.UserMessage, "within 7 days") {
		t.Fatalf("too-old body differs from Meta's: %s", r.raw)
	}
}

func TestRequestLimits(t *testing.T) {
	many := make([]any, 1001)
	for i := range many {
		many[i] = validEvent()
	}
	tests := []struct {
		name    string
		body    any
		subcode int
	}{
		{"no data", map[string]any{}, SubcodeEmptyData},
		{"empty data", map[string]any{"data": []any{}}, SubcodeEmptyData},
		{"data not array", map[string]any{"data": "x"}, SubcodeMalformedBody},
		{"too many", map[string]any{"data": many}, SubcodeTooManyEvents},
		{"exactly 1000", map[string]any{"data": many[:1000]}, 0},
		{"partner agent long", map[string]any{"data": []any{validEvent()}, "partner_agent": strings.Repeat("p", 23)}, SubcodePartnerAgent},
		{"partner agent digits", map[string]any{"data": []any{validEvent()}, "partner_agent": "1.0-x"}, SubcodePartnerAgent},
		{"partner agent ok", map[string]any{"data": []any{validEvent()}, "partner_agent": "gtmss-1.0.0-0.0.9"}, 0},
		{"element not object", map[string]any{"data": []any{validEvent(), 7}}, SubcodeNotAnEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer()
			r := postJSON(t, s, eventsPath(pixel, token), tt.body)
			if tt.subcode == 0 {
				if r.status != http.StatusOK {
					t.Fatalf("status %d: %s", r.status, r.raw)
				}
				return
			}
			wantError(t, r, CodeInvalidParameter, tt.subcode)
			if len(s.Received()) != 0 {
				t.Fatal("stored events from a rejected request")
			}
		})
	}
	s := newServer()
	req := httptest.NewRequest(http.MethodPost, eventsPath(pixel, token), strings.NewReader("{not json"))
	req.Header.Set("Content-Type", "application/json")
	wantError(t, do(t, s, req), CodeInvalidParameter, SubcodeMalformedBody)
	// A broken body from an unauthenticated caller is an auth error first.
	req = httptest.NewRequest(http.MethodPost, eventsPath(pixel, ""), strings.NewReader("{not json"))
	req.Header.Set("Content-Type", "application/json")
	wantError(t, do(t, s, req), CodeOAuth, 0)
}

func TestSuccessShapeAndReceived(t *testing.T) {
	s := newServer()
	r := postJSON(t, s, eventsPath(pixel, token), map[string]any{
		"data":            []any{validEvent(), validEvent()},
		"test_event_code": "TEST123",
		"partner_agent":   "capirelay",
	})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if !strings.Contains(r.raw, `"messages":[]`) {
		t.Fatalf("messages must be an empty array: %s", r.raw)
	}
	var resp sink.Response
	if err := json.Unmarshal([]byte(r.raw), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.EventsReceived != 2 || len(resp.FBTraceID) != 11 {
		t.Fatalf("response = %+v", resp)
	}
	got := s.Received()
	if len(got) != 2 {
		t.Fatalf("received %d", len(got))
	}
	g := got[0]
	if g.PixelID != pixel || g.EventName != "Purchase" || g.EventID != "order-1" ||
		g.TestEventCode != "TEST123" || g.PartnerAgent != "capirelay" || !g.ReceivedAt.Equal(testNow) {
		t.Fatalf("received = %+v", g)
	}
	var raw map[string]any
	if err := json.Unmarshal(g.Raw, &raw); err != nil || raw["event_source_url"] != "https://shop.example.com/thanks" {
		t.Fatalf("raw event not kept: %s", g.Raw)
	}
	st := s.Stats()
	if st.Requests != 1 || st.Accepted != 1 || st.EventsReceived != 2 {
		t.Fatalf("stats = %+v", st)
	}
	s.Reset()
	if len(s.Received()) != 0 || s.Stats().Requests != 0 {
		t.Fatal("Reset kept state")
	}
}

func TestTokenInBodyOrQuery(t *testing.T) {
	tests := []struct {
		name  string
		query string
		body  map[string]any
		want  int
	}{
		{"query", token, map[string]any{}, http.StatusOK},
		{"body", "", map[string]any{"access_token": token}, http.StatusOK},
		{"query wins", token, map[string]any{"access_token": "EAAwrong"}, http.StatusOK},
		{"body wrong", "", map[string]any{"access_token": "EAAwrong"}, http.StatusBadRequest},
		{"body not string", "", map[string]any{"access_token": 5}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.body["data"] = []any{validEvent()}
			r := postJSON(t, newServer(), eventsPath(pixel, tt.query), tt.body)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.raw)
			}
		})
	}
}

func TestFormBodies(t *testing.T) {
	data, _ := json.Marshal([]any{validEvent()})

	s := newServer()
	form := url.Values{"data": {string(data)}, "access_token": {token}, "test_event_code": {"T1"}}
	req := httptest.NewRequest(http.MethodPost, eventsPath(pixel, ""), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := do(t, s, req); r.status != http.StatusOK {
		t.Fatalf("urlencoded: %d %s", r.status, r.raw)
	}
	if got := s.Received(); len(got) != 1 || got[0].TestEventCode != "T1" {
		t.Fatalf("received = %+v", got)
	}

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("data", string(data))
	_ = mw.WriteField("access_token", token)
	_ = mw.Close()
	req = httptest.NewRequest(http.MethodPost, eventsPath(pixel, ""), &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if r := do(t, s, req); r.status != http.StatusOK {
		t.Fatalf("multipart: %d %s", r.status, r.raw)
	}

	bad := validEvent()
	delete(bad, "action_source")
	data, _ = json.Marshal([]any{bad})
	form = url.Values{"data": {string(data)}, "access_token": {token}}
	req = httptest.NewRequest(http.MethodPost, eventsPath(pixel, ""), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantError(t, do(t, s, req), CodeInvalidParameter, SubcodeMissingSource)

	req = httptest.NewRequest(http.MethodPost, eventsPath(pixel, token), strings.NewReader("data"))
	req.Header.Set("Content-Type", "text/plain")
	wantError(t, do(t, s, req), CodeInvalidParameter, SubcodeMalformedBody)
}

func TestAppSecretProof(t *testing.T) {
	const secret = "app-secret"
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(token))
	proof := hex.EncodeToString(mac.Sum(nil))
	body := map[string]any{"data": []any{validEvent()}}
	tests := []struct {
		name, proof string
		want        int
	}{
		{"missing", "", CodeInvalidParameter},
		{"wrong", strings.Repeat("0", 64), CodeInvalidParameter},
		{"proof of another token", func() string {
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte(otherToken))
			return hex.EncodeToString(m.Sum(nil))
		}(), CodeInvalidParameter},
		{"right", proof, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(WithAppSecret(secret))
			path := eventsPath(pixel, token)
			if tt.proof != "" {
				path += "&appsecret_proof=" + tt.proof
			}
			r := postJSON(t, s, path, body)
			if tt.want == 0 {
				if r.status != http.StatusOK {
					t.Fatalf("status %d: %s", r.status, r.raw)
				}
				return
			}
			wantError(t, r, tt.want, 0)
			if !strings.Contains(r.err.Error.Message, "appsecret_proof") {
				t.Fatalf("message = %q", r.err.Error.Message)
			}
		})
	}
	// In the JSON body too.
	s := newServer(WithAppSecret(secret))
	body["appsecret_proof"] = proof
	if r := postJSON(t, s, eventsPath(pixel, token), body); r.status != http.StatusOK {
		t.Fatalf("proof in body: %d %s", r.status, r.raw)
	}
}

func TestGETAccessor(t *testing.T) {
	s := newServer()
	postJSON(t, s, eventsPath(pixel, token), map[string]any{"data": []any{validEvent()}})
	postJSON(t, s, eventsPath(otherPixel, otherToken), map[string]any{"data": []any{validEvent(), validEvent()}})
	for _, tt := range []struct {
		query string
		want  int
	}{{"?pixel_id=" + pixel, 1}, {"?pixel_id=" + otherPixel, 2}, {"", 3}, {"?pixel_id=404", 0}} {
		r := do(t, s, httptest.NewRequest(http.MethodGet, "/_emulator/events"+tt.query, nil))
		var out struct {
			Data []Received `json:"data"`
		}
		if err := json.Unmarshal([]byte(r.raw), &out); err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusOK || len(out.Data) != tt.want {
			t.Fatalf("%q: %d events, want %d: %s", tt.query, len(out.Data), tt.want, r.raw)
		}
		for _, ev := range out.Data {
			if len(ev.Raw) == 0 || ev.EventName != "Purchase" {
				t.Fatalf("event not served back: %+v", ev)
			}
		}
	}
	r := do(t, s, httptest.NewRequest(http.MethodGet, "/_emulator/stats", nil))
	if !strings.Contains(r.raw, `"events_received":3`) {
		t.Fatalf("stats = %s", r.raw)
	}
}

func TestStatsCountRejectionsByCode(t *testing.T) {
	s := newServer()
	body := map[string]any{"data": []any{validEvent()}}
	postJSON(t, s, eventsPath(pixel, ""), body)
	postJSON(t, s, eventsPath(pixel, "EAAbad"), body)
	postJSON(t, s, eventsPath("999", token), body)
	postJSON(t, s, eventsPath(pixel, token), body)
	st := s.Stats()
	if st.Requests != 4 || st.Accepted != 1 || st.RejectedByCode[190] != 2 || st.RejectedByCode[100] != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// Error bodies end up in logs and dead-letter records: they must never echo what was sent.
func TestErrorBodiesNeverContainPII(t *testing.T) {
	const email, phone = "john_smith@gmail.com", "16505551212"
	s := newServer()
	for _, key := range []string{"em", "ph"} {
		ev := validEvent()
		ev["user_data"].(map[string]any)["em"] = []string{email}
		ev["user_data"].(map[string]any)["ph"] = phone
		if key == "ph" {
			ev["user_data"].(map[string]any)["em"] = sha
		}
		r := postJSON(t, s, eventsPath(pixel, token), map[string]any{"data": []any{ev}})
		wantError(t, r, CodeInvalidParameter, SubcodeUnhashed)
		for _, v := range []string{email, phone, "john_smith", "6505551212"} {
			if strings.Contains(r.raw, v) {
				t.Fatalf("error body contains %q: %s", v, r.raw)
			}
		}
	}
}

func TestFaultSeam(t *testing.T) {
	calls := 0
	s := newServer(WithFault(func(fr FaultRequest) *FaultResponse {
		calls++
		if fr.PixelID != pixel || fr.Version != "v25.0" || fr.Events != 1 {
			t.Errorf("fault request = %+v", fr)
		}
		return &FaultResponse{Status: http.StatusServiceUnavailable, Body: []byte(`{"error":{"message":"x","code":2,"is_transient":true}}`)}
	}))
	r := postJSON(t, s, eventsPath(pixel, token), map[string]any{"data": []any{validEvent()}})
	if r.status != http.StatusServiceUnavailable || calls != 1 || len(s.Received()) != 0 {
		t.Fatalf("fault not applied: %d %s", r.status, r.raw)
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	s := newServer()
	r := do(t, s, httptest.NewRequest(http.MethodGet, eventsPath(pixel, token), nil))
	if r.status != http.StatusBadRequest || r.err.Error.Code != CodeInvalidParameter {
		t.Fatalf("GET events: %d %s", r.status, r.raw)
	}
	r = do(t, s, httptest.NewRequest(http.MethodPost, "/v25.0/"+pixel+"/nope", nil))
	if r.err.Error.Code != CodeUnknownPath {
		t.Fatalf("unknown path: %s", r.raw)
	}
}

// The sink's own output must pass the emulator: Build → Validate → encode → POST.
func TestSinkOutputAccepted(t *testing.T) {
	v := 99.5
	ev, drops := sink.Build(schema.Event{
		EventID: "o-1", EventName: "Purchase", EventTime: testNow.Unix() - 10, ActionSource: "website",
		EventSourceURL: "https://shop.example.com/x",
		User: schema.UserData{
			Emails: []string{"John_Smith@gmail.com"}, Phones: []string{"+1 650 555 1212"},
			FirstNames: []string{"Valéry"}, DatesOfBirth: []string{"1997-02-16"}, Countries: []string{"USA"},
			Zips: []string{"94035-1234"}, ClientUserAgent: "Mozilla/5.0", ClientIPAddress: "2001:db8::1",
			LeadID: "1234567890123456",
		},
		Custom:  schema.CustomData{Value: &v, Currency: "eur"},
		Consent: schema.Consent{LimitedDataUse: true, LDUCountry: 1, LDUState: 1000},
	}, sink.BuildOptions{Now: testNow})
	if drops != nil {
		t.Fatalf("drops = %+v", drops)
	}
	req := sink.Request{Data: []*sink.Event{&ev}, PartnerAgent: "capirelay", TestEventCode: "TEST1"}
	if err := sink.ValidateRequest(&req, testNow, sink.ValidateOptions{}); err != nil {
		t.Fatalf("sink.ValidateRequest: %v", err)
	}
	s := newServer()
	r := postJSON(t, s, eventsPath(pixel, token), req)
	if r.status != http.StatusOK {
		t.Fatalf("emulator rejected the sink's output: %s", r.raw)
	}
	// And an event the sink rejects, the emulator rejects too.
	ev.ActionSource = ""
	r = postJSON(t, s, eventsPath(pixel, token), sink.Request{Data: []*sink.Event{&ev}})
	wantError(t, r, CodeInvalidParameter, SubcodeMissingSource)
}

func TestListenAndServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := newServer()
	go func() { done <- Serve(ctx, ln, s) }()

	b, _ := json.Marshal(map[string]any{"data": []any{validEvent()}})
	resp, err := http.Post("http://"+ln.Addr().String()+eventsPath(pixel, token), "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
	if err := ListenAndServe(context.Background(), "127.0.0.1:-1", s); err == nil {
		t.Fatal("ListenAndServe on a bad address succeeded")
	}
}
