package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

// inspected is one input event and what the relay would make of it.
type inspected struct {
	where   string // file:line, file#index or topic/partition@offset
	ev      schema.Event
	wire    sink.Event
	dropped []sink.Dropped
	err     error // decode or validation error; nil means it would be sent
	stage   string
}

func cmdInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage:
  capirelay inspect [flags] FILE...          Avro container files (.avro) or JSON lines (.jsonl, .json)
  capirelay inspect [flags] -topic T -partition P -from N [-to M]

Prints each event's verdict and, per pixel, the exact request bodies capirelay would send
(without access_token). Nothing is sent. external_id from the identity map is filled only at
send time and is not shown.

Flags:
`)
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "configuration (for partner_agent, test codes, topics, brokers, validation limits)")
	kindFlag := fs.String("kind", "", "web or offline, for JSON lines and for container files whose record name does not say")
	topic := fs.String("topic", "", "read records from this Kafka topic instead of files")
	partition := fs.Int("partition", 0, "partition of -topic")
	from := fs.Int64("from", 0, "first offset to read from -topic")
	to := fs.Int64("to", -1, "offset to stop before (default: the end offset when inspect starts)")
	bodies := fs.Bool("bodies", true, "print the request bodies")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := defaultConfig()
	if *path != "" || *topic != "" {
		c, err := loadConfig(*path, os.Environ())
		if err != nil {
			return usageError{err}
		}
		cfg = c
	}
	var kind schema.Kind
	switch *kindFlag {
	case "":
	case "web":
		kind = schema.KindWeb
	case "offline":
		kind = schema.KindOffline
	default:
		return usageError{fmt.Errorf("-kind must be web or offline, not %q", *kindFlag)}
	}
	now := time.Now()
	prep := newPreparer(cfg)
	var items []inspected
	add := func(where string, ev schema.Event, err error) {
		it := inspected{where: where, ev: ev}
		if err != nil {
			it.err, it.stage = err, "decode"
		} else {
			it.dropped, it.err = prep.prepare(&ev, now, &it.wire)
			if it.err != nil {
				it.stage = "invalid"
			}
		}
		items = append(items, it)
	}

	switch {
	case *topic != "":
		if fs.NArg() > 0 {
			return usageError{errors.New("give files or -topic, not both")}
		}
		if err := inspectTopic(ctx, cfg, *topic, int32(*partition), *from, *to, add); err != nil {
			return err
		}
	case fs.NArg() == 0:
		fs.Usage()
		return usageError{errors.New("nothing to inspect")}
	default:
		for _, name := range fs.Args() {
			if err := inspectFile(name, kind, add); err != nil {
				return err
			}
		}
	}
	return printInspection(stdout, cfg, items, *bodies)
}

func inspectFile(name string, kind schema.Kind, add func(string, schema.Event, error)) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	switch strings.ToLower(filepath.Ext(name)) {
	case ".avro":
		return schema.ReadContainerFile(f, kind, func(i int, ev schema.Event, err error) error {
			add(fmt.Sprintf("%s#%d", name, i), ev, err)
			return nil
		})
	case ".jsonl", ".json", ".ndjson":
		if kind == 0 {
			return usageError{fmt.Errorf("%s: say -kind web or -kind offline for JSON input", name)}
		}
		return schema.ReadJSONLines(f, kind, func(line int, ev schema.Event, err error) error {
			add(fmt.Sprintf("%s:%d", name, line), ev, err)
			return nil
		})
	}
	return usageError{fmt.Errorf("%s: want a .avro container file or .jsonl JSON lines", name)}
}

func inspectTopic(ctx context.Context, cfg Config, topic string, partition int32, from, to int64, add func(string, schema.Event, error)) error {
	dec, err := newDecoder(cfg)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}))
	if err != nil {
		return err
	}
	defer cl.Close()
	if to < 0 {
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("end offset of %s: %w", topic, err)
		}
		o, ok := ends.Lookup(topic, partition)
		if !ok || o.Err != nil {
			return fmt.Errorf("%s[%d]: no such partition", topic, partition)
		}
		to = o.Offset
	}
	for next := from; next < to; {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fetches.Err0(); err != nil {
			return fmt.Errorf("reading %s[%d]: %w", topic, partition, err)
		}
		for _, r := range fetches.Records() {
			if r.Offset >= to {
				next = to
				break
			}
			ev, err := dec.Decode(ctx, topic, r.Value)
			add(fmt.Sprintf("%s/%d@%d", topic, partition, r.Offset), ev, err)
			next = r.Offset + 1
		}
	}
	return nil
}

func printInspection(w io.Writer, cfg Config, items []inspected, bodies bool) error {
	byPixel := map[string][]*sink.Event{}
	ok, bad := 0, 0
	for i, it := range items {
		verdict := "ok"
		if it.err != nil {
			verdict = it.stage + ": " + it.err.Error()
			bad++
		} else {
			ok++
			byPixel[it.ev.PixelID] = append(byPixel[it.ev.PixelID], &items[i].wire)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\tpixel %s\t%s\n", it.where, it.ev.EventName, it.ev.EventID, it.ev.PixelID, verdict)
		for _, d := range it.dropped {
			fmt.Fprintf(w, "\tdropped user_data.%s: %s\n", d.Field, d.Reason)
		}
	}
	fmt.Fprintf(w, "\n%d events: %d would be sent, %d would be dead-lettered\n", len(items), ok, bad)
	if !bodies {
		return nil
	}
	pixels := make([]string, 0, len(byPixel))
	for p := range byPixel {
		pixels = append(pixels, p)
	}
	sort.Strings(pixels)
	codes := testEventCodes(cfg.CAPI)
	for _, px := range pixels {
		evs := byPixel[px]
		for start, n := 0, 1; start < len(evs); start, n = start+cfg.CAPI.MaxBatch, n+1 {
			req := sink.Request{Data: evs[start:min(start+cfg.CAPI.MaxBatch, len(evs))], PartnerAgent: cfg.CAPI.PartnerAgent, TestEventCode: codes(px)}
			body, err := json.MarshalIndent(req, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "\nPOST %s/%s/%s/events  (request %d, %d events; access_token added when sent)\n%s\n",
				cfg.CAPI.BaseURL, cfg.CAPI.APIVersion, px, n, len(req.Data), body)
		}
	}
	return nil
}
