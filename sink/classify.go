package sink

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class is what the sink does about a failed request. It is derived from Meta's error code,
// subcode and is_transient flag first and from the HTTP status only when the body says
// nothing, because Meta answers very different problems (a throttle, a bad event, a dead
// token) with the same 400.
type Class uint8

const (
	// ClassUnknown is an answer the sink cannot place, such as a 3xx or a 200 whose body is not
	// a Conversions API response. The batcher retries it like ClassTransient.
	ClassUnknown Class = iota
	// ClassTransient is a failure that says nothing about the request: Graph codes 1, 2 and
	// 368, is_transient:true, HTTP 5xx, timeouts and connection errors. Retry with backoff.
	ClassTransient
	// ClassRateLimit is a throttle: codes 4, 17, 32, 341, 613, 80000–80014 or HTTP 429.
	// Retry after the wait Meta advises, for that pixel only.
	ClassRateLimit
	// ClassAuth is an unusable access token (code 190) or no token for the pixel. Retrying
	// cannot help until the token is replaced.
	ClassAuth
	// ClassPermission is a token that lacks access: codes 3, 10, 200–299, and 100/33 (the
	// pixel does not exist or the token cannot see it).
	ClassPermission
	// ClassInvalid is a request Meta refuses as malformed: code 100 and other 4xx answers.
	// With code 100 one bad event fails the whole request, so the batcher bisects.
	ClassInvalid

	numClasses
)

func (c Class) String() string {
	switch c {
	case ClassUnknown:
		return "unknown"
	case ClassTransient:
		return "transient"
	case ClassRateLimit:
		return "rate_limit"
	case ClassAuth:
		return "auth"
	case ClassPermission:
		return "permission"
	case ClassInvalid:
		return "invalid"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Retryable reports whether the batcher resends a request that failed with c.
func (c Class) Retryable() bool {
	return c == ClassTransient || c == ClassRateLimit || c == ClassUnknown
}

// Graph error codes the classification names. Sources: Graph API "Handling Errors", "Rate
// Limits" and the Marketing API troubleshooting page.
const (
	codeUnknown            = 1
	codeService            = 2
	codeCapability         = 3
	codeAppRateLimit       = 4
	codePermissionDenied   = 10
	codeUserRateLimit      = 17
	codePageRateLimit      = 32
	codeInvalidParameter   = 100
	codeAccessToken        = 190
	codeAppLimit           = 341
	codeTemporarilyBlocked = 368
	codeCustomRateLimit    = 613

	subcodeObjectMissing = 33 // with code 100: no such pixel, or the token cannot see it
)

// Classify places a Graph API answer. g may be nil when the body held no Graph error.
func Classify(status int, g *GraphError) Class {
	var code, subcode int
	if g != nil {
		code, subcode = g.Code, g.Subcode
	}
	// Throttles are checked before is_transient so that a transient throttle still honours
	// the wait Meta advises.
	if isRateLimitCode(code) || (code == 0 && status == http.StatusTooManyRequests) {
		return ClassRateLimit
	}
	if g != nil && g.IsTransient {
		return ClassTransient
	}
	switch {
	case code == codeUnknown, code == codeService, code == codeTemporarilyBlocked:
		return ClassTransient
	case code == codeAccessToken:
		return ClassAuth
	case code == codeCapability, code == codePermissionDenied, code >= 200 && code <= 299:
		return ClassPermission
	case code == codeInvalidParameter && subcode == subcodeObjectMissing:
		// A wrong pixel id or a token without access to it: every event fails alike, so
		// bisecting would only multiply requests.
		return ClassPermission
	case code == codeInvalidParameter:
		return ClassInvalid
	}
	switch {
	case status == http.StatusTooManyRequests:
		return ClassRateLimit
	case status >= 500 && status <= 599:
		return ClassTransient
	case status == http.StatusUnauthorized:
		return ClassAuth
	case status == http.StatusForbidden:
		return ClassPermission
	case status >= 400 && status <= 499:
		return ClassInvalid
	}
	return ClassUnknown
}

func isRateLimitCode(code int) bool {
	switch code {
	case codeAppRateLimit, codeUserRateLimit, codePageRateLimit, codeAppLimit, codeCustomRateLimit:
		return true
	}
	return code >= 80000 && code <= 80014
}

// ClassOf returns the class of an error returned by a Sender. An *APIError carries its own;
// anything else is a failure to get an answer (a dropped connection, a timeout), which is
// transient.
func ClassOf(err error) Class {
	if err == nil {
		return ClassUnknown
	}
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae.Class
	}
	return ClassTransient
}

// appUsageWait is how long a pixel is held back when X-App-Usage reports an exhausted app
// quota but no header says when it comes back. Graph's app limit is a rolling one-hour
// window, so a minute is a conservative probe interval rather than a promise.
const appUsageWait = time.Minute

// retryHint returns the longest wait any of Meta's throttling headers asks for: Retry-After
// (seconds or an HTTP date), X-Business-Use-Case-Usage's estimated_time_to_regain_access
// (minutes) and, as a heuristic, a full X-App-Usage. Unparseable headers count as absent:
// the exponential backoff still applies.
func retryHint(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if v := h.Get("Retry-After"); v != "" {
		d = max(d, parseRetryAfter(v, now))
	}
	if v := h.Get("X-Business-Use-Case-Usage"); v != "" {
		d = max(d, parseBUCUsage(v))
	}
	if v := h.Get("X-App-Usage"); v != "" && appUsageFull(v) {
		d = max(d, appUsageWait)
	}
	// A header asking for days (a far HTTP date, a huge regain estimate) is a broken header,
	// not a plan: the batch's own retry budget decides, so cap what it may ask.
	return min(d, maxRetryHint)
}

// maxRetryHint caps the wait Meta's headers can impose on one pixel.
const maxRetryHint = 24 * time.Hour

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// parseBUCUsage reads {"<business id>": [{"type": ..., "estimated_time_to_regain_access": N}]}
// and returns the largest N, in minutes.
func parseBUCUsage(v string) time.Duration {
	var usage map[string][]struct {
		RegainMinutes float64 `json:"estimated_time_to_regain_access"`
	}
	if json.Unmarshal([]byte(v), &usage) != nil {
		return 0
	}
	var m float64
	for _, entries := range usage {
		for _, e := range entries {
			m = max(m, e.RegainMinutes)
		}
	}
	if m <= 0 {
		return 0
	}
	return time.Duration(min(m, 24*60) * float64(time.Minute))
}

// appUsageFull reports whether any X-App-Usage percentage has reached 100.
func appUsageFull(v string) bool {
	var usage struct {
		CallCount    float64 `json:"call_count"`
		TotalCPUTime float64 `json:"total_cputime"`
		TotalTime    float64 `json:"total_time"`
	}
	if json.Unmarshal([]byte(v), &usage) != nil {
		return false
	}
	return max(usage.CallCount, usage.TotalCPUTime, usage.TotalTime) >= 100
}
