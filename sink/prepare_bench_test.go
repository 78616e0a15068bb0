package sink

import (
	"testing"
)

// BenchmarkBuildValidate measures what the relay does to every decoded event before it is
// claimed and batched: sink.Build (normalize and hash user_data, map custom_data) followed by
// sink.Validate, with a reused Hasher as cmd/capirelay's preparer does.
func BenchmarkBuildValidate(b *testing.B) {
	src := webPurchase()
	src.User.Emails = src.User.Emails[:1]
	h := NewHasher()
	opts := ValidateOptions{MaxFutureSkew: DefaultMaxFutureSkew, ClampFuture: true}
	b.ReportAllocs()
	for b.Loop() {
		ev, _ := Build(src, BuildOptions{Now: buildNow, Hasher: h})
		if err := Validate(&ev, buildNow, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildValidateParallel is BenchmarkBuildValidate on every CPU, one Hasher per
// goroutine (the relay takes them from a sync.Pool).
func BenchmarkBuildValidateParallel(b *testing.B) {
	src := webPurchase()
	src.User.Emails = src.User.Emails[:1]
	opts := ValidateOptions{MaxFutureSkew: DefaultMaxFutureSkew, ClampFuture: true}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		h := NewHasher()
		for pb.Next() {
			ev, _ := Build(src, BuildOptions{Now: buildNow, Hasher: h})
			if err := Validate(&ev, buildNow, opts); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
