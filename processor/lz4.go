package processor

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lz4Decompressor decompresses Kafka's LZ4 batches (LZ4 frames of independent blocks, as
// the Java client, librdkafka and franz-go write them) straight into one buffer of exactly
// the decompressed size. franz-go's default goes through lz4.Reader, which needs a block
// buffer of the frame's maximum block size (4 MiB for franz-go's producer) from a
// sync.Pool that every collection empties: those buffers were 8–12 MB of the relay's live
// heap and a steady stream of 4 MiB allocations. A first pass over each block's sequence
// headers sums the decompressed sizes without decoding anything.
//
// The xxHash checksums LZ4 frames may carry are not verified: the record batch's CRC-32C,
// which franz-go checks, already covers every compressed byte. Anything else (other
// codecs, dependent blocks, a frame this decoder does not understand) goes to franz-go's
// default decompressor, so the worst case is the old behaviour.
type lz4Decompressor struct {
	fallback kgo.Decompressor
	max      int        // decompressed bytes of one batch, as kgo.MaxDecompressBatchBytes
	pool     *batchPool // where batches decompress into; nil allocates each
}

func newLZ4Decompressor(max int, pool *batchPool) *lz4Decompressor {
	d := &lz4Decompressor{fallback: kgo.DefaultDecompressor(), max: max, pool: pool}
	if pool != nil {
		d.fallback = kgo.DefaultDecompressor(pool)
	}
	return d
}

// Decompress implements kgo.Decompressor.
func (d *lz4Decompressor) Decompress(src []byte, codec kgo.CompressionCodecType) ([]byte, error) {
	if codec != kgo.CodecLz4 {
		return d.fallback.Decompress(src, codec)
	}
	out, err := decodeLZ4(src, d.max, d.pool)
	if errors.Is(err, errLZ4TooLarge) {
		return nil, err
	}
	if err != nil {
		return d.fallback.Decompress(src, codec)
	}
	return out, nil
}

var (
	errLZ4          = errors.New("lz4: malformed or unsupported frame")
	errLZ4TooLarge  = errors.New("lz4: batch decompresses past the bound")
	lz4BlockMaxSize = [8]int{4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20}
)

const (
	lz4FrameMagic     = 0x184D2204
	lz4SkippableMagic = 0x184D2A50 // low four bits free
)

// lz4Block is one block of a frame: its bytes and, for a compressed one, where its output
// starts and how long it is.
type lz4Block struct {
	data     []byte
	raw      bool
	from, to int
}

// decodeLZ4 decodes the concatenated LZ4 frames in src into a buffer from pool (nil
// allocates it), refusing output past max.
func decodeLZ4(src []byte, max int, pool *batchPool) ([]byte, error) {
	var blocks []lz4Block
	total := 0
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, errLZ4
		}
		magic := binary.LittleEndian.Uint32(src)
		if magic&^0xF == lz4SkippableMagic {
			if len(src) < 8 {
				return nil, errLZ4
			}
			n := binary.LittleEndian.Uint32(src[4:])
			if uint64(n) > uint64(len(src)-8) {
				return nil, errLZ4
			}
			src = src[8+n:]
			continue
		}
		if magic != lz4FrameMagic || len(src) < 7 {
			return nil, errLZ4
		}
		flg, bd := src[4], src[5]
		blockMax := lz4BlockMaxSize[bd>>4&7]
		// Version 01, reserved bits clear, independent blocks, no dictionary id.
		if flg>>6 != 1 || flg&0x02 != 0 || bd&0x8F != 0 || blockMax == 0 || flg&0x20 == 0 || flg&0x01 != 0 {
			return nil, errLZ4
		}
		blockChecksum, contentSize, contentChecksum := flg&0x10 != 0, flg&0x08 != 0, flg&0x04 != 0
		i := 6
		if contentSize {
			i += 8
		}
		i++ // header checksum
		for {
			if len(src)-i < 4 {
				return nil, errLZ4
			}
			size := binary.LittleEndian.Uint32(src[i:])
			i += 4
			if size == 0 {
				break // end mark
			}
			raw := size&(1<<31) != 0
			n := int(size &^ (1 << 31))
			if n > blockMax || n > len(src)-i {
				return nil, errLZ4
			}
			b := lz4Block{data: src[i : i+n], raw: raw}
			i += n
			if blockChecksum {
				i += 4
			}
			out := n
			if !raw {
				var err error
				if out, err = lz4BlockLen(b.data); err != nil || out > blockMax {
					return nil, errLZ4
				}
			}
			if total+out > max {
				return nil, fmt.Errorf("%w of %d bytes", errLZ4TooLarge, max)
			}
			b.from, b.to = total, total+out
			total += out
			blocks = append(blocks, b)
		}
		if contentChecksum {
			i += 4
		}
		if i > len(src) {
			return nil, errLZ4
		}
		src = src[i:]
	}
	dst := pool.decompressBuffer(total)
	for _, b := range blocks {
		if b.raw {
			copy(dst[b.from:b.to], b.data)
			continue
		}
		n, err := lz4.UncompressBlock(b.data, dst[b.from:b.to])
		if err != nil || n != b.to-b.from {
			pool.PutDecompressBytes(dst)
			return nil, errLZ4
		}
	}
	return dst, nil
}

// lz4BlockLen returns the decompressed length of an LZ4 block by walking its sequence
// headers: each is a token, optional extra literal-length bytes, the literals (skipped), and
// unless it is the last, a 2-byte offset and optional extra match-length bytes.
func lz4BlockLen(src []byte) (int, error) {
	n, i := 0, 0
	for i < len(src) {
		token := src[i]
		i++
		lit := int(token >> 4)
		if lit == 15 {
			var ok bool
			if lit, i, ok = lz4ExtendLen(src, i, lit); !ok {
				return 0, errLZ4
			}
		}
		if lit > len(src)-i {
			return 0, errLZ4
		}
		i += lit
		n += lit
		if i == len(src) {
			return n, nil // the last sequence has literals only
		}
		if len(src)-i < 2 {
			return 0, errLZ4
		}
		i += 2 // offset
		match := int(token & 15)
		if match == 15 {
			var ok bool
			if match, i, ok = lz4ExtendLen(src, i, match); !ok {
				return 0, errLZ4
			}
		}
		n += match + 4
		if n > 1<<30 {
			return 0, errLZ4
		}
	}
	return 0, errLZ4 // a block cannot end after a match
}

// lz4ExtendLen adds to n the length bytes at src[i:] that follow a token's 15: each adds
// its value, and a 255 says another follows. It returns the length, the index after them,
// and false when src ends first.
func lz4ExtendLen(src []byte, i, n int) (int, int, bool) {
	for i < len(src) {
		b := src[i]
		i++
		n += int(b)
		if b != 255 {
			return n, i, true
		}
	}
	return 0, 0, false
}
