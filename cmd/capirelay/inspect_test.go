package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/processor"
	"github.com/capirelay/capirelay/sink"
)

func TestInspectJSONLines(t *testing.T) {
	now := time.Now().Unix() - 60
	lines := []string{
		fmt.Sprintf(`{"event_id":"o1","event_name":"Purchase","event_time":%d,"pixel_id":"123","email":" John_Smith@gmail.com ","client_user_agent":"UA","event_source_url":"https://x.example/","custom_data":{"value":9.5,"currency":"usd"}}`, now),
		fmt.Sprintf(`{"event_id":"o2","event_name":"Purchase","event_time":%d,"pixel_id":"123","email":"a@b.co","event_source_url":"https://x.example/","custom_data":{"value":1,"currency":"usd"}}`, now),
		`{"event_id": broken`,
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := writeConfig(t, validYAML)
	var out, errb bytes.Buffer
	if code := run([]string{"inspect", "-config", cfgFile, "-kind", "web", file}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := out.String()
	for _, want := range []string{
		"events.jsonl:1\tPurchase\to1\tpixel 123\tok",
		"events.jsonl:2\tPurchase\to2\tpixel 123\tinvalid: ",
		sink.ReasonWebsiteMissingUserAgent,
		"events.jsonl:3", "decode: ",
		"3 events: 1 would be sent, 2 would be dead-lettered",
		`"partner_agent": "capirelay"`,
		// Meta's test vector for john_smith@gmail.com: the body is hashed as it will be sent.
		sink.HashString("john_smith@gmail.com"),
		"/v25.0/123/events",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "John_Smith") || strings.Contains(got, "from-file") {
		t.Errorf("output shows raw PII or the access token:\n%s", got)
	}
}

func TestInspectNeedsKindForJSON(t *testing.T) {
	file := filepath.Join(t.TempDir(), "e.jsonl")
	_ = os.WriteFile(file, []byte("{}\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"inspect", file}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "-kind") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestReplayDeadLetters(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "src", "src.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	defer cl.Close()
	dl := func(key, reason string) *kgo.Record {
		return &kgo.Record{Topic: "src.dlq", Key: []byte(key), Value: []byte("value-" + key), Headers: []kgo.RecordHeader{
			{Key: processor.HeaderClass, Value: []byte("invalid")},
			{Key: processor.HeaderReason, Value: []byte(reason)},
			{Key: processor.HeaderSourceTopic, Value: []byte("src")},
			{Key: "traceparent", Value: []byte("00-abc")},
		}}
	}
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, dl("a", "event_time_too_old"), dl("b", "website_missing_user_agent"), dl("c", "event_time_too_old")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	f := replayFilter{dlqTopic: "src.dlq", reasons: []string{"event_time_too_old"}, dryRun: true}
	res, err := replayDeadLetters(ctx, c.ListenAddrs(), f)
	if err != nil {
		t.Fatal(err)
	}
	if res.read != 3 || res.replayed != 2 || res.skipped != 1 {
		t.Fatalf("dry run: %+v", res)
	}
	f.dryRun = false
	if _, err := replayDeadLetters(ctx, c.ListenAddrs(), f); err != nil {
		t.Fatal(err)
	}
	rd, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("src"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer rd.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < 2 {
		fs := rd.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("source topic has %d replayed records, want 2 (the dry run must have published none)", len(got))
		}
		got = append(got, fs.Records()...)
	}
	// Anything more would be the dry run's doing.
	sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer scancel()
	got = append(got, rd.PollFetches(sctx).Records()...)
	if len(got) != 2 {
		t.Fatalf("source topic holds %d replayed records, want 2", len(got))
	}
	for _, r := range got {
		if string(r.Value) != "value-"+string(r.Key) || string(r.Key) == "b" {
			t.Errorf("replayed %q=%q", r.Key, r.Value)
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != "traceparent" {
			t.Errorf("headers %v: want only the original ones", r.Headers)
		}
	}
}
