package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/schema"
)

// The pixels events are spread over; the relay batches per pixel.
var benchPixels = []string{"1111111111111111", "2222222222222222", "3333333333333333", "4444444444444444"}

const benchToken = "bench-access-token"

var firstNames = []string{"Mary", "John", "Valéry", "Aiko", "Lars", "Fatima", "Diego", "Chloé"}
var cities = [][2]string{{"New York", "10001"}, {"Palo Alto", "94301-1234"}, {"Austin", "73301"}, {"Seattle", "98101"}}

// benchEvent is a realistic web purchase: email, phone, external_id, names, city, zip, IP,
// user agent, fbp and custom data with one content line. Person data repeats every 50,000
// events (as customers do), so the identity map sees the same people again. Each person
// has a phone number of their own: shared numbers would link one identifier to five
// external_ids in turn, and the identity map would rewrite that link on every event.
func benchEvent(id string, i int, now time.Time) schema.Event {
	p := i % 50_000
	value := float64(500+(i*7919)%20000) / 100
	c := cities[p%len(cities)]
	return schema.Event{
		Kind: schema.KindWeb, EventID: id, EventName: "Purchase",
		EventTime: now.Add(-time.Duration(i%3600) * time.Second).Unix(),
		PixelID:   benchPixels[i%len(benchPixels)], ActionSource: "website",
		EventSourceURL: "https://shop.example.com/checkout/thanks?o=" + id,
		User: schema.UserData{
			Emails:          []string{fmt.Sprintf(" Customer.%d@Example.com ", p)},
			Phones:          []string{fmt.Sprintf("+1 (650) %03d-%04d", 550+p/10000, p%10000)},
			ExternalIDs:     []string{"crm-user-" + strconv.Itoa(p)},
			FirstNames:      []string{firstNames[p%len(firstNames)]},
			Cities:          []string{c[0]},
			Zips:            []string{c[1]},
			ClientIPAddress: fmt.Sprintf("203.0.113.%d", p%250+1),
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
			FBP:             fmt.Sprintf("fb.1.%d.%d", now.UnixMilli(), 1_000_000_000+p),
		},
		Custom: schema.CustomData{Value: &value, Currency: "usd", OrderID: id, ContentType: "product",
			Contents: []schema.Content{{ID: "sku-" + strconv.Itoa(i%500), Quantity: 1, ItemPrice: &value}}},
		Consent: schema.Consent{Known: true, AdsAllowed: true},
	}
}

// recordPlan says what record i of a stream of n holds: with dupEvery = 10, every tenth
// record republishes the event three records before it (same event_id, same key, so the
// same partition), as a shop backend retrying a publish does. distinct counts the events
// that must reach CAPI once.
func recordPlan(i, dupEvery int) (eventIndex int, dup bool) {
	if dupEvery > 0 && i%dupEvery == dupEvery-1 && i >= 3 {
		return i - 3, true
	}
	return i, false
}

func distinctOf(n, dupEvery int) int {
	d := 0
	for i := 0; i < n; i++ {
		if _, dup := recordPlan(i, dupEvery); !dup {
			d++
		}
	}
	return d
}

func newProducer(brokers []string) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(200_000),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
}

func createTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ends, err := adm.ListEndOffsets(ctx, topic)
		ok := 0
		if err == nil {
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err == nil {
					ok++
				}
			})
		}
		if ok == int(partitions) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s: %d/%d partitions have a leader after 30s (%v)", topic, ok, partitions, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// produceBacklog encodes and produces n records of the plan to topic as fast as it can:
// one encoder goroutine per CPU, asynchronous produce with lingering batches.
func produceBacklog(ctx context.Context, cl *kgo.Client, topic, run string, n, dupEvery int) (time.Duration, error) {
	enc, err := schema.NewEncoder()
	if err != nil {
		return 0, err
	}
	now := time.Now()
	start := time.Now()
	var firstErr atomic.Value
	var wg sync.WaitGroup
	workers := max(1, runtime.GOMAXPROCS(0))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				ei, _ := recordPlan(i, dupEvery)
				id := run + "-" + strconv.Itoa(ei)
				b, err := enc.AppendRaw(make([]byte, 0, 640), benchEvent(id, ei, now))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(id), Value: b}, func(_ *kgo.Record, err error) {
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				})
			}
		}(w)
	}
	wg.Wait()
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	if v := firstErr.Load(); v != nil {
		return 0, fmt.Errorf("produce: %w", v.(error))
	}
	return time.Since(start), nil
}

// endOffsets sums the end offsets of topic.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int64, int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, 0, err
	}
	out := map[int32]int64{}
	var total int64
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, o.Err)
			return
		}
		out[o.Partition] = o.Offset
		total += o.Offset
	})
	return out, total, errors.Join(errs...)
}

// groupLag returns end minus committed, summed over topic's partitions, for group.
func groupLag(ctx context.Context, adm *kadm.Client, group, topic string, ends map[int32]int64) (int64, error) {
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1, err
	}
	var lag int64
	for p, end := range ends {
		c := int64(0)
		if o, ok := committed.Lookup(topic, p); ok && o.Err == nil && o.At > 0 {
			c = o.At
		}
		lag += end - c
	}
	return lag, nil
}
