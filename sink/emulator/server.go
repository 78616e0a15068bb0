package emulator

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Defaults. The body cap is the emulator's own: Meta documents no byte limit.
const (
	DefaultFutureSkew = 5 * time.Minute
	maxAge            = 7 * 24 * time.Hour // [D-srv]
	maxEvents         = 1000               // [D-use]
	maxBodyBytes      = 32 << 20
)

// defaultVersions are the Graph versions accepted unless WithAPIVersions says otherwise: the
// docs use v25.0, the newest Node SDK v26.0, and a version lives at least two years [D-use].
var defaultVersions = []string{"v21.0", "v22.0", "v23.0", "v24.0", "v25.0", "v26.0"}

var versionRE = regexp.MustCompile(`^v\d+\.\d+$`)

// Received is one event the emulator accepted, as it came over the wire.
type Received struct {
	PixelID       string `json:"pixel_id"`
	EventName     string `json:"event_name"`
	EventID       string `json:"event_id,omitempty"`
	TestEventCode string `json:"test_event_code,omitempty"`
	// Test marks an event sent with a test_event_code: it would show in Events Manager's
	// Test Events tab as well as in the dataset, since Meta does not drop test events [D-use].
	Test         bool            `json:"test"`
	PartnerAgent string          `json:"partner_agent,omitempty"`
	ReceivedAt   time.Time       `json:"received_at"`
	Raw          json.RawMessage `json:"event"`
}

// Stats counts what the emulator answered since New or the last Reset.
type Stats struct {
	Requests       int         `json:"requests"`
	Accepted       int         `json:"accepted"`
	EventsReceived int         `json:"events_received"`
	RejectedByCode map[int]int `json:"rejected_by_code"`
	// Faults counts injected faults by FaultKind. A timeout_after_accept request is also
	// counted in Accepted and EventsReceived: its events were stored.
	Faults map[string]int `json:"faults"`
	// Abandoned counts requests whose client went away during injected latency; nothing of
	// theirs was processed.
	Abandoned int `json:"abandoned"`
}

// FaultRequest describes an authenticated, parsed request to a Fault hook.
type FaultRequest struct {
	PixelID string
	Version string
	Events  int
}

// FaultResponse is what a Fault hook answers instead of the emulator.
type FaultResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// Fault is a low-level seam for fault injection: it sees each request that passed
// authentication, parsing and the injected faults of FaultConfig, before event validation,
// and may answer it instead (return nil to let it through).
// Nothing stored when it answers. It is called concurrently.
type Fault func(FaultRequest) *FaultResponse

// Option configures a Server.
type Option func(*Server)

// WithPixel accepts pixelID with token. Without any WithPixel the emulator is open: every
// numeric pixel id accepts any non-empty token (handy for `capirelay emulator` by hand).
func WithPixel(pixelID, token string) Option {
	return func(s *Server) { s.pixels[pixelID] = token }
}

// WithAppSecret requires appsecret_proof = hex HMAC-SHA256(secret, access_token) on every
// request, as an app with "Require App Secret" does [G-sec].
func WithAppSecret(secret string) Option {
	return func(s *Server) { s.appSecret = []byte(secret) }
}

// WithClock sets the clock event times are judged against.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLogger sets where the emulator logs one line per request (never tokens or event data).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithFutureSkew sets how far ahead of the clock event_time may be. Meta documents no limit
// (reports say future events fail [I-ads3]); the default is DefaultFutureSkew.
func WithFutureSkew(d time.Duration) Option { return func(s *Server) { s.futureSkew = d } }

// WithAPIVersions replaces the accepted Graph versions ("v25.0", …).
func WithAPIVersions(versions ...string) Option {
	return func(s *Server) { s.versions = slices.Clone(versions) }
}

// WithFault installs a fault-injection hook.
func WithFault(f Fault) Option { return func(s *Server) { s.fault = f } }

// Server is an in-process Conversions API endpoint. It is an http.Handler; all methods are
// safe for concurrent use.
type Server struct {
	pixels     map[string]string // pixel id → token; read-only after New
	tokens     map[string]bool   // every configured token; read-only after New
	appSecret  []byte
	now        func() time.Time
	log        *slog.Logger
	futureSkew time.Duration
	versions   []string
	fault      Fault
	faults     *injector
	initFaults *FaultConfig // from WithFaults, applied once every option has run
	mux        *http.ServeMux

	mu       sync.Mutex
	received []Received
	stats    Stats
}

// New returns a Server configured by opts.
func New(opts ...Option) *Server {
	s := &Server{
		pixels:     map[string]string{},
		tokens:     map[string]bool{},
		now:        time.Now,
		log:        slog.New(slog.DiscardHandler),
		futureSkew: DefaultFutureSkew,
		versions:   defaultVersions,
		stats:      newStats(),
		faults:     newInjector(),
	}
	for _, o := range opts {
		o(s)
	}
	if s.initFaults != nil {
		if err := s.SetFaults(*s.initFaults); err != nil {
			panic("emulator: WithFaults: " + err.Error())
		}
	}
	for _, tok := range s.pixels {
		s.tokens[tok] = true
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/{version}/{pixel_id}/events", s.handleEvents)
	s.mux.HandleFunc("GET /_emulator/events", s.handleList)
	s.mux.HandleFunc("GET /_emulator/stats", s.handleStats)
	s.mux.HandleFunc("/_emulator/faults", s.handleFaults)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.reject(w, "", 0, &graphError{
			Message: "Unknown path components: " + r.URL.Path,
			Type:    "OAuthException", Code: CodeUnknownPath, status: http.StatusBadRequest,
		})
	})
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Received returns a copy of every accepted event, oldest first.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.RejectedByCode = maps.Clone(s.stats.RejectedByCode)
	st.Faults = maps.Clone(s.stats.Faults)
	return st
}

// TestEvents returns the accepted events sent with test_event_code code, oldest first, as
// Events Manager's Test Events tab lists them; code "" returns those of every test code.
// Received still includes them, marked, because Meta keeps test events in the dataset too
// [D-use].
func (s *Server) TestEvents(code string) []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Received
	for _, ev := range s.received {
		if ev.Test && (code == "" || ev.TestEventCode == code) {
			out = append(out, ev)
		}
	}
	return out
}

func newStats() Stats {
	return Stats{RejectedByCode: map[int]int{}, Faults: map[string]int{}}
}

// Reset forgets accepted events and zeroes the counters.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = nil
	s.stats = newStats()
}

// request is what the emulator reads from one POST, wherever each parameter came from.
type request struct {
	token, proof  string
	data          []byte // the "data" parameter, a JSON array; nil when absent
	testEventCode string
	partnerAgent  string
	bodyErr       *graphError // reported only once the caller is authenticated
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	version, pixelID := r.PathValue("version"), r.PathValue("pixel_id")
	if gerr := s.checkVersion(version, r.URL.Path); gerr != nil {
		s.reject(w, pixelID, 0, gerr)
		return
	}
	if r.Method != http.MethodPost {
		s.reject(w, pixelID, 0, &graphError{
			Message: "Unsupported " + r.Method + " request.", Type: "GraphMethodException",
			Code: CodeInvalidParameter, status: http.StatusBadRequest,
		})
		return
	}
	req := parseRequest(w, r)
	// Infrastructure faults (an outage, latency) come before Graph looks at the request, so
	// they hit every request for the pixel; Graph-level errors come after authentication and
	// the request checks, so a test's own mistakes still get their real answer.
	p := s.faults.decide(pixelID)
	if p.kind == FaultOutage {
		s.injectOutage(w, pixelID, p.outageMode)
		return
	}
	if !sleep(r.Context(), p.latency) {
		// The client gave up while "Meta" was slow: nothing was processed.
		s.count(func(st *Stats) { st.Requests++; st.Abandoned++ })
		return
	}
	if gerr := s.authenticate(pixelID, req); gerr != nil {
		if gerr.Code == CodeOAuth {
			w.Header().Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token"`)
		}
		s.reject(w, pixelID, 0, gerr)
		return
	}
	if req.bodyErr != nil {
		s.reject(w, pixelID, 0, req.bodyErr)
		return
	}
	events, gerr := checkRequest(req)
	if gerr != nil {
		s.reject(w, pixelID, len(events), gerr)
		return
	}
	switch p.kind {
	case FaultTransient, FaultRateLimit, FaultAuth, FaultPermission:
		s.injectError(w, pixelID, p)
		return
	case FaultTimeout:
		s.countFault(FaultTimeout, nil)
		s.log.Info("emulator injected fault", "pixel_id", pixelID, "fault", string(FaultTimeout))
		holdThenFail(r.Context(), w, p.hold)
		return
	}
	if s.fault != nil {
		if fr := s.fault(FaultRequest{PixelID: pixelID, Version: version, Events: len(events)}); fr != nil {
			s.count(func(st *Stats) { st.Requests++ })
			for k, vs := range fr.Header {
				w.Header()[k] = vs
			}
			w.WriteHeader(fr.Status)
			_, _ = w.Write(fr.Body)
			return
		}
	}
	now := s.now()
	accepted := make([]Received, len(events))
	for i, raw := range events {
		ev, gerr := validateEvent(i, raw, now, s.futureSkew)
		if gerr != nil {
			// One invalid event rejects the whole request and nothing is kept [D-use].
			s.reject(w, pixelID, len(events), gerr)
			return
		}
		accepted[i] = Received{
			PixelID: pixelID, EventName: ev.name, EventID: ev.id,
			TestEventCode: req.testEventCode, Test: req.testEventCode != "",
			PartnerAgent: req.partnerAgent, ReceivedAt: now,
			// A copy, so that kept events pin neither the whole body nor its access_token.
			Raw: bytes.Clone(raw),
		}
	}
	s.mu.Lock()
	s.received = append(s.received, accepted...)
	s.stats.Requests++
	s.stats.Accepted++
	s.stats.EventsReceived += len(accepted)
	if p.kind == FaultTimeoutAfterAccept {
		s.stats.Faults[string(FaultTimeoutAfterAccept)]++
	}
	s.mu.Unlock()

	if p.kind == FaultTimeoutAfterAccept {
		// Stored, but the answer never comes: the client cannot tell this from FaultTimeout,
		// and a retry sends the same events a second time.
		s.log.Info("emulator injected fault", "pixel_id", pixelID, "events", len(accepted),
			"fault", string(FaultTimeoutAfterAccept))
		holdThenFail(r.Context(), w, p.hold)
		return
	}

	trace := traceID()
	s.log.Debug("emulator accepted", "pixel_id", pixelID, "events", len(accepted), "fbtrace_id", trace)
	writeJSON(w, http.StatusOK, trace, map[string]any{
		"events_received": len(accepted), "messages": []string{}, "fbtrace_id": trace,
	})
}

func (s *Server) checkVersion(version, path string) *graphError {
	if !versionRE.MatchString(version) {
		return &graphError{Message: "Unknown path components: " + path, Type: "OAuthException",
			Code: CodeUnknownPath, status: http.StatusBadRequest}
	}
	if slices.Contains(s.versions, version) {
		return nil
	}
	latest := ""
	for _, v := range s.versions {
		if latest == "" || versionLess(latest, v) {
			latest = v
		}
	}
	if latest != "" && versionLess(version, latest) {
		return &graphError{
			Message: "(#2635) You are calling a deprecated version of the Ads API. Please update to the latest version: " + latest + ".",
			Type:    "OAuthException", Code: CodeDeprecatedAPI, status: http.StatusBadRequest,
		}
	}
	return &graphError{Message: "Unknown path components: " + path, Type: "OAuthException",
		Code: CodeUnknownPath, status: http.StatusBadRequest}
}

// versionLess compares "vMAJOR.MINOR" strings numerically.
func versionLess(a, b string) bool {
	am, an := splitVersion(a)
	bm, bn := splitVersion(b)
	return am < bm || am == bm && an < bn
}

func splitVersion(v string) (int, int) {
	dot := bytes.IndexByte([]byte(v), '.')
	if len(v) < 2 || dot < 0 {
		return 0, 0
	}
	major, _ := strconv.Atoi(v[1:dot])
	minor, _ := strconv.Atoi(v[dot+1:])
	return major, minor
}

// parseRequest reads the parameters from the query string and from a JSON, urlencoded or
// multipart body, as Graph takes them [D-use]. A broken body is remembered rather than
// reported so that an unauthenticated caller learns nothing about its payload.
func parseRequest(w http.ResponseWriter, r *http.Request) *request {
	q := r.URL.Query()
	req := &request{
		token: q.Get("access_token"), proof: q.Get("appsecret_proof"),
		testEventCode: q.Get("test_event_code"), partnerAgent: q.Get("partner_agent"),
	}
	if d := q.Get("data"); d != "" {
		req.data = []byte(d)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	ct := r.Header.Get("Content-Type")
	mt := ""
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			req.bodyErr = requestError(SubcodeMalformedBody, "Malformed Request", "The Content-Type header could not be parsed.")
			return req
		}
	}
	switch mt {
	case "application/json":
		body, err := readBody(r)
		if err != nil {
			req.bodyErr = requestError(SubcodeMalformedBody, "Malformed Request", "The request body could not be read.")
			return req
		}
		fields, err := splitObject(body)
		if err != nil {
			req.bodyErr = requestError(SubcodeMalformedBody, "Malformed Request", "The request body is not a JSON object.")
			return req
		}
		str := func(key string, dst *string) {
			raw, ok := fields[key]
			if !ok || *dst != "" {
				return
			}
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				req.bodyErr = requestError(SubcodeMalformedBody, "Malformed Request", "The parameter "+key+" must be a string.")
				return
			}
			*dst = v
		}
		str("access_token", &req.token)
		str("appsecret_proof", &req.proof)
		str("test_event_code", &req.testEventCode)
		str("partner_agent", &req.partnerAgent)
		if d, ok := fields["data"]; ok {
			req.data = d
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		var err error
		if mt == "multipart/form-data" {
			err = r.ParseMultipartForm(maxBodyBytes)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			req.bodyErr = requestError(SubcodeMalformedBody, "Malformed Request", "The form body could not be parsed.")
			return req
		}
		form := r.PostForm
		setIf := func(key string, dst *string) {
			if v := form.Get(key); v != "" && *dst == "" {
				*dst = v
			}
		}
		setIf("access_token", &req.token)
		setIf("appsecret_proof", &req.proof)
		setIf("test_event_code", &req.testEventCode)
		setIf("partner_agent", &req.partnerAgent)
		if d := form.Get("data"); d != "" {
			req.data = []byte(d)
		}
	case "":
		// No body: parameters may all be in the query string.
	default:
		req.bodyErr = requestError(SubcodeMalformedBody, "Malformed Request", "Unsupported Content-Type "+mt+".")
	}
	return req
}

// authenticate applies Graph's order: token first, then appsecret_proof, then whether the
// token may post to this object [G-err, G-sec, C-rs].
func (s *Server) authenticate(pixelID string, req *request) *graphError {
	if req.token == "" {
		return &graphError{Message: "An access token is required to request this resource.",
			Type: "OAuthException", Code: CodeOAuth, status: http.StatusBadRequest}
	}
	open := len(s.pixels) == 0
	if !open && !s.knownToken(req.token) {
		return &graphError{Message: "Invalid OAuth access token - Cannot parse access token",
			Type: "OAuthException", Code: CodeOAuth, Subcode: SubcodeInvalidToken, status: http.StatusBadRequest}
	}
	if s.appSecret != nil {
		if req.proof == "" {
			return &graphError{Message: "API calls from the server require an appsecret_proof argument",
				Type: "GraphMethodException", Code: CodeInvalidParameter, status: http.StatusBadRequest}
		}
		mac := hmac.New(sha256.New, s.appSecret)
		mac.Write([]byte(req.token))
		want := hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(want), []byte(req.proof)) {
			return &graphError{Message: "Invalid appsecret_proof provided in the API argument",
				Type: "GraphMethodException", Code: CodeInvalidParameter, status: http.StatusBadRequest}
		}
	}
	tok, known := s.pixels[pixelID]
	if open {
		known, tok = isDigits(pixelID), req.token
	}
	if !known || subtle.ConstantTimeCompare([]byte(tok), []byte(req.token)) != 1 {
		return &graphError{
			Message: "Unsupported post request. Object with ID '" + pixelID + "' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
			Type:    "GraphMethodException", Code: CodeInvalidParameter, Subcode: SubcodeObjectNotFound,
			status: http.StatusBadRequest,
		}
	}
	return nil
}

func (s *Server) knownToken(tok string) bool {
	found := 0
	for t := range s.tokens {
		found |= subtle.ConstantTimeCompare([]byte(t), []byte(tok))
	}
	return found == 1
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// readBody reads the (size-capped) body in one buffer sized from Content-Length: io.ReadAll
// grows from 512 bytes and was a quarter of the emulator's CPU on ~1 MB batches.
func readBody(r *http.Request) ([]byte, error) {
	size := int64(512)
	if r.ContentLength > 0 {
		size = min(r.ContentLength, maxBodyBytes) + bytes.MinRead // ReadFrom wants MinRead free to try for EOF
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(r.Body)
	return buf.Bytes(), err
}

// checkRequest applies the request-level rules: data present, an array of 1..1000 events
// [D-use, D-main], partner_agent shape [D-e2e].
func checkRequest(req *request) ([][]byte, *graphError) {
	if len(bytes.TrimSpace(req.data)) == 0 {
		return nil, requestError(SubcodeEmptyData, "Missing Data", "The parameter data is required.")
	}
	events, err := splitArray(req.data)
	if err != nil {
		return nil, requestError(SubcodeMalformedBody, "Malformed Data", "The parameter data must be a JSON array of events.")
	}
	if len(events) == 0 {
		return nil, requestError(SubcodeEmptyData, "Missing Data", "The parameter data must contain at least one event.")
	}
	if len(events) > maxEvents {
		return events, requestError(SubcodeTooManyEvents, "Too Many Events",
			"A request can contain at most 1000 events; this one has "+strconv.Itoa(len(events))+".")
	}
	if req.partnerAgent != "" && !validPartnerAgent(req.partnerAgent) {
		return events, requestError(SubcodePartnerAgent, "Invalid Partner Agent",
			"The parameter partner_agent must be fewer than 23 characters and contain at least two letters.")
	}
	return events, nil
}

// reject writes a Graph error body and counts it.
func (s *Server) reject(w http.ResponseWriter, pixelID string, events int, gerr *graphError) {
	gerr.FBTraceID = traceID()
	s.count(func(st *Stats) {
		st.Requests++
		st.RejectedByCode[gerr.Code]++
	})
	s.log.Info("emulator rejected", "pixel_id", pixelID, "events", events,
		"code", gerr.Code, "error_subcode", gerr.Subcode, "fbtrace_id", gerr.FBTraceID)
	writeJSON(w, gerr.status, gerr.FBTraceID, map[string]*graphError{"error": gerr})
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

func writeJSON(w http.ResponseWriter, status int, trace string, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	if trace != "" {
		h.Set("X-FB-Trace-ID", trace)
	}
	w.WriteHeader(status)
	// An encode error means the client went away; there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// handleList serves GET /_emulator/events. Every accepted event is listed, test events
// marked with "test": true; ?test=1 lists only test events (Events Manager's Test Events
// tab), ?test=0 only the others; ?test_event_code=CODE narrows to one code and
// ?pixel_id=ID to one pixel.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pixel, code := q.Get("pixel_id"), q.Get("test_event_code")
	var test *bool
	if v := q.Get("test"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			adminError(w, fmt.Errorf("events: test=%q: want 1 or 0", v))
			return
		}
		test = &b
	}
	all := s.Received()
	out := make([]Received, 0, len(all))
	for _, ev := range all {
		if (pixel == "" || ev.PixelID == pixel) &&
			(test == nil || ev.Test == *test) &&
			(code == "" || ev.TestEventCode == code) {
			out = append(out, ev)
		}
	}
	writeJSON(w, http.StatusOK, "", map[string]any{"data": out})
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, "", s.Stats())
}

const traceAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// traceID mimics Meta's 11-character fbtrace_id; it only has to be unique enough to follow a
// request through logs.
func traceID() string {
	var b [11]byte
	for i := range b {
		b[i] = traceAlphabet[rand.IntN(len(traceAlphabet))]
	}
	return string(b[:])
}
