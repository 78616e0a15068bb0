package sink

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// capiFake is a small stand-in for graph.facebook.com's /{version}/{pixel}/events edge. Like
// Meta, it rejects the whole request when any event is invalid, which here means an
// event_name of "BAD".
type capiFake struct {
	srv *httptest.Server

	// answer, if set, decides the answer to the nth request (1-based) instead of the default.
	answer func(r *capiRequest, n int) capiAnswer
	// hold, if set, runs before the answer while the request counts as in flight.
	hold func(r *capiRequest)

	mu          sync.Mutex
	reqs        []*capiRequest
	inFlight    int
	maxInFlight int
	delivered   map[string]int // event_id → times accepted
}

// capiRequest is one request as the fake received it.
type capiRequest struct {
	Method, Path, RawQuery, ContentType string
	Version, Pixel                      string
	Body                                capiWireBody
	At                                  time.Time
}

type capiWireBody struct {
	Data           []Event `json:"data"`
	PartnerAgent   string  `json:"partner_agent"`
	TestEventCode  string  `json:"test_event_code"`
	AccessToken    string  `json:"access_token"`
	AppSecretProof string  `json:"appsecret_proof"`
}

type capiAnswer struct {
	status int
	header http.Header
	body   string
}

// graphAnswer is a Graph error answer.
func graphAnswer(status, code, subcode int, transient bool, msg string) capiAnswer {
	body, _ := json.Marshal(ErrorBody{Error: GraphError{
		Message: msg, Type: "OAuthException", Code: code, Subcode: subcode,
		IsTransient: transient, FBTraceID: fmt.Sprintf("trace-%d-%d", code, subcode),
	}})
	return capiAnswer{status: status, body: string(body)}
}

func okAnswer(received int) capiAnswer {
	return capiAnswer{status: http.StatusOK,
		body: fmt.Sprintf(`{"events_received":%d,"messages":[],"fbtrace_id":"trace-ok"}`, received)}
}

// defaultAnswer is Meta's behaviour: all or nothing.
func defaultAnswer(r *capiRequest) capiAnswer {
	for _, e := range r.Body.Data {
		if e.EventName == "BAD" {
			a := graphAnswer(http.StatusBadRequest, 100, 2804050, false, "Invalid parameter")
			return a
		}
	}
	return okAnswer(len(r.Body.Data))
}

func newCAPIFake(t testing.TB) *capiFake {
	f := &capiFake{delivered: make(map[string]int)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *capiFake) serve(w http.ResponseWriter, hr *http.Request) {
	r := &capiRequest{
		Method: hr.Method, Path: hr.URL.Path, RawQuery: hr.URL.RawQuery,
		ContentType: hr.Header.Get("Content-Type"), At: time.Now(),
	}
	parts := strings.Split(strings.Trim(hr.URL.Path, "/"), "/")
	if len(parts) != 3 || parts[2] != "events" || hr.Method != http.MethodPost {
		http.Error(w, `{"error":{"message":"Unknown path","code":803}}`, http.StatusNotFound)
		return
	}
	r.Version, r.Pixel = parts[0], parts[1]
	if err := json.NewDecoder(hr.Body).Decode(&r.Body); err != nil {
		http.Error(w, `{"error":{"message":"bad json","code":100}}`, http.StatusBadRequest)
		return
	}

	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	n := len(f.reqs)
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	answer, hold := f.answer, f.hold
	f.mu.Unlock()

	if hold != nil {
		hold(r)
	}
	var a capiAnswer
	if answer != nil {
		a = answer(r, n)
	} else {
		a = defaultAnswer(r)
	}

	f.mu.Lock()
	f.inFlight--
	if a.status == http.StatusOK {
		for _, e := range r.Body.Data {
			f.delivered[e.EventID]++
		}
	}
	f.mu.Unlock()

	for k, vs := range a.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	fmt.Fprint(w, a.body)
}

func (f *capiFake) requests() []*capiRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*capiRequest(nil), f.reqs...)
}

func (f *capiFake) deliveredCount(eventID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delivered[eventID]
}

// client returns a GraphClient pointed at the fake, with token "tok-<pixel>".
func (f *capiFake) client(opts ...ClientOption) *GraphClient {
	base := []ClientOption{
		WithBaseURL(f.srv.URL),
		WithTokenSource(func(p string) (string, bool) { return "tok-" + p, true }),
		WithHTTPClient(f.srv.Client()),
	}
	return NewGraphClient(append(base, opts...)...)
}
