package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"
)

// relaySettings are the knobs a scenario sets; everything else is capirelay's default.
type relaySettings struct {
	Group, Topic, KeyPrefix string
	MaxInFlightRequests     int
	MaxBatch                int
	Linger                  time.Duration
	MaxInFlightPerPartition int
	MaxPendingEvents        int
	CommitInterval          time.Duration
}

func (o *options) relayConfig(s relaySettings, emuURL string) map[string]any {
	pixels := map[string]any{}
	for _, p := range benchPixels {
		pixels[p] = map[string]any{}
	}
	kafka := map[string]any{
		"brokers": o.brokers,
		"group":   s.Group,
		"topics":  []any{map[string]any{"name": s.Topic, "format": "raw", "schema": "WebEvent", "kind": "web"}},
	}
	if s.MaxInFlightPerPartition == 0 {
		s.MaxInFlightPerPartition = o.relayMaxInFlightPerPartition
	}
	if s.MaxPendingEvents == 0 {
		s.MaxPendingEvents = o.relayMaxPending
	}
	if s.MaxInFlightPerPartition > 0 {
		kafka["max_in_flight_per_partition"] = s.MaxInFlightPerPartition
	}
	if s.CommitInterval > 0 {
		kafka["commit_interval"] = s.CommitInterval.String()
	}
	capi := map[string]any{
		"base_url":      emuURL,
		"access_token":  benchToken,
		"partner_agent": "capirelay-bench",
		"pixels":        pixels,
	}
	if s.MaxInFlightRequests > 0 {
		capi["max_in_flight_requests"] = s.MaxInFlightRequests
	}
	if s.MaxBatch > 0 {
		capi["max_batch"] = s.MaxBatch
	}
	if s.Linger > 0 {
		capi["linger"] = s.Linger.String()
	}
	if s.MaxPendingEvents > 0 {
		capi["max_pending_events"] = s.MaxPendingEvents
	}
	telemetry := map[string]any{"listen": ""}
	if o.relayTelemetry != "" {
		telemetry = map[string]any{"listen": o.relayTelemetry, "pprof": true}
	}
	cfg := map[string]any{
		"telemetry": telemetry,
		"kafka":     kafka,
		"redis":     map[string]any{"addrs": []string{o.redis}, "key_prefix": s.KeyPrefix},
		"capi":      capi,
		"log":       map[string]any{"level": "info", "format": "json"},
	}
	for _, kv := range o.relaySet {
		path, value, _ := strings.Cut(kv, "=")
		setPath(cfg, strings.Split(path, "."), value)
	}
	return cfg
}

// setPath sets a nested field of the relay configuration; value is YAML, so numbers,
// durations and lists keep their type.
func setPath(m map[string]any, path []string, value string) {
	for _, k := range path[:len(path)-1] {
		sub, ok := m[k].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[k] = sub
		}
		m = sub
	}
	var v any
	if err := yaml.Unmarshal([]byte(value), &v); err != nil {
		v = value
	}
	m[path[len(path)-1]] = v
}

// relayProc is one `capirelay run --config` subprocess.
type relayProc struct {
	cmd      *exec.Cmd
	logPath  string
	cfgPath  string
	exited   chan struct{}
	waitErr  error
	started  time.Time
	pid      int
	logFile  *os.File
	assigned time.Time // from the relay's "partitions assigned" log line
}

func (o *options) startRelay(name string, cfg map[string]any) (*relayProc, error) {
	if o.redisFlush {
		if err := flushRedis(o.redis); err != nil {
			return nil, err
		}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(o.workDir, name+".yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(o.workDir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.relayBin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = lf, lf
	// The config file is the whole truth: no CAPIRELAY_* override from our environment.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CAPIRELAY_") })
	if o.relayGOGC != "" {
		cmd.Env = append(cmd.Env, "GOGC="+o.relayGOGC)
	}
	if o.relayGOMEMLIMIT != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+o.relayGOMEMLIMIT)
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	r := &relayProc{cmd: cmd, logPath: logPath, cfgPath: cfgPath, exited: make(chan struct{}),
		started: time.Now(), pid: cmd.Process.Pid, logFile: lf}
	go func() {
		r.waitErr = cmd.Wait()
		lf.Close()
		close(r.exited)
	}()
	return r, nil
}

func (r *relayProc) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// assignedAt returns the time of the relay's first "partitions assigned" log line with a
// non-empty assignment (zero while there is none): the relay fetches right after it.
func (r *relayProc) assignedAt() time.Time {
	if !r.assigned.IsZero() {
		return r.assigned
	}
	f, err := os.Open(r.logPath)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), `"partitions assigned"`) {
			continue
		}
		var l struct {
			Time       time.Time      `json:"time"`
			Partitions map[string]any `json:"partitions"`
		}
		if json.Unmarshal(line, &l) == nil && len(l.Partitions) > 0 {
			r.assigned = l.Time
			return l.Time
		}
	}
	return time.Time{}
}

// stop sends SIGTERM and waits for the exit, then SIGKILL after timeout.
func (r *relayProc) stop(timeout time.Duration) error {
	if r.running() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-r.exited:
	case <-time.After(timeout):
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.exited
		return fmt.Errorf("relay pid %d did not stop within %s of SIGTERM; killed", r.pid, timeout)
	}
	return r.waitErr
}

// kill SIGKILLs the relay (if running) and reaps it.
func (r *relayProc) kill() {
	if r.running() {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-r.exited
}

// tail returns the last n lines of the relay's log.
func (r *relayProc) tail(n int) string {
	b, _ := os.ReadFile(r.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// flushRedis empties the bench's own Redis before a relay run, so that every run starts
// from an empty dedup store as the first one does: keys of earlier runs (each under its
// own prefix, 48 h TTL) would otherwise pile up to millions.
func flushRedis(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	if err := rc.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flushing the bench's Redis at %s: %w", addr, err)
	}
	return nil
}
