package sink

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestClassify covers every code and status the CAPI reference (§6) names.
func TestClassify(t *testing.T) {
	type tc struct {
		name      string
		status    int
		code, sub int
		transient bool
		noBody    bool
		want      Class
	}
	tests := []tc{
		{name: "1 unknown error", status: 500, code: 1, want: ClassTransient},
		{name: "1 even on a 400", status: 400, code: 1, want: ClassTransient},
		{name: "2 service unavailable", status: 503, code: 2, want: ClassTransient},
		{name: "368 temporarily blocked", status: 400, code: 368, want: ClassTransient},
		{name: "4 app rate limit", status: 400, code: 4, want: ClassRateLimit},
		{name: "17 user rate limit", status: 400, code: 17, want: ClassRateLimit},
		{name: "17/2446079", status: 400, code: 17, sub: 2446079, want: ClassRateLimit},
		{name: "32 page rate limit", status: 400, code: 32, want: ClassRateLimit},
		{name: "341 application limit", status: 400, code: 341, want: ClassRateLimit},
		{name: "613 custom rate limit", status: 400, code: 613, want: ClassRateLimit},
		{name: "613/1996 inconsistent volume", status: 400, code: 613, sub: 1996, want: ClassRateLimit},
		{name: "80004/2446079 ads management", status: 400, code: 80004, sub: 2446079, want: ClassRateLimit},
		{name: "rate limit stays rate limit when transient", status: 400, code: 17, transient: true, want: ClassRateLimit},
		{name: "190 invalid token", status: 400, code: 190, want: ClassAuth},
		{name: "190/458 app not installed", status: 400, code: 190, sub: 458, want: ClassAuth},
		{name: "190/460 password changed", status: 400, code: 190, sub: 460, want: ClassAuth},
		{name: "190/463 expired", status: 400, code: 190, sub: 463, want: ClassAuth},
		{name: "190/467 invalid", status: 401, code: 190, sub: 467, want: ClassAuth},
		{name: "3 capability", status: 400, code: 3, want: ClassPermission},
		{name: "10 permission denied", status: 403, code: 10, want: ClassPermission},
		{name: "200 permissions error", status: 403, code: 200, want: ClassPermission},
		{name: "250", status: 400, code: 250, want: ClassPermission},
		{name: "299", status: 400, code: 299, want: ClassPermission},
		{name: "300 is not a permission code", status: 400, code: 300, want: ClassInvalid},
		{name: "100 invalid parameter", status: 400, code: 100, want: ClassInvalid},
		{name: "100/33 no such pixel", status: 400, code: 100, sub: 33, want: ClassPermission},
		{name: "100/2804003 event too old", status: 400, code: 100, sub: 2804003, want: ClassInvalid},
		{name: "100/2804030 LDU required", status: 400, code: 100, sub: 2804030, want: ClassInvalid},
		{name: "100/2804001", status: 400, code: 100, sub: 2804001, want: ClassInvalid},
		{name: "100/2804007", status: 400, code: 100, sub: 2804007, want: ClassInvalid},
		{name: "100/2804016", status: 400, code: 100, sub: 2804016, want: ClassInvalid},
		{name: "100/2804017", status: 400, code: 100, sub: 2804017, want: ClassInvalid},
		{name: "100/2804019", status: 400, code: 100, sub: 2804019, want: ClassInvalid},
		{name: "100/2804048", status: 400, code: 100, sub: 2804048, want: ClassInvalid},
		{name: "is_transient wins over 100", status: 400, code: 100, transient: true, want: ClassTransient},
		{name: "is_transient on an unknown code", status: 400, code: 12345, transient: true, want: ClassTransient},
		{name: "unknown code on a 400", status: 400, code: 12345, want: ClassInvalid},
		{name: "unknown code on a 500", status: 500, code: 12345, want: ClassTransient},
		{name: "429 without body", status: 429, noBody: true, want: ClassRateLimit},
		{name: "500 without body", status: 500, noBody: true, want: ClassTransient},
		{name: "502 without body", status: 502, noBody: true, want: ClassTransient},
		{name: "503 without body", status: 503, noBody: true, want: ClassTransient},
		{name: "504 without body", status: 504, noBody: true, want: ClassTransient},
		{name: "400 without body", status: 400, noBody: true, want: ClassInvalid},
		{name: "401 without body", status: 401, noBody: true, want: ClassAuth},
		{name: "403 without body", status: 403, noBody: true, want: ClassPermission},
		{name: "404 without body", status: 404, noBody: true, want: ClassInvalid},
		{name: "413 without body", status: 413, noBody: true, want: ClassInvalid},
		{name: "302", status: 302, noBody: true, want: ClassUnknown},
		{name: "200", status: 200, noBody: true, want: ClassUnknown},
	}
	for code := 80000; code <= 80014; code++ {
		tests = append(tests, tc{name: fmt.Sprintf("%d BUC throttle", code), status: 400, code: code, want: ClassRateLimit})
	}
	tests = append(tests,
		tc{name: "79999 is not BUC", status: 400, code: 79999, want: ClassInvalid},
		tc{name: "80015 is not BUC", status: 400, code: 80015, want: ClassInvalid},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g *GraphError
			if !tt.noBody {
				g = &GraphError{Code: tt.code, Subcode: tt.sub, IsTransient: tt.transient}
			}
			if got := Classify(tt.status, g); got != tt.want {
				t.Errorf("Classify(%d, %d/%d transient=%v) = %v, want %v", tt.status, tt.code, tt.sub, tt.transient, got, tt.want)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	seen := map[string]bool{}
	for c := range numClasses {
		s := c.String()
		if seen[s] {
			t.Errorf("duplicate name %q", s)
		}
		seen[s] = true
	}
	if s := Class(200).String(); s != "class(200)" {
		t.Errorf("out of range class = %q", s)
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		err  error
		want Class
	}{
		{&APIError{Class: ClassAuth}, ClassAuth},
		{fmt.Errorf("wrapped: %w", &APIError{Class: ClassInvalid}), ClassInvalid},
		{errors.New("connection reset by peer"), ClassTransient},
		{nil, ClassUnknown},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.err); got != tt.want {
			t.Errorf("ClassOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestRetryHint(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, 0},
		{"Retry-After seconds", map[string]string{"Retry-After": "30"}, 30 * time.Second},
		{"Retry-After date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"Retry-After in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{"Retry-After garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"Retry-After negative", map[string]string{"Retry-After": "-5"}, 0},
		{"BUC regain minutes", map[string]string{"X-Business-Use-Case-Usage": `{"111":[{"type":"ads_management","call_count":98,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":4}]}`}, 4 * time.Minute},
		{"BUC largest of several", map[string]string{"X-Business-Use-Case-Usage": `{"1":[{"estimated_time_to_regain_access":2}],"2":[{"estimated_time_to_regain_access":0},{"estimated_time_to_regain_access":9}]}`}, 9 * time.Minute},
		{"BUC zero", map[string]string{"X-Business-Use-Case-Usage": `{"1":[{"estimated_time_to_regain_access":0}]}`}, 0},
		{"BUC garbage", map[string]string{"X-Business-Use-Case-Usage": `{`}, 0},
		{"app usage full", map[string]string{"X-App-Usage": `{"call_count":100,"total_cputime":10,"total_time":10}`}, appUsageWait},
		{"app usage below full", map[string]string{"X-App-Usage": `{"call_count":99,"total_cputime":10,"total_time":10}`}, 0},
		{"longest wins", map[string]string{"Retry-After": "30", "X-Business-Use-Case-Usage": `{"1":[{"estimated_time_to_regain_access":1}]}`}, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := retryHint(h, now); got != tt.want {
				t.Errorf("retryHint = %v, want %v", got, tt.want)
			}
		})
	}
}
