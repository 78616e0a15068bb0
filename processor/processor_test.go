package processor_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/processor"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

const pixel = "1234567890"

func events(from, to int) []schema.Event {
	var evs []schema.Event
	for i := from; i < to; i++ {
		evs = append(evs, webEvent(i, pixel))
	}
	return evs
}

func assertExactlyOnce(t *testing.T, got map[string]int, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		k := fmt.Sprintf("%s/Purchase/order-%06d", pixel, i)
		if got[k] != 1 {
			t.Errorf("%s delivered %d times, want 1", k, got[k])
		}
	}
	if len(got) != to-from {
		t.Errorf("%d distinct events delivered, want %d", len(got), to-from)
	}
}

func TestDeliversEachEventOnceAndCommitsToTheEnd(t *testing.T) {
	e := newEnv(t, 4)
	evs := events(0, 400)
	evs = append(evs, evs[:40]...) // republished: the dedup store must drop these
	e.produce(evs)
	r := e.startRelay()
	e.waitCommitted(30 * time.Second)
	if err := r.stop(t); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	assertExactlyOnce(t, e.sender.snapshot(), 0, 400)
	s := r.proc.Stats()
	if s.Duplicates != 40 || s.Delivered != 400 || s.Consumed != 440 {
		t.Fatalf("stats: %+v", s)
	}
}

// TestCommitsWhenDrained: with a commit interval far longer than the test, offsets are
// still committed once every record is done, in two bursts.
func TestCommitsWhenDrained(t *testing.T) {
	e := newEnv(t, 4)
	r := e.startRelay(func(c *processor.Config) { c.CommitInterval = time.Hour })
	for burst := range 2 {
		e.produce(events(burst*100, burst*100+100))
		e.waitCommitted(20 * time.Second)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	assertExactlyOnce(t, e.sender.snapshot(), 0, 200)
}

func TestBadRecordsAreDeadLetteredAndTheStreamGoesOn(t *testing.T) {
	e := newEnv(t, 1)
	old := webEvent(1000, pixel)
	old.EventTime = time.Now().Add(-8 * 24 * time.Hour).Unix()
	rejected := webEvent(1001, pixel)
	rejected.EventName = "RejectedByMeta"
	noConsent := webEvent(1002, pixel)
	noConsent.Consent = schema.Consent{Known: true, AdsAllowed: false}
	garbage := []byte("definitely not avro \xff")

	e.sender.reject = func(ev sink.Event) bool { return ev.EventName == "RejectedByMeta" }
	evs := append(events(0, 100), old, rejected, noConsent)
	evs = append(evs, events(100, 200)...)
	e.produce(evs, garbage)
	r := e.startRelay()
	e.waitCommitted(30 * time.Second)

	got := e.sender.snapshot()
	assertExactlyOnce(t, got, 0, 200)
	dl := e.deadLetters(3)
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dl))
	}
	byReason := map[string]string{}
	for _, rec := range dl {
		byReason[header(rec, processor.HeaderClass)+"/"+header(rec, processor.HeaderReason)] = string(rec.Value)
		if header(rec, processor.HeaderSourceTopic) != "web" || header(rec, processor.HeaderSourceOffset) == "" {
			t.Errorf("dead letter lacks its source: %v", rec.Headers)
		}
	}
	if v, ok := byReason["decode/"+schema.ReasonAvro.String()]; !ok || v != string(garbage) {
		t.Errorf("undecodable record: dead letters %v; want its original bytes under decode/%s", keys(byReason), schema.ReasonAvro)
	}
	if _, ok := byReason["invalid/"+sink.ReasonEventTimeTooOld]; !ok {
		t.Errorf("old event: dead letters %v", keys(byReason))
	}
	if _, ok := byReason["invalid/"+sink.ReasonInvalid]; !ok {
		t.Errorf("event Meta rejected: dead letters %v", keys(byReason))
	}
	for _, rec := range dl {
		if header(rec, processor.HeaderReason) == sink.ReasonInvalid {
			if header(rec, processor.HeaderMetaCode) != "100" || header(rec, processor.HeaderMetaFBTraceID) != "trace-test" {
				t.Errorf("Meta's verdict missing from headers: %v", rec.Headers)
			}
		}
	}
	if s := r.proc.Stats(); s.ConsentDropped != 1 {
		t.Errorf("consent dropped %d, want 1", s.ConsentDropped)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestCrashAndRestart stops a relay abruptly mid-stream (nothing flushed, nothing more
// committed) and starts another: every event arrives, and every duplicate is one the first
// relay had sent but not yet confirmed in the dedup store — the documented window.
func TestCrashAndRestart(t *testing.T) {
	e := newEnv(t, 3)
	base, ids := testStores(t, 500*time.Millisecond) // short lease: the restart need not wait 30 s
	rec := &recordingStore{Store: base, confirmed: map[dedupstore.Key]bool{}}
	e.store, e.identities = rec, ids
	const n = 3000
	e.produce(events(0, n))
	var fired atomic.Bool
	crashed := make(chan struct{})
	e.sender.after = func(sent int) {
		if sent >= n/3 && fired.CompareAndSwap(false, true) {
			close(crashed)
		}
	}
	e.sender.latency = 2 * time.Millisecond
	r1 := e.startRelay()
	select {
	case <-crashed:
	case <-time.After(30 * time.Second):
		t.Fatal("first relay never reached the crash point")
	}
	r1.crash(t)
	sentByFirst := e.sender.snapshot()
	if len(sentByFirst) >= n {
		t.Fatalf("crash came too late to test anything: %d of %d sent", len(sentByFirst), n)
	}
	unconfirmed := 0
	confirmedByFirst := map[string]bool{}
	for i := 0; i < n; i++ {
		k := key(i)
		confirmedByFirst[k.String()] = rec.wasConfirmed(k.Key)
		if sentByFirst[k.String()] > 0 && !confirmedByFirst[k.String()] {
			unconfirmed++
		}
	}

	r2 := e.startRelay()
	e.waitCommitted(60 * time.Second)
	if err := r2.stop(t); err != nil {
		t.Fatal(err)
	}
	got := e.sender.snapshot()
	dups := 0
	for i := 0; i < n; i++ {
		k := key(i)
		switch c := got[k.String()]; {
		case c == 0:
			t.Errorf("%s lost", k)
		case c > 1:
			dups += c - 1
			if sentByFirst[k.String()] == 0 || confirmedByFirst[k.String()] {
				t.Errorf("%s sent %d times outside the documented window", k, c)
			}
		}
	}
	if dups > unconfirmed {
		t.Errorf("%d duplicates, but only %d events were sent and unconfirmed at the crash", dups, unconfirmed)
	}
	t.Logf("crash after %d of %d sent; %d sent but unconfirmed at the crash; %d duplicates", len(sentByFirst), n, unconfirmed, dups)
}

type eventKey struct{ dedupstore.Key }

func (k eventKey) String() string { return k.PixelID + "/" + k.EventName + "/" + k.EventID }

func key(i int) eventKey {
	return eventKey{dedupstore.Key{PixelID: pixel, EventName: "Purchase", EventID: fmt.Sprintf("order-%06d", i)}}
}

// TestSecondRelayJoinsMidStream scales out while the first relay has requests in flight: its
// partitions move to the new member uncommitted, the new member finds their leases held and
// waits, and every event is still delivered exactly once.
func TestSecondRelayJoinsMidStream(t *testing.T) {
	for _, protocol := range []string{"classic", "consumer"} {
		t.Run(protocol, func(t *testing.T) { testSecondRelayJoinsMidStream(t, protocol) })
	}
}

func testSecondRelayJoinsMidStream(t *testing.T, protocol string) {
	withProtocol := func(c *processor.Config) { c.GroupProtocol = protocol }
	e := newEnv(t, 6)
	const n = 3000
	e.produce(events(0, n/2))
	e.sender.gate = make(chan struct{})
	r1 := e.startRelay(withProtocol)
	waitFor(t, 20*time.Second, "first relay consumes", func() bool { return r1.proc.Stats().Consumed > 0 })
	r2 := e.startRelay(withProtocol)
	e.produce(events(n/2, n))
	waitFor(t, 30*time.Second, "second relay gets partitions", func() bool { return r2.proc.Stats().Consumed > 0 })
	close(e.sender.gate)
	e.waitCommitted(60 * time.Second)
	if err := r1.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := r2.stop(t); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, e.sender.snapshot(), 0, n)
	s1, s2 := r1.proc.Stats(), r2.proc.Stats()
	t.Logf("relay 1 consumed %d, relay 2 consumed %d (held %d, duplicates %d)", s1.Consumed, s2.Consumed, s2.HeldRetries, s2.Duplicates)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBoundedInFlightPausesFetching: with a slow sink, a partition never holds more than its
// bound of unfinished records, and everything still arrives.
func TestBoundedInFlightPausesFetching(t *testing.T) {
	e := newEnv(t, 1)
	e.sender.latency = 20 * time.Millisecond
	e.produce(events(0, 1000))
	r := e.startRelay(func(c *processor.Config) { c.MaxInFlightPerPartition = 100; c.PollRecords = 50 })
	e.waitCommitted(60 * time.Second)
	assertExactlyOnce(t, e.sender.snapshot(), 0, 1000)
	if s := r.proc.Stats(); s.Pauses == 0 {
		t.Errorf("never paused with a bound of 100 and 1000 records: %+v", s)
	}
}

// TestMaxInFlightHoldsPollsBack: over all partitions no more than MaxInFlight records are
// open at once, by waiting before polling rather than by pausing partitions (which would
// throw away what the client fetched ahead); everything still arrives.
func TestMaxInFlightHoldsPollsBack(t *testing.T) {
	e := newEnv(t, 4)
	e.sender.latency = 20 * time.Millisecond
	e.produce(events(0, 2000))
	const bound = 150
	r := e.startRelay(func(c *processor.Config) { c.MaxInFlight = bound; c.PollRecords = 500 })
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			open := int64(0)
			for _, ps := range r.proc.Partitions() {
				open += int64(ps.Open)
			}
			if open > peak.Load() {
				peak.Store(open)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	e.waitCommitted(60 * time.Second)
	close(stop)
	<-sampled
	assertExactlyOnce(t, e.sender.snapshot(), 0, 2000)
	if p := peak.Load(); p > bound || p == 0 {
		t.Errorf("peak of %d records open, want 1..%d", p, bound)
	}
	if s := r.proc.Stats(); s.Waits == 0 || s.Pauses != 0 {
		t.Errorf("want polls held back and no partition paused: %+v", s)
	}
}

// TestGracefulStopCommitsWhatIsDone: stopping mid-stream commits exactly the finished
// prefix, and the next relay neither loses nor repeats anything.
func TestGracefulStopCommitsWhatIsDone(t *testing.T) {
	e := newEnv(t, 2)
	const n = 2000
	e.produce(events(0, n))
	e.sender.latency = 2 * time.Millisecond
	r1 := e.startRelay()
	for len(e.sender.snapshot()) < n/4 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := r1.stop(t); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	r2 := e.startRelay()
	e.waitCommitted(60 * time.Second)
	_ = r2.stop(t)
	got := e.sender.snapshot()
	assertExactlyOnce(t, got, 0, n)
	if d := r2.proc.Stats().Duplicates; d != 0 {
		t.Errorf("after a graceful stop the next relay re-read %d sent events; the stop committed too little", d)
	}
}

// TestLeaseRenewedWhileInSink: an event whose request takes several leases long keeps its
// lease, so nobody else may claim (and send) it meanwhile.
func TestLeaseRenewedWhileInSink(t *testing.T) {
	e := newEnv(t, 1)
	// Renewals every tenth of the lease: a loaded machine may delay a few of them.
	e.store, e.identities = testStores(t, time.Second)
	e.sender.gate = make(chan struct{})
	e.produce(events(0, 1))
	r := e.startRelay(func(c *processor.Config) { c.LeaseRenewInterval = 100 * time.Millisecond })
	waitFor(t, 20*time.Second, "the event is claimed", func() bool { return r.proc.Stats().Submitted == 1 })
	for i := 0; i < 3; i++ {
		time.Sleep(time.Second) // one whole lease each time
		rs, err := e.store.Claim(context.Background(), []dedupstore.Key{key(0).Key})
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].Status != dedupstore.Held {
			t.Fatalf("after %d leases in the sink the key is %v, want held by the relay", i+1, rs[0].Status)
		}
	}
	close(e.sender.gate)
	e.waitCommitted(20 * time.Second)
	assertExactlyOnce(t, e.sender.snapshot(), 0, 1)
	if r.proc.Stats().LeasesRenewed == 0 {
		t.Error("no lease renewal counted")
	}
}

// claimCounter counts the keys the processor asks the store to claim.
type claimCounter struct {
	dedupstore.Store
	mu     sync.Mutex
	claims map[dedupstore.Key]int
}

func (c *claimCounter) Claim(ctx context.Context, keys []dedupstore.Key) ([]dedupstore.Result, error) {
	c.mu.Lock()
	for _, k := range keys {
		c.claims[k]++
	}
	c.mu.Unlock()
	return c.Store.Claim(ctx, keys)
}

func (c *claimCounter) count(k dedupstore.Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claims[k]
}

// TestRepublishedWhileInSinkHeldLocally: an event republished while its first copy is
// still in the sink waits in the relay, not in store round trips that could only answer
// Held, and ends as a duplicate once the first copy is confirmed.
func TestRepublishedWhileInSinkHeldLocally(t *testing.T) {
	e := newEnv(t, 1)
	counter := &claimCounter{Store: e.store, claims: map[dedupstore.Key]int{}}
	e.store = counter
	e.sender.gate = make(chan struct{})
	e.produce(events(0, 1))
	r := e.startRelay(func(c *processor.Config) { c.HeldRetryInterval = 10 * time.Millisecond })
	waitFor(t, 20*time.Second, "the event is claimed", func() bool { return r.proc.Stats().Submitted == 1 })
	e.produce(events(0, 1)) // republished
	waitFor(t, 20*time.Second, "the copy is held", func() bool { return r.proc.Stats().HeldRetries > 0 })
	time.Sleep(200 * time.Millisecond) // about twenty held retries
	if n := counter.count(key(0).Key); n != 1 {
		t.Fatalf("the store was asked %d times for the key while its first copy was in the sink, want once", n)
	}
	close(e.sender.gate)
	e.waitCommitted(20 * time.Second)
	assertExactlyOnce(t, e.sender.snapshot(), 0, 1)
	if s := r.proc.Stats(); s.Duplicates != 1 || s.Delivered != 1 {
		t.Fatalf("stats: %+v", s)
	}
	if n := counter.count(key(0).Key); n != 2 {
		t.Fatalf("the store was asked %d times for the key, want twice (the first copy, then the republished one after it settled)", n)
	}
}

// The processor's settings reach the Kafka client. A partition resumed after a pause joins
// only the next fetch, and franz-go's default 5 s fetch wait made every resume stall the
// pipeline for up to 5 s. The session timeout decides how long a static member that
// restarts keeps its partitions.
func TestKafkaClientOptions(t *testing.T) {
	dec, err := schema.NewDecoder(map[string]schema.TopicConfig{"web": {Schema: schema.SchemaWebEvent}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cfg  func(*processor.Config)
		opt  any // a kgo option function, for OptValue
		want any
	}{
		{"fetch wait by default", func(*processor.Config) {}, kgo.FetchMaxWait, 100 * time.Millisecond},
		{"session timeout by default", func(*processor.Config) {}, kgo.SessionTimeout, 45 * time.Second},
		{"session timeout set", func(c *processor.Config) { c.SessionTimeout = 2 * time.Minute }, kgo.SessionTimeout, 2 * time.Minute},
		{"instance id", func(c *processor.Config) { c.InstanceID = "capirelay-0" }, kgo.InstanceID, "capirelay-0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := sink.NewBatcher(newFakeSender())
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(context.Background())
			cfg := processor.Config{Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: []string{"web"}}
			tt.cfg(&cfg)
			p, err := processor.New(cfg, processor.Deps{Decoder: dec, Store: dedupstore.NewMemory(), Sink: b,
				Prepare: func(*schema.Event, time.Time, *sink.Event) ([]sink.Dropped, error) { return nil, nil }})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Client().Close()
			if got := p.Client().OptValue(tt.opt); got != tt.want {
				t.Fatalf("OptValue = %v (%T), want %v", got, got, tt.want)
			}
		})
	}
}

// TestFetchedBatchesGoBackToThePool: once every record of a fetched batch is detached, its
// decompressed bytes and its record slice go back to the processor's pool, and events
// decoded from later batches that reuse them arrive intact. Batches come LZ4-compressed
// (lz4Decompressor) and Snappy-compressed (franz-go's decompressor, given the pool), in
// small produces so that there are many of them.
func TestFetchedBatchesGoBackToThePool(t *testing.T) {
	e := newEnv(t, 2)
	codecs := []kgo.CompressionCodec{kgo.Lz4Compression(), kgo.SnappyCompression()}
	for i, codec := range codecs {
		prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic("web"),
			kgo.ProducerBatchCompression(codec))
		if err != nil {
			t.Fatal(err)
		}
		for from := i * 200; from < (i+1)*200; from += 20 {
			var recs []*kgo.Record
			for _, ev := range events(from, from+20) {
				b, err := e.enc.AppendRaw(nil, ev)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, &kgo.Record{Key: []byte(ev.EventID), Value: b})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := prod.ProduceSync(ctx, recs...).FirstErr()
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		prod.Close()
	}
	r := e.startRelay(func(c *processor.Config) { c.PollRecords = 30 })
	e.waitCommitted(30 * time.Second)
	if err := r.stop(t); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	assertExactlyOnce(t, e.sender.snapshot(), 0, 400)
	buffers, records := r.proc.BatchesReturned()
	if buffers < 10 || records < 10 {
		t.Fatalf("%d decompression buffers and %d record slices came back from 20 batches or more; want 10 of each at least", buffers, records)
	}
}
