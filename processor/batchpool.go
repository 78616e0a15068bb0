package processor

import (
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// batchPool recycles what franz-go allocates per fetched record batch: the buffer a batch
// decompresses into and the slice of Records decoded from it (kgo.PoolDecompressBytes and
// kgo.PoolRecords). They were a sixth of the bytes the relay allocated, so of how often the
// collector ran. A batch's two slices come back once each of its records has been
// Recycled, which prepareTask does as soon as detach has copied the record out, so the pool
// holds only batches nothing reads any more, until the collector empties it. A record that
// is never recycled (fetched for a partition lost before it was polled, say) only leaves its
// batch to the collector.
//
// Slices are kept in classes a quarter of a power of two apart, so a batch takes a slice at
// most 25% larger than it needs: franz-go zeroes a returned buffer's whole capacity, and
// power-of-two classes doubled that work. Capacities outside [1<<minPooledShift,
// 1<<maxPooledShift] are not kept.
type batchPool struct {
	bytes [numPoolClasses]sync.Pool // of *[]byte
	recs  [numPoolClasses]sync.Pool // of *[]kgo.Record
	// bytesBack and recsBack count the slices franz-go gave back, for tests.
	bytesBack, recsBack atomic.Int64
}

const (
	minPooledShift = 4  // 16 bytes, or 16 records
	maxPooledShift = 26 // 64 MiB, or 64 Mi records
	numPoolClasses = 4*(maxPooledShift-minPooledShift) + 1
)

var (
	_ kgo.PoolDecompressBytes = (*batchPool)(nil)
	_ kgo.PoolRecords         = (*batchPool)(nil)
)

// classSize is the capacity of class c's slices.
func classSize(c int) int {
	if c == 0 {
		return 1 << minPooledShift
	}
	e := minPooledShift + (c-1)/4
	return 1<<e + ((c-1)%4+1)<<(e-2)
}

// classFor returns the smallest class whose slices hold n, or -1 when n is too large to pool.
func classFor(n int) int {
	if n <= 1<<minPooledShift {
		return 0
	}
	e := bits.Len(uint(n-1)) - 1 // 1<<e < n <= 1<<(e+1)
	if e >= maxPooledShift {
		return -1
	}
	quarter := 1 << (e - 2)
	q := (n - 1<<e + quarter - 1) / quarter // 1 to 4
	return 4*(e-minPooledShift) + q
}

// classOfCap returns the largest class whose slices fit in capacity n, or -1 when none
// does or n is too large to keep.
func classOfCap(n int) int {
	if n < 1<<minPooledShift || n > 1<<maxPooledShift {
		return -1
	}
	c := classFor(n)
	if classSize(c) > n {
		c--
	}
	return c
}

// decompressBuffer returns a slice of length n for a batch to decompress into; a nil pool
// allocates it.
func (p *batchPool) decompressBuffer(n int) []byte {
	c := classFor(n)
	if p == nil || c < 0 {
		return make([]byte, n)
	}
	if b, ok := p.bytes[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, classSize(c))
}

// GetDecompressBytes is for franz-go's own decompressor, which handles the codecs
// lz4Decompressor leaves to it; it grows the slice when the guess is short.
func (p *batchPool) GetDecompressBytes(compressed []byte, _ kgo.CompressionCodecType) []byte {
	return p.decompressBuffer(4 * len(compressed))[:0]
}

// PutDecompressBytes takes back a batch's buffer once all its records are recycled.
func (p *batchPool) PutDecompressBytes(b []byte) {
	if p == nil {
		return
	}
	p.bytesBack.Add(1)
	if c := classOfCap(cap(b)); c >= 0 {
		b = b[:0]
		p.bytes[c].Put(&b)
	}
}

// GetRecords returns a slice of capacity at least n for a batch's records.
func (p *batchPool) GetRecords(n int) []kgo.Record {
	c := classFor(n)
	if c < 0 {
		return make([]kgo.Record, 0, n)
	}
	if r, ok := p.recs[c].Get().(*[]kgo.Record); ok {
		return (*r)[:0]
	}
	return make([]kgo.Record, 0, classSize(c))
}

// PutRecords takes back a batch's records once all of them are recycled.
func (p *batchPool) PutRecords(r []kgo.Record) {
	p.recsBack.Add(1)
	if c := classOfCap(cap(r)); c >= 0 {
		r = r[:0]
		p.recs[c].Put(&r)
	}
}
