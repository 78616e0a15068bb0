package processor_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/processor"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

type benchAcceptAll struct{}

func (benchAcceptAll) Send(_ context.Context, _ string, req *sink.Request) (*sink.Response, error) {
	return &sink.Response{EventsReceived: len(req.Data)}, nil
}

// BenchmarkProcessorPerRecord measures the processor's per-record path — poll, decode,
// Build+Validate, consent, claim (in-memory store), identity map, batcher submit, outcome,
// confirm, watermark and commit — on b.N records. The per-record path is unexported, so it
// is driven through Processor.Run on franz-go's in-process kfake cluster (no network beyond
// loopback, no broker JVM) with the in-memory dedup store and a Sender that accepts every
// request at once. The records are produced before the timer starts; the timer stops when
// every record is committed. It includes the group join (about 0.1-0.5 s), so run it with
// -benchtime of at least 100000x.
func BenchmarkProcessorPerRecord(b *testing.B) {
	const partitions = 12
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "web"), kfake.AllowAutoTopicCreation())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("web"),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	enc, err := schema.NewEncoder()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	for i := 0; i < b.N; i++ {
		ev := webEvent(i, strconv.Itoa(1_000_000+i%4))
		ev.EventTime = now.Add(-time.Minute).Unix()
		v, err := enc.AppendRaw(nil, ev)
		if err != nil {
			b.Fatal(err)
		}
		prod.Produce(ctx, &kgo.Record{Key: []byte(ev.EventID), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}

	dec, err := schema.NewDecoder(map[string]schema.TopicConfig{"web": {Schema: schema.SchemaWebEvent}})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bt, err := sink.NewBatcher(benchAcceptAll{}, sink.WithMaxBatch(500), sink.WithLinger(20*time.Millisecond), sink.WithLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	pool := sync.Pool{New: func() any { return sink.NewHasher() }} // as cmd/capirelay's preparer
	p, err := processor.New(processor.Config{
		Brokers: c.ListenAddrs(), Group: "bench", Topics: []string{"web"},
		CommitInterval: 100 * time.Millisecond, Logger: log,
	}, processor.Deps{
		Decoder: dec, Store: dedupstore.NewMemory(), Identities: dedupstore.NewMemoryIdentityMap(), Sink: bt,
		Prepare: func(ev *schema.Event, now time.Time, w *sink.Event) ([]sink.Dropped, error) {
			h := pool.Get().(*sink.Hasher)
			dropped := sink.BuildInto(w, ev, sink.BuildOptions{Now: now, Hasher: h})
			pool.Put(h)
			return dropped, sink.Validate(w, now, sink.ValidateOptions{})
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	adm := kadm.NewClient(prod)
	b.ReportAllocs()
	b.ResetTimer()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	for {
		committed, err := adm.FetchOffsets(ctx, "bench")
		if err == nil {
			var n int64
			committed.Each(func(o kadm.OffsetResponse) { n += max(o.At, 0) })
			if n >= int64(b.N) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	_ = bt.Close(ctx)
}
