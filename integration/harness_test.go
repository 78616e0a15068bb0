package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink/emulator"
)

const (
	pixelA = "1111111111111111"
	pixelB = "2222222222222222"
	token  = "it-access-token"
)

var (
	relayBin string // built once in TestMain
	repoRoot string
	skipWhy  string // non-empty: services missing and not required
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Dir(wd)
	if os.Getenv("KAFKA_BROKERS") == "" || os.Getenv("REDIS_ADDR") == "" {
		skipWhy = "KAFKA_BROKERS or REDIS_ADDR unset; scripts/test.sh starts Kafka and Redis"
		if os.Getenv("CAPIRELAY_REQUIRE_SERVICES") != "1" {
			return m.Run() // every test skips
		}
	}
	dir, err := os.MkdirTemp("", "capirelay-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	relayBin = filepath.Join(dir, "capirelay")
	args := []string{"build", "-o", relayBin}
	if os.Getenv("CAPIRELAY_IT_RACE") == "1" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/capirelay")...)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building capirelay: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// requireServices skips (or, with CAPIRELAY_REQUIRE_SERVICES=1, fails) without Kafka and Redis.
func requireServices(t *testing.T) {
	t.Helper()
	if skipWhy == "" {
		return
	}
	if os.Getenv("CAPIRELAY_REQUIRE_SERVICES") == "1" {
		t.Fatal(skipWhy)
	}
	t.Skip(skipWhy)
}

// size returns a scenario size: CAPIRELAY_IT_<name> if set, else def, times CAPIRELAY_IT_SCALE.
func size(name string, def int) int {
	n := float64(def)
	if v := os.Getenv("CAPIRELAY_IT_" + name); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
			n = f
		}
	}
	if v := os.Getenv("CAPIRELAY_IT_SCALE"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
			n *= f
		}
	}
	return int(math.Max(1, math.Round(n)))
}

// uniq returns a name unique to this test run.
func uniq(t *testing.T, what string) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("it-%s-%s-%d", strings.ToLower(name), what, time.Now().UnixNano()%1e9)
}

// ---- Kafka ----

func brokers() []string { return strings.Split(os.Getenv("KAFKA_BROKERS"), ",") }

// newKafka returns a producer/consumer client and its admin, closed at test end.
func newKafka(t *testing.T, seeds []string, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.MaxBufferedRecords(50000),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	waitFor(t, 60*time.Second, "broker metadata", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := adm.ListBrokers(ctx)
		return err == nil && len(b) > 0, fmt.Sprint(err)
	})
	return cl, adm
}

func createTopic(t *testing.T, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	// The topic is usable once every partition has a leader in metadata.
	waitFor(t, 30*time.Second, "topic "+topic+" leaders", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return false, err.Error()
		}
		n := 0
		var lastErr error
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				n++
			} else {
				lastErr = o.Err
			}
		})
		return n == int(partitions), fmt.Sprintf("%d/%d partitions ready, %v", n, partitions, lastErr)
	})
}

// partitionLag is committed vs log-end offset of one partition.
type partitionLag struct {
	Topic     string
	Partition int32
	Committed int64 // -1: nothing committed
	End       int64
}

func (p partitionLag) Lag() int64 { return p.End - max(p.Committed, 0) }

// lag returns the group's lag on topics: every partition, committed offset vs end offset.
func lag(ctx context.Context, adm *kadm.Client, group string, topics ...string) (int64, []partitionLag, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, nil, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, nil, err
	}
	var total int64
	var out []partitionLag
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err))
			return
		}
		pl := partitionLag{Topic: o.Topic, Partition: o.Partition, Committed: -1, End: o.Offset}
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil {
			pl.Committed = c.At
		}
		total += pl.Lag()
		out = append(out, pl)
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return total, out, errors.Join(errs...)
}

func describeLag(parts []partitionLag) string {
	var b strings.Builder
	for _, p := range parts {
		if p.Lag() != 0 {
			fmt.Fprintf(&b, " %s/%d=%d(committed %d end %d)", p.Topic, p.Partition, p.Lag(), p.Committed, p.End)
		}
	}
	return b.String()
}

// readAll reads every record of topic from the start up to its end offsets at call time.
func readAll(t *testing.T, seeds []string, adm *kadm.Client, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	next := map[int32]int64{}
	done := func() bool {
		for p, end := range want {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: timed out with %d records (want up to %v, at %v)", topic, len(recs), want, next)
		}
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			next[r.Partition] = r.Offset + 1
		})
	}
	return recs
}

// ---- events ----

type eventKey struct{ Pixel, Name, ID string }

func (k eventKey) String() string { return k.Pixel + "/" + k.Name + "/" + k.ID }

// goodEvent is a web event the emulator accepts.
func goodEvent(run string, i int) schema.Event {
	pixel := pixelA
	if i%3 == 2 {
		pixel = pixelB
	}
	name := "Purchase"
	if i%2 == 1 {
		name = "AddToCart"
	}
	v := float64(i%500) + 0.99
	return schema.Event{
		Kind: schema.KindWeb, EventID: fmt.Sprintf("%s-%d", run, i), EventName: name,
		EventTime: time.Now().Unix() - 30, PixelID: pixel, ActionSource: "website",
		EventSourceURL: "https://shop.example.com/p/" + strconv.Itoa(i),
		User: schema.UserData{
			Emails:          []string{fmt.Sprintf("person%d@example.com", i%1000)},
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
			ClientIPAddress: "192.0.2.7",
			ExternalIDs:     []string{"u" + strconv.Itoa(i%1000)},
		},
		Custom: schema.CustomData{Value: &v, Currency: "EUR"},
	}
}

func keyOf(ev schema.Event) eventKey { return eventKey{ev.PixelID, ev.EventName, ev.EventID} }

var encoder = sync.OnceValue(func() *schema.Encoder {
	enc, err := schema.NewEncoder()
	if err != nil {
		panic(err)
	}
	return enc
})

// rawRecord encodes ev as a raw (bare Avro) record keyed by its event id.
func rawRecord(t *testing.T, topic string, ev schema.Event) *kgo.Record {
	t.Helper()
	b, err := encoder().AppendRaw(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(ev.EventID), Value: b}
}

// goodBatch makes n good raw records on topic and their keys.
func goodBatch(t *testing.T, topic, run string, n int) ([]*kgo.Record, []eventKey) {
	recs := make([]*kgo.Record, n)
	keys := make([]eventKey, n)
	for i := range n {
		ev := goodEvent(run, i)
		recs[i] = rawRecord(t, topic, ev)
		keys[i] = keyOf(ev)
	}
	return recs, keys
}

func produceAll(t *testing.T, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for chunk := range slices.Chunk(recs, 10000) {
		if err := cl.ProduceSync(ctx, chunk...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// feeder produces records at a steady rate in the background, so a scenario's actions
// happen mid-stream.
type feeder struct {
	produced atomic.Int64
	done     chan struct{}
	err      error
}

func startFeeder(t *testing.T, cl *kgo.Client, recs []*kgo.Record, perSecond int) *feeder {
	f := &feeder{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); <-f.done })
	go func() {
		defer close(f.done)
		const tick = 100 * time.Millisecond
		step := max(1, perSecond/10)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for chunk := range slices.Chunk(recs, step) {
			if err := cl.ProduceSync(ctx, chunk...).FirstErr(); err != nil {
				f.err = err
				return
			}
			f.produced.Add(int64(len(chunk)))
			select {
			case <-tk.C:
			case <-ctx.Done():
				f.err = ctx.Err()
				return
			}
		}
	}()
	return f
}

func (f *feeder) finished() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func (f *feeder) wait(t *testing.T) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(5 * time.Minute):
		t.Fatal("feeder did not finish in 5 minutes")
	}
	if f.err != nil {
		t.Fatalf("feeder: %v", f.err)
	}
}

// ---- emulator ----

type capi struct {
	*emulator.Server
	URL string

	// Requests the emulator accepted (200) after the relay had already given up on them
	// (its request context was done): the relay retries those, so they are sent twice.
	lateAccepted atomic.Int64
	lateEvents   atomic.Int64 // events in those requests: each is one duplicate, not the relay's doing
	maxLatency   atomic.Int64 // nanoseconds
}

func (c *capi) String() string {
	st := c.Stats()
	return fmt.Sprintf("emulator: %d requests, %d accepted, %d events, rejected by code %v, %d accepted after the client gave up, slowest %s",
		st.Requests, st.Accepted, st.EventsReceived, st.RejectedByCode, c.lateAccepted.Load(),
		time.Duration(c.maxLatency.Load()).Round(time.Millisecond))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the emulator's outage resets it).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	s.status = -1 // not an answer
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

// startEmulator serves a Conversions API emulator on a loopback port until the test ends.
func startEmulator(t *testing.T, opts ...emulator.Option) *capi {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := emulator.New(append([]emulator.Option{
		emulator.WithPixel(pixelA, token), emulator.WithPixel(pixelB, token),
	}, opts...)...)
	c := &capi{Server: s, URL: "http://" + ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w}
		s.ServeHTTP(rec, r)
		d := int64(time.Since(start))
		for {
			old := c.maxLatency.Load()
			if d <= old || c.maxLatency.CompareAndSwap(old, d) {
				break
			}
		}
		if rec.status == http.StatusOK && r.Context().Err() != nil {
			var req struct {
				Data []json.RawMessage `json:"data"`
			}
			_ = json.Unmarshal(body, &req) // the relay posts JSON bodies
			c.lateAccepted.Add(1)
			c.lateEvents.Add(int64(len(req.Data)))
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if t.Failed() {
			t.Log(c)
		}
	})
	return c
}

// delivery compares what the emulator accepted with what was expected.
type delivery struct {
	Lost       []eventKey
	Duplicates int // extra copies beyond the first
	DupKeys    int // keys received more than once
	Unexpected []eventKey
	Received   int
}

func (d delivery) String() string {
	s := fmt.Sprintf("received %d, lost %d, duplicates %d (on %d keys), unexpected %d",
		d.Received, len(d.Lost), d.Duplicates, d.DupKeys, len(d.Unexpected))
	if len(d.Lost) > 0 {
		s += fmt.Sprintf("; first lost: %v", d.Lost[:min(5, len(d.Lost))])
	}
	return s
}

func checkDelivery(emu *capi, expected []eventKey) delivery {
	counts := map[eventKey]int{}
	rec := emu.Received()
	for _, r := range rec {
		counts[eventKey{r.PixelID, r.EventName, r.EventID}]++
	}
	d := delivery{Received: len(rec)}
	want := make(map[eventKey]bool, len(expected))
	for _, k := range expected {
		want[k] = true
		switch c := counts[k]; {
		case c == 0:
			d.Lost = append(d.Lost, k)
		case c > 1:
			d.Duplicates += c - 1
			d.DupKeys++
		}
	}
	for k := range counts {
		if !want[k] {
			d.Unexpected = append(d.Unexpected, k)
		}
	}
	return d
}

// ---- relay processes ----

// relayConfig is a capirelay YAML configuration as nested maps; set changes one dotted path.
type relayConfig map[string]any

func (c relayConfig) set(path string, v any) relayConfig {
	parts := strings.Split(path, ".")
	m := map[string]any(c)
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
	return c
}

func (c relayConfig) write(t *testing.T, name string) string {
	t.Helper()
	b, err := yaml.Marshal(map[string]any(c))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rawTopic is the kafka.topics entry for a raw WebEvent topic.
func rawTopic(name string) map[string]any {
	return map[string]any{"name": name, "format": "raw", "schema": "WebEvent", "kind": "web"}
}

// baseConfig is a relay configuration for one test: unique Redis prefix, the test's
// emulator, fast commits and short leases.
func baseConfig(t *testing.T, seeds []string, redisAddr, group string, emu *capi, topics ...map[string]any) relayConfig {
	return relayConfig{
		"kafka": map[string]any{
			"brokers":                     seeds,
			"group":                       group,
			"topics":                      topics,
			"dead_letter_suffix":          ".dlq",
			"max_in_flight_per_partition": 2000,
			"commit_interval":             "200ms",
			"revoke_timeout":              "5s",
		},
		"redis": map[string]any{
			"addrs":        []string{redisAddr},
			"key_prefix":   uniq(t, "redis") + ":",
			"lease":        "45s",
			"dedup_ttl":    "1h",
			"identity_ttl": "1h",
		},
		"capi": map[string]any{
			"base_url":               emu.URL,
			"api_version":            "v25.0",
			"access_token":           token,
			"partner_agent":          "capirelay-it",
			"pixels":                 map[string]any{pixelA: map[string]any{}, pixelB: map[string]any{}},
			"max_batch":              500,
			"linger":                 "20ms",
			"max_in_flight_requests": 8,
			"max_pending_events":     20000,
			// Generous: the emulator runs in the (race-built) test process on two busy
			// cores; a request it accepts after the relay gave up is a duplicate that is
			// not the relay's doing (counted in capi.lateEvents).
			"request_timeout":   "30s",
			"retry_max_elapsed": "2m",
		},
		"log":              map[string]any{"level": "info", "format": "json"},
		"shutdown_timeout": "20s",
	}
}

// relayProc is one `capirelay run` subprocess.
type relayProc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

var relaySeq atomic.Int64

// startRelay runs `capirelay run --config cfgPath` with stderr in a file. It is killed at
// test end if still running, and its log is printed when the test failed.
func startRelay(t *testing.T, name, cfgPath string) *relayProc {
	t.Helper()
	if relayBin == "" {
		t.Fatal("relay binary not built")
	}
	logPath := filepath.Join(t.TempDir(), fmt.Sprintf("%s-%d.log", name, relaySeq.Add(1)))
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(relayBin, "run", "--config", cfgPath)
	cmd.Stdout = lf
	cmd.Stderr = lf
	// The test's config file is the whole truth: no CAPIRELAY_* override from our environment.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CAPIRELAY_") })
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start relay %s: %v", name, err)
	}
	r := &relayProc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		r.waitErr = cmd.Wait()
		lf.Close()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			printLog(t, r)
		}
	})
	return r
}

func printLog(t *testing.T, r *relayProc) {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		t.Logf("relay %s log: %v", r.name, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	msgs := map[string]int{}
	for _, l := range lines {
		if i := strings.Index(l, `"msg":"`); i >= 0 {
			m := l[i+7:]
			if j := strings.IndexByte(m, '"'); j >= 0 {
				msgs[m[:j]]++
			}
		}
	}
	t.Logf("relay %s log messages (count): %v", r.name, msgs)
	if len(lines) > 80 {
		lines = append([]string{fmt.Sprintf("... %d lines before", len(lines)-80)}, lines[len(lines)-80:]...)
	}
	t.Logf("---- relay %s (pid %d) log %s ----\n%s", r.name, r.cmd.Process.Pid, r.logPath, strings.Join(lines, "\n"))
}

func (r *relayProc) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the relay (if running) and reaps it.
func (r *relayProc) kill() {
	if r.running() {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-r.exited
}

// stop sends SIGTERM and waits for a clean exit (status 0) within timeout.
func (r *relayProc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(timeout):
		r.kill()
		t.Fatalf("relay %s did not stop within %s of SIGTERM", r.name, timeout)
	}
	if r.waitErr != nil {
		t.Errorf("relay %s exited after SIGTERM with %v (want status 0)", r.name, r.waitErr)
	}
}

// grepLog counts log lines of r containing s.
func grepLog(r *relayProc, s string) int {
	f, err := os.Open(r.logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// assertAlive fails the test if a relay died on its own.
func assertAlive(t *testing.T, rs ...*relayProc) {
	t.Helper()
	for _, r := range rs {
		if !r.running() {
			t.Fatalf("relay %s exited unexpectedly: %v", r.name, r.waitErr)
		}
	}
}

// ---- waiting ----

// waitFor polls cond until it holds or timeout passes, then fails with cond's last status.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 50 * time.Millisecond
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, status)
		}
		time.Sleep(interval)
		interval = min(interval*2, 500*time.Millisecond)
	}
}

// waitDrained waits until the feeder is done, every relay alive, the emulator holds at least
// want events, and the group's committed offsets equal the end offsets on topics.
func waitDrained(t *testing.T, timeout time.Duration, adm *kadm.Client, group string, topics []string,
	f *feeder, emu *capi, want int, alive func() []*relayProc,
) {
	t.Helper()
	waitFor(t, timeout, "relays to deliver everything and commit to the end", func() (bool, string) {
		if alive != nil {
			for _, r := range alive() {
				if !r.running() {
					t.Fatalf("relay %s exited unexpectedly: %v", r.name, r.waitErr)
				}
			}
		}
		if f != nil && !f.finished() {
			return false, fmt.Sprintf("feeder produced %d", f.produced.Load())
		}
		if f != nil && f.err != nil {
			t.Fatalf("feeder: %v", f.err)
		}
		got := emu.Stats().EventsReceived
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		total, parts, err := lag(ctx, adm, group, topics...)
		status := fmt.Sprintf("emulator has %d/%d, lag %d:%s (err %v)", got, want, total, describeLag(parts), err)
		return err == nil && got >= want && total == 0, status
	})
}

// waitProgress waits until the emulator holds at least n events.
func waitProgress(t *testing.T, emu *capi, n int, rs ...*relayProc) {
	t.Helper()
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d events at the emulator", n), func() (bool, string) {
		assertAlive(t, rs...)
		got := emu.Stats().EventsReceived
		return got >= n, fmt.Sprintf("%d", got)
	})
}

// ---- Redis ----

func redisAddr() string { return os.Getenv("REDIS_ADDR") }

// privateRedis is a redis-server only this test uses, so it can be killed and restarted.
type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found: %v", err)
	}
	r := &privateRedis{t: t, port: serverPort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *privateRedis) start() {
	r.t.Helper()
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(r.done)
	rc := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer rc.Close()
	waitFor(r.t, 20*time.Second, "private redis-server to answer PING", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := rc.Ping(ctx).Err()
		return err == nil, fmt.Sprint(err)
	})
}

// kill SIGKILLs this test's redis-server (its PID only) and reaps it.
func (r *privateRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd = nil
}

// ---- private Kafka (for the broker restart) ----

type privateKafka struct {
	t   *testing.T
	dir string
	env []string
}

func kafkaScript(t *testing.T, env []string, arg string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "kafka-local.sh"), arg)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kafka-local.sh %s: %v\n%s", arg, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// startPrivateKafka starts a broker for this test only (scripts/kafka-local.sh with its own
// state dir), stopped by PID at test end. It returns the broker address.
func startPrivateKafka(t *testing.T) (*privateKafka, string) {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatalf("java not found: %v", err)
	}
	dir := t.TempDir()
	env := append(os.Environ(), "KAFKA_LOCAL_DIR="+dir)
	if os.Getenv("KAFKA_LIB_DIR") == "" {
		env = append(env, "KAFKA_LIB_DIR="+filepath.Join(repoRoot, ".kafka-it", "lib"))
	}
	k := &privateKafka{t: t, dir: dir, env: env}
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(repoRoot, "scripts", "kafka-local.sh"), "stop")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("kafka-local.sh stop: %v\n%s", err, out)
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "kafka.log")); err == nil {
				lines := strings.Split(string(b), "\n")
				t.Logf("---- private kafka log (tail) ----\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	start := time.Now()
	addr := kafkaScript(t, env, "start")
	t.Logf("private kafka on %s started in %s", addr, time.Since(start).Round(100*time.Millisecond))
	return k, addr
}

func (k *privateKafka) restart() time.Duration {
	start := time.Now()
	kafkaScript(k.t, k.env, "restart")
	return time.Since(start)
}

// assertExactlyOnce fails unless every expected event reached the emulator, nothing else
// did, and no event twice, except the copies the emulator itself caused by accepting a
// request after the relay had timed it out (reported, and 0 on an unloaded machine).
func assertExactlyOnce(t *testing.T, what string, d delivery, emu *capi) {
	t.Helper()
	late := int(emu.lateEvents.Load())
	t.Logf("%s: %s; %s", what, d, emu)
	if len(d.Lost) > 0 || len(d.Unexpected) > 0 || d.Duplicates > late {
		t.Fatalf("%s: want every event exactly once (%d duplicates are explained by requests accepted after the relay's timeout): %s",
			what, late, d)
	}
	if late > 0 {
		t.Logf("%s: %d duplicates come from requests the emulator accepted after the relay's request_timeout (a slow, loaded machine), not from the relay", what, late)
	}
}
