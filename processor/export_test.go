package processor

// BatchesReturned reports how many decompression buffers and record slices franz-go has
// given back to the processor's pool.
func (p *Processor) BatchesReturned() (buffers, records int64) {
	return p.batches.bytesBack.Load(), p.batches.recsBack.Load()
}
