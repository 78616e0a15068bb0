package sink

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkBatcherThroughput measures the batcher's own cost per event: Submit, batching,
// dispatch and settling, with a Sender that accepts everything at once.
func BenchmarkBatcherThroughput(b *testing.B) {
	for _, pixels := range []int{1, 100} {
		b.Run("pixels="+strconv.Itoa(pixels), func(b *testing.B) {
			bt := newTestBatcher(b, senderFunc(acceptAll))
			ids := make([]string, pixels)
			for i := range ids {
				ids[i] = strconv.Itoa(1_000_000 + i)
			}
			ev := Event{
				EventName: "Purchase", EventTime: 1_700_000_000, EventID: "order-123", ActionSource: "website",
				EventSourceURL: "https://shop.example.com/checkout",
				User:           UserData{Em: []string{"309a0a5c3e211326ae75ca18196d301a9bdbd1a882a4d2569511033da23f0abd"}},
			}
			done := func(Outcome) {}
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := bt.Submit(ctx, Item{PixelID: ids[i%pixels], Event: &ev, Done: done}); err != nil {
					b.Fatal(err)
				}
			}
			if err := bt.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
