package processor

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter record headers. The record's key and value are the original bytes, and the
// original headers follow these, so a replay can restore the record exactly.
const (
	HeaderClass           = "capirelay.class"  // decode, invalid, or the sink's failure class
	HeaderReason          = "capirelay.reason" // stable snake_case reason
	HeaderError           = "capirelay.error"
	HeaderMetaCode        = "capirelay.meta.code"
	HeaderMetaSubcode     = "capirelay.meta.subcode"
	HeaderMetaMessage     = "capirelay.meta.message"
	HeaderMetaFBTraceID   = "capirelay.meta.fbtrace_id"
	HeaderSourceTopic     = "capirelay.source.topic"
	HeaderSourcePartition = "capirelay.source.partition"
	HeaderSourceOffset    = "capirelay.source.offset"
	HeaderAttempts        = "capirelay.attempts"
)

// failure is why a record is dead-lettered.
type failure struct {
	class, reason string
	err           error
	code, subcode int
	message       string
	fbtrace       string
	attempts      int
}

// deadLetter produces the original record to its dead-letter topic. The record is done only
// once Kafka acknowledged that produce (and its claim, if any, was released); a failed
// produce is retried, so the partition waits rather than losing the record.
func (p *Processor) deadLetter(t *task, f failure) {
	if p.crashed.Load() {
		return
	}
	p.stats.deadLettered(f.class + "/" + f.reason)
	p.log.Warn("dead-lettering record",
		"topic", t.rec.Topic, "partition", t.rec.Partition, "offset", t.rec.Offset,
		"class", f.class, "reason", f.reason, "meta_code", f.code, "fbtrace_id", f.fbtrace, "err", f.err)

	hdrs := []kgo.RecordHeader{
		{Key: HeaderClass, Value: []byte(f.class)},
		{Key: HeaderReason, Value: []byte(f.reason)},
		{Key: HeaderSourceTopic, Value: []byte(t.rec.Topic)},
		{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(t.rec.Partition)))},
		{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(t.rec.Offset, 10))},
		{Key: HeaderAttempts, Value: []byte(strconv.Itoa(f.attempts))},
	}
	if f.err != nil {
		hdrs = append(hdrs, kgo.RecordHeader{Key: HeaderError, Value: []byte(f.err.Error())})
	}
	if f.code != 0 {
		hdrs = append(hdrs,
			kgo.RecordHeader{Key: HeaderMetaCode, Value: []byte(strconv.Itoa(f.code))},
			kgo.RecordHeader{Key: HeaderMetaSubcode, Value: []byte(strconv.Itoa(f.subcode))},
			kgo.RecordHeader{Key: HeaderMetaMessage, Value: []byte(f.message)},
			kgo.RecordHeader{Key: HeaderMetaFBTraceID, Value: []byte(f.fbtrace)},
		)
	}
	hdrs = append(hdrs, t.rec.Headers...)
	rec := &kgo.Record{
		Topic:   p.cfg.DeadLetterTopic(t.rec.Topic),
		Key:     t.rec.Key,
		Value:   t.rec.Value,
		Headers: hdrs,
	}
	p.dlqWG.Add(1)
	p.produceDeadLetter(t, rec, 0)
}

func (p *Processor) produceDeadLetter(t *task, rec *kgo.Record, attempt int) {
	p.cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
		if err == nil {
			p.stats.deadLetterAcked.Add(1)
			p.complete(t, actionRelease)
			p.dlqWG.Done()
			return
		}
		if p.crashed.Load() || errors.Is(err, kgo.ErrClientClosed) {
			p.dlqWG.Done()
			return
		}
		p.log.Error("dead-letter produce failed; retrying",
			"dlq_topic", rec.Topic, "topic", t.rec.Topic, "partition", t.rec.Partition, "offset", t.rec.Offset, "err", err)
		// The callback runs on the producer's goroutine: wait elsewhere.
		time.AfterFunc(p.backoff(attempt), func() { p.produceDeadLetter(t, rec, attempt+1) })
	})
}
