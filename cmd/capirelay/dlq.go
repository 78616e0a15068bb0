package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/processor"
)

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func cmdDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "replay" {
		return usageError{errors.New("usage: capirelay dlq replay --config FILE -dlq-topic TOPIC [-reason R]... [-class C]... [-dry-run]")}
	}
	fs := flag.NewFlagSet("dlq replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration (brokers)")
	dlqTopic := fs.String("dlq-topic", "", "the dead-letter topic to read, e.g. capi.web.dlq")
	toTopic := fs.String("to-topic", "", "publish here instead of each record's source topic")
	dryRun := fs.Bool("dry-run", false, "count what would be replayed, publish nothing")
	var reasons, classes listFlag
	fs.Var(&reasons, "reason", "replay only records with this capirelay.reason (repeatable)")
	fs.Var(&classes, "class", "replay only records with this capirelay.class (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dlqTopic == "" {
		return usageError{errors.New("-dlq-topic is required")}
	}
	cfg, err := loadConfig(*path, os.Environ())
	if err != nil {
		return usageError{err}
	}
	res, err := replayDeadLetters(ctx, cfg.Kafka.Brokers, replayFilter{
		dlqTopic: *dlqTopic, toTopic: *toTopic, reasons: reasons, classes: classes, dryRun: *dryRun,
	})
	if err != nil {
		return err
	}
	verb := "replayed"
	if *dryRun {
		verb = "would replay"
	}
	keys := make([]string, 0, len(res.byReason))
	for k := range res.byReason {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(stdout, "read %d dead letters from %s; %s %d, skipped %d\n", res.read, *dlqTopic, verb, res.replayed, res.skipped)
	for _, k := range keys {
		fmt.Fprintf(stdout, "  %-45s %d\n", k, res.byReason[k])
	}
	return nil
}

type replayFilter struct {
	dlqTopic, toTopic string
	reasons, classes  []string
	dryRun            bool
}

type replayResult struct {
	read, replayed, skipped int
	byReason                map[string]int
}

// replayDeadLetters re-publishes the dead letters that match, with their original key,
// value and headers, to their source topic. It reads up to the end offsets as they are when
// it starts, so records it dead-letters again meanwhile are not replayed in a loop.
// Replaying twice is harmless for events already delivered: the dedup store drops them.
func replayDeadLetters(ctx context.Context, brokers []string, f replayFilter) (replayResult, error) {
	res := replayResult{byReason: map[string]int{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, f.dlqTopic)
	if err != nil {
		return res, fmt.Errorf("start offsets of %s: %w", f.dlqTopic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, f.dlqTopic)
	if err != nil {
		return res, fmt.Errorf("end offsets of %s: %w", f.dlqTopic, err)
	}
	offsets := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	ends.Each(func(lo kadm.ListedOffset) {
		start, _ := starts.Lookup(lo.Topic, lo.Partition)
		if lo.Err == nil && lo.Offset > start.Offset {
			offsets[lo.Partition] = kgo.NewOffset().At(start.Offset)
			remaining[lo.Partition] = lo.Offset
		}
	})
	if len(offsets) == 0 {
		return res, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.dlqTopic: offsets})
	match := func(list []string, v string) bool { return len(list) == 0 || contains(list, v) }
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := fetches.Err0(); err != nil {
			return res, fmt.Errorf("reading %s: %w", f.dlqTopic, err)
		}
		var out []*kgo.Record
		for _, r := range fetches.Records() {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				continue
			}
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
			res.read++
			class, reason, source := headerValue(r, processor.HeaderClass), headerValue(r, processor.HeaderReason), headerValue(r, processor.HeaderSourceTopic)
			if !match(f.classes, class) || !match(f.reasons, reason) {
				res.skipped++
				continue
			}
			dest := f.toTopic
			if dest == "" {
				dest = source
			}
			if dest == "" {
				return res, fmt.Errorf("%s[%d]@%d has no %s header; give -to-topic", f.dlqTopic, r.Partition, r.Offset, processor.HeaderSourceTopic)
			}
			res.replayed++
			res.byReason[class+"/"+reason]++
			out = append(out, &kgo.Record{Topic: dest, Key: r.Key, Value: r.Value, Headers: originalHeaders(r.Headers)})
		}
		if len(out) > 0 && !f.dryRun {
			if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
				return res, fmt.Errorf("replaying to the source topic: %w", err)
			}
		}
	}
	return res, nil
}

// originalHeaders drops the headers capirelay added when dead-lettering.
func originalHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, "capirelay.") {
			out = append(out, h)
		}
	}
	return out
}

func headerValue(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
