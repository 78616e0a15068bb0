package processor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/processor"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

// fakeSender stands in for the Graph API. It behaves like Meta where the processor can tell
// the difference: a request holding one event it rejects fails as a whole with code 100.
type fakeSender struct {
	mu       sync.Mutex
	received map[string]int // pixel/event_name/event_id -> times received
	order    []string
	latency  time.Duration
	// reject says whether Meta would reject this event (then the whole request fails).
	reject func(ev sink.Event) bool
	// after, when set, is called after each accepted request (crash tests hook in here).
	after func(n int)
	// gate, when set, holds every request until it is closed.
	gate chan struct{}
}

// recordingStore remembers which keys were confirmed, so a test can tell a duplicate in
// the documented window (sent, never confirmed) from one outside it.
type recordingStore struct {
	dedupstore.Store
	mu        sync.Mutex
	confirmed map[dedupstore.Key]bool
}

func (s *recordingStore) Confirm(ctx context.Context, claims []dedupstore.Claim) error {
	err := s.Store.Confirm(ctx, claims)
	if err == nil {
		s.mu.Lock()
		for _, c := range claims {
			s.confirmed[c.Key] = true
		}
		s.mu.Unlock()
	}
	return err
}

func (s *recordingStore) wasConfirmed(k dedupstore.Key) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.confirmed[k]
}

func newFakeSender() *fakeSender { return &fakeSender{received: map[string]int{}} }

func (f *fakeSender) Send(ctx context.Context, pixel string, req *sink.Request) (*sink.Response, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.latency > 0 {
		select {
		case <-time.After(f.latency):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.reject != nil {
		for _, ev := range req.Data {
			if f.reject(*ev) {
				return nil, &sink.APIError{PixelID: pixel, HTTPStatus: 400, Class: sink.ClassInvalid,
					Graph: sink.GraphError{Code: 100, Message: "Invalid parameter", FBTraceID: "trace-test"}}
			}
		}
	}
	f.mu.Lock()
	for _, ev := range req.Data {
		k := pixel + "/" + ev.EventName + "/" + ev.EventID
		f.received[k]++
		f.order = append(f.order, k)
	}
	n := len(f.order)
	after := f.after
	f.mu.Unlock()
	if after != nil {
		after(n)
	}
	return &sink.Response{EventsReceived: len(req.Data), FBTraceID: "trace-ok"}, nil
}

func (f *fakeSender) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.received))
	for k, v := range f.received {
		out[k] = v
	}
	return out
}

// env is one test's Kafka cluster, stores and sender, shared by every relay instance the test
// starts, as a real deployment shares Kafka, Redis and Meta.
type env struct {
	t          *testing.T
	cluster    *kfake.Cluster
	brokers    []string
	store      dedupstore.Store
	identities dedupstore.IdentityMap
	sender     *fakeSender
	producer   *kgo.Client
	adm        *kadm.Client
	enc        *schema.Encoder
	group      string
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "web"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("web"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	enc, err := schema.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cluster: c, brokers: c.ListenAddrs(), sender: newFakeSender(), producer: prod,
		adm: kadm.NewClient(prod), enc: enc, group: "g-" + strings.ReplaceAll(t.Name(), "/", "-")}
	e.store, e.identities = testStores(t, 30*time.Second)
	return e
}

// testStores returns the Redis store on the real redis-server at REDIS_ADDR when there is
// one (the test command always starts one), else the in-memory store.
func testStores(t *testing.T, lease time.Duration) (dedupstore.Store, dedupstore.IdentityMap) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		if os.Getenv("CAPIRELAY_REQUIRE_SERVICES") == "1" {
			t.Fatal("REDIS_ADDR is not set but CAPIRELAY_REQUIRE_SERVICES=1")
		}
		return dedupstore.NewMemory(dedupstore.WithLease(lease)), dedupstore.NewMemoryIdentityMap()
	}
	rc := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rc.Close() })
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	return dedupstore.NewRedis(rc, dedupstore.WithPrefix(prefix+"dedup:"), dedupstore.WithLease(lease), dedupstore.WithBackoff(10*time.Millisecond, 200*time.Millisecond)),
		dedupstore.NewRedisIdentityMap(rc, dedupstore.WithPrefix(prefix+"id:"))
}

type relayInstance struct {
	proc    *processor.Processor
	batcher *sink.Batcher
	cancel  context.CancelFunc
	done    chan error
}

type relayOpt func(*processor.Config)

func (e *env) startRelay(opts ...relayOpt) *relayInstance {
	e.t.Helper()
	return e.startRelayWith(e.sender, nil, opts...)
}

// startRelayWith starts a relay sending through s (a fake, or a GraphClient to the
// emulator) with extra batcher options.
func (e *env) startRelayWith(s sink.Sender, bopts []sink.BatcherOption, opts ...relayOpt) *relayInstance {
	e.t.Helper()
	dec, err := schema.NewDecoder(map[string]schema.TopicConfig{"web": {Schema: schema.SchemaWebEvent}})
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := sink.NewBatcher(s, append([]sink.BatcherOption{sink.WithMaxBatch(50), sink.WithLinger(10 * time.Millisecond),
		sink.WithRetry(5*time.Millisecond, 50*time.Millisecond, 5*time.Second)}, bopts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := processor.Config{
		Brokers:         e.brokers,
		Group:           e.group,
		Topics:          []string{"web"},
		CommitInterval:  50 * time.Millisecond,
		RevokeTimeout:   2 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		Logger:          testLogger(),
		KafkaOptions:    []kgo.Opt{kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond)},
	}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := processor.New(cfg, processor.Deps{
		Decoder: dec, Store: e.store, Identities: e.identities, Sink: b,
		Prepare: func(ev *schema.Event, now time.Time, w *sink.Event) ([]sink.Dropped, error) {
			dropped := sink.BuildInto(w, ev, sink.BuildOptions{Now: now})
			return dropped, sink.Validate(w, now, sink.ValidateOptions{})
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ri := &relayInstance{proc: p, batcher: b, cancel: cancel, done: make(chan error, 1)}
	go func() { ri.done <- p.Run(ctx) }()
	e.t.Cleanup(func() { ri.stop(e.t) })
	return ri
}

// stop shuts the instance down gracefully and returns Run's error.
func (ri *relayInstance) stop(t *testing.T) error {
	ri.cancel()
	select {
	case err, ok := <-ri.done:
		if !ok {
			return nil
		}
		close(ri.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ri.batcher.Close(ctx)
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("relay did not stop within 30s")
		return nil
	}
}

// crash stops the instance as a kill would: nothing flushed, nothing more committed.
func (ri *relayInstance) crash(t *testing.T) {
	ri.proc.Crash()
	// A killed process sends nothing more: close the sink without letting it flush.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = ri.batcher.Close(ctx)
	ri.cancel()
	select {
	case <-ri.done:
		close(ri.done)
	case <-time.After(30 * time.Second):
		t.Fatal("crashed relay did not return within 30s")
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("CAPIRELAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func webEvent(i int, pixel string) schema.Event {
	v := float64(i%100) + 0.99
	return schema.Event{
		Kind: schema.KindWeb, EventID: fmt.Sprintf("order-%06d", i), EventName: "Purchase",
		EventTime: time.Now().Add(-time.Minute).Unix(), PixelID: pixel, ActionSource: "website",
		EventSourceURL: "https://shop.example.com/thanks",
		User: schema.UserData{
			Emails: []string{fmt.Sprintf("person%d@example.com", i)}, ExternalIDs: []string{fmt.Sprintf("u%d", i)},
			ClientUserAgent: "Mozilla/5.0", ClientIPAddress: "203.0.113.7",
		},
		Custom:  schema.CustomData{Value: &v, Currency: "USD"},
		Consent: schema.Consent{Known: true, AdsAllowed: true},
	}
}

// produce publishes the events (and any raw values) to topic "web".
func (e *env) produce(evs []schema.Event, raw ...[]byte) {
	e.t.Helper()
	var recs []*kgo.Record
	for _, ev := range evs {
		b, err := e.enc.AppendRaw(nil, ev)
		if err != nil {
			e.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(ev.EventID), Value: b})
	}
	for _, r := range raw {
		recs = append(recs, &kgo.Record{Value: r})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// lag is end offset minus committed offset summed over the topic's partitions.
func (e *env) lag(topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := e.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return -1
	}
	committed, err := e.adm.FetchOffsets(ctx, e.group)
	if err != nil {
		return -1
	}
	var lag int64
	ends.Each(func(lo kadm.ListedOffset) {
		c := int64(0)
		if o, ok := committed.Lookup(lo.Topic, lo.Partition); ok && o.At > 0 {
			c = o.At
		}
		lag += lo.Offset - c
	})
	return lag
}

// waitCommitted waits until the group committed every record of topic "web".
func (e *env) waitCommitted(timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if e.lag("web") == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("lag still %d after %s", e.lag("web"), timeout)
}

// deadLetters reads every record of the dead-letter topic.
func (e *env) deadLetters(want int) []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics("web.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("read %d of %d dead letters", len(out), want)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
