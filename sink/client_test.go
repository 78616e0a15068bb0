package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The vector was computed independently: printf token | openssl dgst -sha256 -hmac secret
const proofOfTokenKeyedBySecret = "e941110e3d2bfe82621f0e3e1434730d7305d106c5f68c87165d0b27a4611a4a"

func TestAppSecretProof(t *testing.T) {
	if got := AppSecretProof([]byte("secret"), "token"); got != proofOfTokenKeyedBySecret {
		t.Fatalf("AppSecretProof = %s, want %s", got, proofOfTokenKeyedBySecret)
	}
}

func TestGraphClientRequest(t *testing.T) {
	f := newCAPIFake(t)
	token := "token"
	c := NewGraphClient(
		WithBaseURL(f.srv.URL+"/"),
		WithAPIVersion("v26.0"),
		WithTokenSource(func(p string) (string, bool) { return token, p == "123" }),
		WithAppSecret("secret"),
		WithHTTPClient(f.srv.Client()),
	)
	req := &Request{
		Data:          []*Event{{EventName: "Purchase", EventTime: 1, EventID: "e1", ActionSource: "website", EventSourceURL: "https://x/?a=1&b=2"}},
		PartnerAgent:  "capirelay",
		TestEventCode: "TEST1",
	}
	resp, err := c.Send(context.Background(), "123", req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.EventsReceived != 1 || resp.FBTraceID != "trace-ok" {
		t.Errorf("response = %+v", resp)
	}
	// A rotated token gets a fresh proof, not the cached one.
	token = "secret2"
	if _, err := c.Send(context.Background(), "123", req); err != nil {
		t.Fatal(err)
	}

	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/v26.0/123/events" || r.ContentType != "application/json" {
		t.Errorf("request line = %s %s (%s)", r.Method, r.Path, r.ContentType)
	}
	if r.RawQuery != "" {
		t.Errorf("query %q: credentials belong in the body", r.RawQuery)
	}
	b := r.Body
	if b.AccessToken != "token" || b.AppSecretProof != proofOfTokenKeyedBySecret {
		t.Errorf("credentials = %q, %q", b.AccessToken, b.AppSecretProof)
	}
	if b.PartnerAgent != "capirelay" || b.TestEventCode != "TEST1" || len(b.Data) != 1 || b.Data[0].EventSourceURL != "https://x/?a=1&b=2" {
		t.Errorf("body = %+v", b)
	}
	if got, want := reqs[1].Body.AppSecretProof, AppSecretProof([]byte("secret"), "secret2"); got != want {
		t.Errorf("proof after rotation = %s, want %s", got, want)
	}

	// Without an app secret no proof is sent.
	plain := f.client()
	if _, err := plain.Send(context.Background(), "9", req); err != nil {
		t.Fatal(err)
	}
	if got := f.requests()[2].Body.AppSecretProof; got != "" {
		t.Errorf("appsecret_proof %q sent without an app secret", got)
	}
}

// TestBodyBufferSized: a body the pool cannot supply is allocated at about its final size,
// from the size per event of the latest body, so encoding does not grow it by doubling.
func TestBodyBufferSized(t *testing.T) {
	f := newCAPIFake(t)
	c := f.client()
	events := make([]*Event, 200)
	for i := range events {
		events[i] = &Event{EventName: "Purchase", EventTime: 1, EventID: "e" + strconv.Itoa(i), ActionSource: "website",
			EventSourceURL: "https://shop.example.com/checkout/thanks?o=" + strconv.Itoa(i),
			User:           UserData{Em: []string{strings.Repeat("ab", 32)}, Ph: []string{strings.Repeat("cd", 32)}}}
	}
	if _, err := c.Send(context.Background(), "9", &Request{Data: events[:50]}); err != nil {
		t.Fatal(err)
	}
	if per := c.bytesPerEvent.Load(); per < 200 {
		t.Fatalf("bytes per event after a send = %d, want the body's rate (over 200)", per)
	}
	fresh := NewGraphClient()
	fresh.bytesPerEvent.Store(c.bytesPerEvent.Load())
	req := &Request{Data: events}
	buf := fresh.getBuffer(req)
	body, err := appendRequest(nil, req, "token", AppSecretProof([]byte("s"), "token"))
	if err != nil {
		t.Fatal(err)
	}
	if cap(*buf) < len(body) || cap(*buf) > 2*len(body) {
		t.Fatalf("fresh buffer holds %d bytes for a %d-byte body", cap(*buf), len(body))
	}
}

func TestGraphClientErrors(t *testing.T) {
	tests := []struct {
		name       string
		answer     capiAnswer
		class      Class
		code, sub  int
		retryAfter time.Duration
		contains   []string
	}{
		{
			name:     "expired token",
			answer:   graphAnswer(400, 190, 463, false, "Session has expired"),
			class:    ClassAuth,
			code:     190,
			sub:      463,
			contains: []string{"pixel 42", "HTTP 400", "code 190/463", "fbtrace_id trace-190-463", "Session has expired"},
		},
		{
			name:     "event too old",
			answer:   graphAnswer(400, 100, 2804003, false, "Invalid parameter"),
			class:    ClassInvalid,
			code:     100,
			sub:      2804003,
			contains: []string{"code 100/2804003", "Invalid parameter"},
		},
		{
			name:   "throttled with Retry-After",
			answer: withHeader(graphAnswer(400, 17, 2446079, false, "User request limit reached"), "Retry-After", "7"),
			class:  ClassRateLimit, code: 17, sub: 2446079, retryAfter: 7 * time.Second,
		},
		{
			name: "BUC throttle",
			answer: withHeader(graphAnswer(400, 80004, 2446079, false, "too many calls"),
				"X-Business-Use-Case-Usage", `{"1234":[{"type":"ads_management","call_count":100,"estimated_time_to_regain_access":3}]}`),
			class: ClassRateLimit, code: 80004, sub: 2446079, retryAfter: 3 * time.Minute,
		},
		{
			name:     "gateway error without Graph body",
			answer:   capiAnswer{status: 502, body: "<html>bad gateway</html>"},
			class:    ClassTransient,
			contains: []string{"HTTP 502", "without a Graph error"},
		},
		{
			name:   "transient flag wins over status",
			answer: graphAnswer(400, 100, 0, true, "try again"),
			class:  ClassTransient, code: 100,
		},
		{
			name:   "429 without body",
			answer: withHeader(capiAnswer{status: 429}, "Retry-After", "2"),
			class:  ClassRateLimit, retryAfter: 2 * time.Second,
		},
		{
			name:   "200 that is not a CAPI response",
			answer: capiAnswer{status: 200, body: "<html>login</html>"},
			class:  ClassUnknown,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCAPIFake(t)
			f.answer = func(*capiRequest, int) capiAnswer { return tt.answer }
			_, err := f.client().Send(context.Background(), "42", &Request{Data: []*Event{{EventName: "Lead"}}})
			ae, ok := errors.AsType[*APIError](err)
			if !ok {
				t.Fatalf("error %v (%T), want *APIError", err, err)
			}
			if ae.Class != tt.class || ae.Graph.Code != tt.code || ae.Graph.Subcode != tt.sub || ae.PixelID != "42" {
				t.Errorf("got class %v code %d/%d pixel %q, want %v %d/%d", ae.Class, ae.Graph.Code, ae.Graph.Subcode, ae.PixelID, tt.class, tt.code, tt.sub)
			}
			if ae.HTTPStatus != tt.answer.status {
				t.Errorf("HTTPStatus = %d, want %d", ae.HTTPStatus, tt.answer.status)
			}
			if ae.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", ae.RetryAfter, tt.retryAfter)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestGraphClientNoToken(t *testing.T) {
	f := newCAPIFake(t)
	c := NewGraphClient(WithBaseURL(f.srv.URL), WithTokenSource(func(string) (string, bool) { return "", false }))
	_, err := c.Send(context.Background(), "42", &Request{})
	if !errors.Is(err, ErrNoToken) || ClassOf(err) != ClassAuth {
		t.Fatalf("err = %v (class %v), want ErrNoToken, auth", err, ClassOf(err))
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent without a token", n)
	}
}

func TestGraphClientEncodeError(t *testing.T) {
	f := newCAPIFake(t)
	nan := 0.0
	nan /= nan
	_, err := f.client().Send(context.Background(), "42", &Request{Data: []*Event{{Custom: &CustomData{Value: &nan}}}})
	if !errors.Is(err, ErrEncodeRequest) || ClassOf(err) != ClassInvalid {
		t.Fatalf("err = %v, want ErrEncodeRequest, invalid", err)
	}
}

// echoTransport fails every request with an error quoting the request, as a careless proxy
// or instrumented transport might.
type echoTransport struct{}

func (echoTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	return nil, fmt.Errorf("refused %s?access_token=%s body %s", r.URL, "tok-42", body)
}

// TestTokenNeverLeaks drives every failure path through a Batcher and a GraphClient with an
// app secret and checks that neither the token nor the proof appears in any error, outcome
// or log line.
func TestTokenNeverLeaks(t *testing.T) {
	const token = "tok-42"
	proof := AppSecretProof([]byte("s3cret"), token)
	deadURL := func() string {
		f := newCAPIFake(t)
		u := f.srv.URL
		f.srv.Close()
		return u
	}()

	tests := []struct {
		name   string
		answer capiAnswer
		client func(f *capiFake) []ClientOption
	}{
		{name: "invalid token", answer: graphAnswer(400, 190, 467, false, "Invalid OAuth access token")},
		{name: "server error", answer: capiAnswer{status: 500, body: "oops"}},
		{name: "invalid event", answer: graphAnswer(400, 100, 0, false, "bad")},
		{name: "message echoes token", answer: graphAnswer(400, 190, 0, false, "token "+token+" proof "+proof+" is bad")},
		{name: "throttled", answer: withHeader(graphAnswer(400, 4, 0, false, "app limit"), "Retry-After", "0")},
		{name: "connection refused", client: func(*capiFake) []ClientOption {
			return []ClientOption{WithBaseURL(deadURL), WithHTTPClient(&http.Client{})}
		}},
		{name: "transport echoes request", client: func(*capiFake) []ClientOption {
			return []ClientOption{WithHTTPClient(&http.Client{Transport: echoTransport{}})}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCAPIFake(t)
			f.answer = func(*capiRequest, int) capiAnswer { return tt.answer }
			opts := []ClientOption{WithAppSecret("s3cret")}
			if tt.client != nil {
				opts = append(opts, tt.client(f)...)
			}
			c := f.client(opts...)

			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			b := newTestBatcher(t, c, WithLogger(logger), WithLinger(0), WithRetry(time.Millisecond, 2*time.Millisecond, 20*time.Millisecond))
			rec := newOutcomeRecorder()
			for i := range 3 {
				submit(t, b, rec, "42", fmt.Sprintf("e%d", i), "Lead")
			}
			if err := b.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err := c.Send(context.Background(), "42", &Request{Data: []*Event{{EventName: "x"}}})

			var texts []string
			texts = append(texts, logs.String())
			if err != nil {
				texts = append(texts, err.Error(), fmt.Sprintf("%+v %#v", err, err))
			}
			for _, o := range rec.all() {
				texts = append(texts, o.Message, fmt.Sprint(o.Err), fmt.Sprintf("%+v", o))
			}
			for _, s := range texts {
				if strings.Contains(s, token) || strings.Contains(s, proof) {
					t.Errorf("secret leaked: %s", s)
				}
			}
			if len(rec.all()) != 3 {
				t.Errorf("%d outcomes, want 3", len(rec.all()))
			}
		})
	}
}

func withHeader(a capiAnswer, k, v string) capiAnswer {
	if a.header == nil {
		a.header = http.Header{}
	}
	a.header.Set(k, v)
	return a
}
