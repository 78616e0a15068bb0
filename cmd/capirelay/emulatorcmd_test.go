package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/sink/emulator"
)

func TestEmulatorFaultFlags(t *testing.T) {
	ms := func(d time.Duration) emulator.Duration { return emulator.Duration(d) }
	tests := []struct {
		name string
		args []string
		want emulator.FaultConfig
		seed uint64
	}{
		{"no faults", nil, emulator.FaultConfig{OutageMode: "reset"}, 1},
		{
			"everything",
			[]string{
				"-error-rate", "transient=0.05,ratelimit=0.01", "-error-rate", "Auth=0.02,permission=0.03",
				"-timeout-rate", "0.04", "-timeout-after-accept-rate", "0.06", "-timeout-hold", "2s",
				"-latency", "20ms", "-jitter", "30ms", "-ratelimit-next", "3", "-ratelimit-for", "1m",
				"-retry-after", "5s", "-outage-at", "30s", "-outage-for", "10s", "-outage-mode", "503",
				"-fault-pixel", "111,222", "-fault-seed", "42",
			},
			emulator.FaultConfig{
				Transient: 0.05, RateLimit: 0.01, Auth: 0.02, Permission: 0.03, Timeout: 0.04,
				TimeoutAfterAccept: 0.06, TimeoutHold: ms(2 * time.Second), Latency: ms(20 * time.Millisecond),
				Jitter: ms(30 * time.Millisecond), RateLimitNext: 3, RateLimitFor: ms(time.Minute),
				RetryAfter: ms(5 * time.Second), OutageAt: ms(30 * time.Second), OutageFor: ms(10 * time.Second),
				OutageMode: "503", Pixels: []string{"111", "222"},
			},
			42,
		},
		{
			"lognormal and rate_limit spelling",
			[]string{"-latency-p50", "50ms", "-latency-p99", "800ms", "-error-rate", "rate_limit=1"},
			emulator.FaultConfig{RateLimit: 1, LatencyP50: ms(50 * time.Millisecond), LatencyP99: ms(800 * time.Millisecond), OutageMode: "reset"},
			1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-pixel", "111=a", "-pixel", "222=b"}, tt.args...)
			s, err := parseEmulatorFlags(args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(s.faults)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) || s.seed != tt.seed {
				t.Fatalf("faults %s seed %d, want %s seed %d", got, s.seed, want, tt.seed)
			}
		})
	}
}

func TestEmulatorFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-error-rate", "transient=2"}, `invalid value "transient=2" for flag -error-rate: transient: rate 2 outside [0, 1]`},
		{[]string{"-error-rate", "bogus=0.1"}, `unknown class "bogus"`},
		{[]string{"-error-rate", "transient"}, `want CLASS=RATE`},
		{[]string{"-error-rate", "auth=lots"}, `rate "lots" is not a number`},
		{[]string{"-timeout-rate", "NaN"}, `flag -timeout-rate: rate NaN outside [0, 1]`},
		{[]string{"-latency", "20"}, `flag -latency: "20" is not a duration`},
		{[]string{"-jitter", "-5ms"}, `flag -jitter: duration -5ms is negative`},
		{[]string{"-error-rate", "transient=0.7", "-timeout-rate", "0.5"}, "add up to 1.2"},
		{[]string{"-outage-at", "30s"}, "outage_at needs outage_for"},
		{[]string{"-outage-for", "1s", "-outage-mode", "boom"}, `outage_mode "boom"`},
		{[]string{"-latency", "1ms", "-latency-p50", "1ms", "-latency-p99", "2ms"}, "choose one"},
		{[]string{"-fault-pixel", "abc"}, `pixel id "abc" is not numeric`},
		{[]string{"-fault-pixel", "999"}, "-fault-pixel 999 is not one of the -pixel ids"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"emulator", "-pixel", "111=a"}, tt.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tt.want)
			}
		})
	}
	var stderr bytes.Buffer
	if code := run([]string{"emulator"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "-pixel PIXEL_ID=TOKEN is required") {
		t.Fatalf("no pixel: exit %d %q", code, stderr.String())
	}
}

// The command serves the faults its flags configure and the admin endpoint it prints.
func TestEmulatorCommandServesFaults(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // cmdEmulator listens itself; the port is very unlikely to be taken meanwhile

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout emuOutput
	done := make(chan error, 1)
	go func() {
		done <- cmdEmulator(ctx, []string{"-addr", addr, "-pixel", "111=tok", "-ratelimit-next", "1", "-retry-after", "2s"}, &stdout, io.Discard)
	}()
	base := "http://" + addr
	post := func(path, body string) *http.Response {
		t.Helper()
		var resp *http.Response
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err = http.Post(base+path, "application/json", strings.NewReader(body))
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	event := `{"access_token":"tok","data":[{"event_name":"Lead","event_time":` +
		jsonInt(time.Now().Unix()-10) + `,"action_source":"chat","user_data":{"external_id":["u1"]}}]}`
	if resp := post("/v25.0/111/events", event); (resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusTooManyRequests) ||
		resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("first request: %d %v, want the rate limit -ratelimit-next 1 asks for", resp.StatusCode, resp.Header)
	}
	if resp := post("/v25.0/111/events", event); resp.StatusCode != http.StatusOK {
		t.Fatalf("second request: %d", resp.StatusCode)
	}
	if resp := post("/_emulator/faults", `{"transient":1}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("admin POST: %d", resp.StatusCode)
	}
	if resp := post("/v25.0/111/events", event); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("after admin POST: %d, want an injected 500", resp.StatusCode)
	}
	if out := stdout.String(); !strings.Contains(out, base+"/_emulator/faults") || !strings.Contains(out, `"rate_limit_next":1`) {
		t.Fatalf("startup banner %q does not show the admin endpoint and faults", out)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("cmdEmulator: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cmdEmulator did not stop")
	}
}

// emuOutput is a goroutine-safe buffer for the command's output. (relay_test.go has a
// similar one; this file keeps its own so that it does not depend on another test's helpers.)
type emuOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *emuOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *emuOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
