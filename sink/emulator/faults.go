package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// FaultKind names one kind of injected fault. The values are the keys of Stats.Faults and
// of FaultState.Injected.
type FaultKind string

// The fault kinds. See FaultConfig for what each one answers.
const (
	FaultTransient          FaultKind = "transient"
	FaultRateLimit          FaultKind = "rate_limit"
	FaultAuth               FaultKind = "auth"
	FaultPermission         FaultKind = "permission"
	FaultTimeout            FaultKind = "timeout"
	FaultTimeoutAfterAccept FaultKind = "timeout_after_accept"
	FaultOutage             FaultKind = "outage"
)

// Outage modes.
const (
	// OutageReset hijacks the connection and closes it with an RST (SO_LINGER 0), as a load
	// balancer dropping a dead backend does: the client sees a transport error, not an answer.
	// Where the connection cannot be hijacked (HTTP/2, httptest.ResponseRecorder) it falls
	// back to OutageUnavailable.
	OutageReset = "reset"
	// OutageUnavailable answers HTTP 503 with Graph code 2, is_transient true.
	OutageUnavailable = "503"
)

// Fault defaults.
const (
	// DefaultTimeoutHold bounds how long a timeout fault holds a request whose client does not
	// give up; then it answers 504. It is above the sink's 30 s request timeout so that, with
	// defaults, the client always gives up first, as it would against a hung Meta.
	DefaultTimeoutHold = 35 * time.Second
	// DefaultRetryAfter is the wait a rate-limit answer advertises.
	DefaultRetryAfter = time.Minute
	// lognormalCapFactor caps a lognormal latency draw at this multiple of p99, so that one
	// draw from the tail cannot stall a test for minutes.
	lognormalCapFactor = 10
	// z99 is the standard normal quantile at 0.99: p99 = p50·exp(σ·z99).
	z99 = 2.3263478740408408
)

// Duration is a time.Duration that JSON reads and writes as a Go duration string ("250ms",
// "1m30s"), so that the admin endpoint's bodies are written the way the flags are.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string. Bare numbers are refused: "is 5 seconds or
// milliseconds?" is exactly the mistake the string form avoids.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"250ms\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// FaultConfig says which faults the emulator injects. The zero value injects nothing. It is
// what WithFaults takes and what POST /_emulator/faults reads (as JSON, with the field names
// in the tags; durations as strings such as "250ms").
//
// Each request to a targeted pixel is decided once, in this order:
//
//  1. Outage window: inside [OutageAt, OutageAt+OutageFor) every request fails per
//     OutageMode.
//  2. Rate-limit burst: while RateLimitNext requests remain, or inside RateLimitFor, the
//     request is answered as a rate limit.
//  3. Otherwise one uniform draw picks at most one of the rate faults (Transient, RateLimit,
//     Auth, Permission, Timeout, TimeoutAfterAccept, in that order; their sum must be ≤ 1).
//
// Latency applies to every targeted request except outages. The times of windows count
// from when the configuration is applied (New, SetFaults, POST).
type FaultConfig struct {
	// Transient is the probability of HTTP 500 with Graph code 1 (unknown error) or 2
	// (service temporarily unavailable), is_transient true [G-err].
	Transient float64 `json:"transient,omitempty"`
	// RateLimit is the probability of a throttle: code 17/2446079 (HTTP 400) or
	// 80004/2446079 (HTTP 429) [G-rl], with Retry-After, X-Business-Use-Case-Usage and
	// X-App-Usage headers that all agree with RetryAfter.
	RateLimit float64 `json:"rate_limit,omitempty"`
	// Auth is the probability of code 190/463, an expired token (HTTP 400 with
	// WWW-Authenticate, as the emulator's real token errors).
	Auth float64 `json:"auth,omitempty"`
	// Permission is the probability of code 10 (HTTP 400) or code 200 (HTTP 403) [G-err].
	Permission float64 `json:"permission,omitempty"`
	// Timeout is the probability that the request is held, without being processed, until the
	// client gives up or TimeoutHold passes (then HTTP 504, code 2, is_transient). Nothing is
	// stored: Meta never saw it.
	Timeout float64 `json:"timeout,omitempty"`
	// TimeoutAfterAccept is the probability that a valid request is stored and then held like
	// Timeout: Meta processed it but the answer never arrived, so a retry duplicates it.
	// An invalid request is rejected as usual, without holding.
	TimeoutAfterAccept float64 `json:"timeout_after_accept,omitempty"`

	// Latency is added to every targeted request, plus a uniform draw from [0, Jitter).
	Latency Duration `json:"latency,omitempty"`
	Jitter  Duration `json:"jitter,omitempty"`
	// LatencyP50 and LatencyP99, both set, replace Latency and Jitter by a lognormal with that
	// median and 99th percentile (capped at 10×p99): a long tail like a real API's.
	LatencyP50 Duration `json:"latency_p50,omitempty"`
	LatencyP99 Duration `json:"latency_p99,omitempty"`

	// TimeoutHold bounds how long timeouts hold a request; 0 means DefaultTimeoutHold.
	TimeoutHold Duration `json:"timeout_hold,omitempty"`

	// RateLimitNext makes the next N targeted requests rate limited.
	RateLimitNext int `json:"rate_limit_next,omitempty"`
	// RateLimitFor makes every targeted request rate limited for this long.
	RateLimitFor Duration `json:"rate_limit_for,omitempty"`
	// RetryAfter is the wait rate-limit answers advertise; 0 means DefaultRetryAfter.
	RetryAfter Duration `json:"retry_after,omitempty"`

	// OutageFor is the length of a full outage starting OutageAt from now.
	OutageAt  Duration `json:"outage_at,omitempty"`
	OutageFor Duration `json:"outage_for,omitempty"`
	// OutageMode is OutageReset (the default) or OutageUnavailable.
	OutageMode string `json:"outage_mode,omitempty"`

	// Pixels, when set, limits every fault (and latency) to requests for these pixels;
	// other pixels are answered normally and draw nothing from the RNG.
	Pixels []string `json:"pixels,omitempty"`

	// Seed, when set, reseeds the fault RNG as the configuration is applied, so that the
	// same sequence of requests gets the same faults.
	Seed *uint64 `json:"seed,omitempty"`
}

// Validate reports the first thing wrong with c.
func (c *FaultConfig) Validate() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"transient", c.Transient}, {"rate_limit", c.RateLimit}, {"auth", c.Auth},
		{"permission", c.Permission}, {"timeout", c.Timeout}, {"timeout_after_accept", c.TimeoutAfterAccept},
	}
	sum := 0.0
	for _, r := range rates {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			return fmt.Errorf("faults: %s rate %v outside [0, 1]", r.name, r.v)
		}
		sum += r.v
	}
	// One draw chooses among the rates, so together they cannot exceed certainty.
	if sum > 1+1e-9 {
		return fmt.Errorf("faults: error and timeout rates add up to %v, more than 1", sum)
	}
	durations := []struct {
		name string
		v    Duration
	}{
		{"latency", c.Latency}, {"jitter", c.Jitter}, {"latency_p50", c.LatencyP50},
		{"latency_p99", c.LatencyP99}, {"timeout_hold", c.TimeoutHold}, {"rate_limit_for", c.RateLimitFor},
		{"retry_after", c.RetryAfter}, {"outage_at", c.OutageAt}, {"outage_for", c.OutageFor},
	}
	for _, d := range durations {
		if d.v < 0 {
			return fmt.Errorf("faults: %s %v is negative", d.name, time.Duration(d.v))
		}
	}
	if (c.LatencyP50 > 0) != (c.LatencyP99 > 0) {
		return errors.New("faults: latency_p50 and latency_p99 go together")
	}
	if c.LatencyP50 > 0 {
		if c.LatencyP99 < c.LatencyP50 {
			return fmt.Errorf("faults: latency_p99 %v is below latency_p50 %v",
				time.Duration(c.LatencyP99), time.Duration(c.LatencyP50))
		}
		if c.Latency > 0 || c.Jitter > 0 {
			return errors.New("faults: latency/jitter and latency_p50/latency_p99 are two distributions; choose one")
		}
	}
	if c.RateLimitNext < 0 {
		return fmt.Errorf("faults: rate_limit_next %d is negative", c.RateLimitNext)
	}
	if c.OutageAt > 0 && c.OutageFor == 0 {
		return errors.New("faults: outage_at needs outage_for")
	}
	switch c.OutageMode {
	case "", OutageReset, OutageUnavailable:
	default:
		return fmt.Errorf("faults: outage_mode %q: want %q or %q", c.OutageMode, OutageReset, OutageUnavailable)
	}
	for _, p := range c.Pixels {
		if !isDigits(p) {
			return fmt.Errorf("faults: pixel %q is not a numeric id", p)
		}
	}
	return nil
}

// FaultState is the configuration in force and where its one-off parts stand: what
// GET /_emulator/faults answers and FaultStatus returns.
type FaultState struct {
	Config FaultConfig `json:"config"`
	// RateLimitRemaining counts what is left of RateLimitNext.
	RateLimitRemaining int `json:"rate_limit_remaining"`
	// RateLimitUntil, OutageFrom and OutageUntil are the windows as absolute times (fault
	// clock); nil when not configured.
	RateLimitUntil *time.Time `json:"rate_limit_until,omitempty"`
	OutageFrom     *time.Time `json:"outage_from,omitempty"`
	OutageUntil    *time.Time `json:"outage_until,omitempty"`
	// Injected counts faults by kind since New or the last Reset (as Stats.Faults).
	Injected map[FaultKind]int `json:"injected"`
}

// WithFaults installs a fault configuration at start. An invalid configuration is a
// programming error and makes New panic; check input from people with Validate first (the
// admin endpoint and `capirelay emulator` do).
func WithFaults(c FaultConfig) Option {
	return func(s *Server) { s.initFaults = &c }
}

// WithFaultSeed seeds the fault RNG (default 1), so that a test's faults repeat run after
// run. A FaultConfig.Seed applied later reseeds it.
func WithFaultSeed(seed uint64) Option { return func(s *Server) { s.faults.seed(seed) } }

// WithFaultClock sets the clock fault windows (outages, rate-limit windows) are measured
// with. It is separate from WithClock, which tests usually freeze: a frozen clock would
// make an outage last forever. Latency and timeouts always use real timers.
func WithFaultClock(now func() time.Time) Option {
	return func(s *Server) { s.faults.now = now }
}

// SetFaults replaces the fault configuration; windows and bursts start over from now.
func (s *Server) SetFaults(c FaultConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s.faults.set(c)
	return nil
}

// ClearFaults removes every fault; counters are kept until Reset.
func (s *Server) ClearFaults() { s.faults.set(FaultConfig{}) }

// FaultStatus returns the configuration in force and its progress.
func (s *Server) FaultStatus() FaultState {
	st := s.faults.state()
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Injected = make(map[FaultKind]int, len(s.stats.Faults))
	for k, v := range s.stats.Faults {
		st.Injected[FaultKind(k)] = v
	}
	return st
}

// injector decides which fault each request gets. It has its own lock so that a request
// sleeping on latency never holds the server's.
type injector struct {
	now func() time.Time

	mu          sync.Mutex
	rng         *rand.Rand
	cfg         FaultConfig
	pixels      map[string]bool
	active      bool // cfg injects something; when false decide draws nothing
	burstLeft   int
	burstUntil  time.Time
	outageFrom  time.Time
	outageUntil time.Time
}

func newInjector() *injector {
	inj := &injector{now: time.Now}
	inj.seed(1)
	return inj
}

func (inj *injector) seed(seed uint64) {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	// PCG's second word is a fixed odd constant: any seed, including 0, gives a good stream.
	inj.rng = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

func (inj *injector) set(c FaultConfig) {
	c.Pixels = slices.Clone(c.Pixels)
	if c.Seed != nil { // keep our own copy: the caller may reuse its variable
		v := *c.Seed
		c.Seed = &v
	}
	now := inj.now()
	inj.mu.Lock()
	defer inj.mu.Unlock()
	if c.Seed != nil {
		inj.rng = rand.New(rand.NewPCG(*c.Seed, 0x9e3779b97f4a7c15))
	}
	inj.cfg = c
	inj.pixels = nil
	if len(c.Pixels) > 0 {
		inj.pixels = make(map[string]bool, len(c.Pixels))
		for _, p := range c.Pixels {
			inj.pixels[p] = true
		}
	}
	inj.burstLeft = c.RateLimitNext
	inj.burstUntil, inj.outageFrom, inj.outageUntil = time.Time{}, time.Time{}, time.Time{}
	if c.RateLimitFor > 0 {
		inj.burstUntil = now.Add(time.Duration(c.RateLimitFor))
	}
	if c.OutageFor > 0 {
		inj.outageFrom = now.Add(time.Duration(c.OutageAt))
		inj.outageUntil = inj.outageFrom.Add(time.Duration(c.OutageFor))
	}
	inj.active = c.Transient+c.RateLimit+c.Auth+c.Permission+c.Timeout+c.TimeoutAfterAccept > 0 ||
		c.Latency > 0 || c.Jitter > 0 || c.LatencyP50 > 0 || c.RateLimitNext > 0 ||
		c.RateLimitFor > 0 || c.OutageFor > 0
}

func (inj *injector) state() FaultState {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	st := FaultState{Config: inj.cfg, RateLimitRemaining: inj.burstLeft}
	st.Config.Pixels = slices.Clone(inj.cfg.Pixels)
	if !inj.burstUntil.IsZero() {
		t := inj.burstUntil
		st.RateLimitUntil = &t
	}
	if !inj.outageUntil.IsZero() {
		from, until := inj.outageFrom, inj.outageUntil
		st.OutageFrom, st.OutageUntil = &from, &until
	}
	return st
}

// plan is what happens to one request.
type plan struct {
	kind       FaultKind // "" for none
	latency    time.Duration
	variant    int // which of a kind's codes (0 or 1)
	hold       time.Duration
	retryAfter time.Duration
	outageMode string
}

// decide draws the plan for one request to pixelID. Requests to untargeted pixels, and all
// requests while nothing is configured, draw nothing, so they cannot shift the sequence a
// seeded test expects for its target.
func (inj *injector) decide(pixelID string) plan {
	now := inj.now()
	inj.mu.Lock()
	defer inj.mu.Unlock()
	c := &inj.cfg
	if !inj.active || (inj.pixels != nil && !inj.pixels[pixelID]) {
		return plan{}
	}
	p := plan{
		hold:       time.Duration(c.TimeoutHold),
		retryAfter: time.Duration(c.RetryAfter),
		outageMode: c.OutageMode,
	}
	if p.hold == 0 {
		p.hold = DefaultTimeoutHold
	}
	if p.retryAfter == 0 {
		p.retryAfter = DefaultRetryAfter
	}
	if !inj.outageUntil.IsZero() && !now.Before(inj.outageFrom) && now.Before(inj.outageUntil) {
		p.kind = FaultOutage
		return p
	}
	p.latency = inj.latency()
	switch {
	case inj.burstLeft > 0:
		inj.burstLeft--
		p.kind = FaultRateLimit
	case now.Before(inj.burstUntil):
		p.kind = FaultRateLimit
	default:
		p.kind = inj.drawKind()
	}
	if p.kind == FaultTransient || p.kind == FaultRateLimit || p.kind == FaultPermission {
		p.variant = inj.rng.IntN(2)
	}
	return p
}

func (inj *injector) drawKind() FaultKind {
	c := &inj.cfg
	if c.Transient+c.RateLimit+c.Auth+c.Permission+c.Timeout+c.TimeoutAfterAccept == 0 {
		return ""
	}
	u := inj.rng.Float64()
	for _, k := range []struct {
		kind FaultKind
		rate float64
	}{
		{FaultTransient, c.Transient}, {FaultRateLimit, c.RateLimit}, {FaultAuth, c.Auth},
		{FaultPermission, c.Permission}, {FaultTimeout, c.Timeout}, {FaultTimeoutAfterAccept, c.TimeoutAfterAccept},
	} {
		if u < k.rate {
			return k.kind
		}
		u -= k.rate
	}
	return ""
}

func (inj *injector) latency() time.Duration {
	c := &inj.cfg
	if c.LatencyP50 > 0 {
		p50, p99 := float64(c.LatencyP50), float64(c.LatencyP99)
		sigma := math.Log(p99/p50) / z99
		d := p50 * math.Exp(sigma*inj.rng.NormFloat64())
		return time.Duration(min(d, lognormalCapFactor*p99))
	}
	d := time.Duration(c.Latency)
	if c.Jitter > 0 {
		d += time.Duration(inj.rng.Int64N(int64(c.Jitter)))
	}
	return d
}

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// countFault records one injected fault.
func (s *Server) countFault(kind FaultKind, f func(*Stats)) {
	s.count(func(st *Stats) {
		st.Requests++
		st.Faults[string(kind)]++
		if f != nil {
			f(st)
		}
	})
}

// injectError answers an error fault with the Graph body and headers Meta would send.
func (s *Server) injectError(w http.ResponseWriter, pixelID string, p plan) {
	var gerr *graphError
	switch p.kind {
	case FaultTransient:
		gerr = &graphError{Message: "An unknown error occurred", Type: "OAuthException", Code: CodeUnknown,
			IsTransient: true, status: http.StatusInternalServerError}
		if p.variant == 1 {
			gerr.Message, gerr.Code = "(#2) Service temporarily unavailable", CodeService
		}
	case FaultRateLimit:
		gerr = rateLimitError(p.variant)
		setRateLimitHeaders(w.Header(), pixelID, p.retryAfter)
	case FaultAuth:
		gerr = &graphError{
			Message: "Error validating access token: Session has expired on Sunday, 01-Mar-26 12:00:00 PST.",
			Type:    "OAuthException", Code: CodeOAuth, Subcode: SubcodeExpiredToken, status: http.StatusBadRequest,
		}
		w.Header().Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token"`)
	case FaultPermission:
		gerr = &graphError{Message: "(#10) Application does not have permission for this action",
			Type: "OAuthException", Code: CodePermissionDenied, status: http.StatusBadRequest}
		if p.variant == 1 {
			gerr.Message, gerr.Code, gerr.status = "(#200) Permissions error", CodePermissions, http.StatusForbidden
		}
	}
	gerr.FBTraceID = traceID()
	s.countFault(p.kind, nil)
	s.log.Info("emulator injected fault", "pixel_id", pixelID, "fault", string(p.kind),
		"code", gerr.Code, "error_subcode", gerr.Subcode, "fbtrace_id", gerr.FBTraceID)
	writeJSON(w, gerr.status, gerr.FBTraceID, map[string]*graphError{"error": gerr})
}

// rateLimitError is a user-level throttle (17) or an Ads Management BUC throttle (80004),
// both with subcode 2446079 [G-rl]. Graph answers throttles with 400; the 429 on the BUC
// variant is the emulator's choice, so that clients are exercised on both statuses and must
// classify on the code.
func rateLimitError(variant int) *graphError {
	if variant == 1 {
		return &graphError{
			Message: "(#80004) There have been too many calls to this ad-account. Wait a bit and try again.",
			Type:    "OAuthException", Code: CodeAdsManagementThrottle, Subcode: SubcodeThrottled,
			IsTransient: true, status: http.StatusTooManyRequests,
		}
	}
	return &graphError{
		Message: "(#17) User request limit reached", Type: "OAuthException",
		Code: CodeUserRateLimit, Subcode: SubcodeThrottled, IsTransient: true, status: http.StatusBadRequest,
	}
}

// setRateLimitHeaders sets the three throttle headers so that they agree with wait:
// Retry-After in whole seconds (rounded up), estimated_time_to_regain_access in whole
// minutes (rounded down, as Meta reports minutes), and X-App-Usage at 100% only when the wait
// is at least a minute, because clients read a full X-App-Usage as "wait about a minute"
// and would otherwise wait longer than the emulator means [D-mrl, G-rl].
func setRateLimitHeaders(h http.Header, pixelID string, wait time.Duration) {
	secs := int64((wait + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	pct := 99
	if wait >= time.Minute {
		pct = 100
	}
	buc, _ := json.Marshal(map[string][]map[string]any{pixelID: {{
		"type": "ads_management", "call_count": pct, "total_cputime": 25, "total_time": 25,
		"estimated_time_to_regain_access": int64(wait / time.Minute),
	}}})
	h.Set("X-Business-Use-Case-Usage", string(buc))
	h.Set("X-App-Usage", fmt.Sprintf(`{"call_count":%d,"total_cputime":25,"total_time":25}`, pct))
}

// injectOutage fails the request as a backend that is down: a reset connection, or a 503.
func (s *Server) injectOutage(w http.ResponseWriter, pixelID string, mode string) {
	s.countFault(FaultOutage, nil)
	s.log.Info("emulator injected fault", "pixel_id", pixelID, "fault", string(FaultOutage))
	if mode != OutageUnavailable {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // close with RST: "connection reset by peer"
				}
				_ = conn.Close()
				return
			}
		}
	}
	gerr := &graphError{Message: "(#2) Service temporarily unavailable", Type: "OAuthException",
		Code: CodeService, IsTransient: true, status: http.StatusServiceUnavailable, FBTraceID: traceID()}
	writeJSON(w, gerr.status, gerr.FBTraceID, map[string]*graphError{"error": gerr})
}

// holdThenFail keeps the request open until the client gives up or hold passes, then
// answers 504 like a gateway whose backend never replied. It reports whether the client
// gave up.
func holdThenFail(ctx context.Context, w http.ResponseWriter, hold time.Duration) bool {
	if !sleep(ctx, hold) {
		return true
	}
	gerr := &graphError{Message: "(#2) Service temporarily unavailable", Type: "OAuthException",
		Code: CodeService, IsTransient: true, status: http.StatusGatewayTimeout, FBTraceID: traceID()}
	writeJSON(w, gerr.status, gerr.FBTraceID, map[string]*graphError{"error": gerr})
	return false
}

// maxAdminBody bounds a fault configuration body; a real one is a few hundred bytes.
const maxAdminBody = 64 << 10

func (s *Server) handleFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost, http.MethodPut:
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
		dec.DisallowUnknownFields() // a misspelt fault must not silently inject nothing
		var c FaultConfig
		if err := dec.Decode(&c); err != nil {
			adminError(w, fmt.Errorf("faults: decode body: %w", err))
			return
		}
		if dec.More() {
			adminError(w, errors.New("faults: body holds more than one JSON value"))
			return
		}
		if err := s.SetFaults(c); err != nil {
			adminError(w, err)
			return
		}
		s.log.Info("emulator faults set", "pixels", len(c.Pixels))
	case http.MethodDelete:
		s.ClearFaults()
		s.log.Info("emulator faults cleared")
	default:
		w.Header().Set("Allow", "GET, POST, PUT, DELETE")
		writeJSON(w, http.StatusMethodNotAllowed, "", map[string]string{"error": "method " + r.Method + " not allowed"})
		return
	}
	writeJSON(w, http.StatusOK, "", s.FaultStatus())
}

// adminError answers a bad admin request. The body is the emulator's own shape, not
// Graph's, so that nobody mistakes it for something Meta says.
func adminError(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, "", map[string]string{"error": err.Error()})
}
