package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/capirelay/capirelay/processor"
	"github.com/capirelay/capirelay/schema"
)

// poison is a bad record and what its dead-letter copy must say.
type poison struct {
	rec           *kgo.Record
	class, reason string
}

// TestPoisonRecords interleaves bad records with good ones on a raw and a wire-format topic:
// random bytes, a wire record with an unknown schema id, and schema-valid events CAPI would
// reject (event_time 8 days old, a website event without user agent). Each bad record must
// land once in <topic>.dlq, byte for byte, with its class and reason headers and its source
// coordinates; every good event is delivered once; the offsets reach the end.
func TestPoisonRecords(t *testing.T) {
	requireServices(t)
	good := size("EVENTS", 6000)
	const badEach = 15
	rng := rand.New(rand.NewPCG(seed(t), 2))

	reg := srfake.New()
	t.Cleanup(reg.Close)
	seeds := brokers()
	cl, adm := newKafka(t, seeds)
	rawT, wireT, group := uniq(t, "raw"), uniq(t, "wire"), uniq(t, "group")
	for _, tp := range []string{rawT, wireT} {
		createTopic(t, adm, tp, 12)
		createTopic(t, adm, tp+".dlq", 1)
	}
	webSchema, _ := schema.EmbeddedSchema(schema.SchemaWebEvent)
	schemaID, _, err := reg.RegisterSchema(wireT+"-value", sr.Schema{Schema: webSchema, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	unknownID := schemaID + 1000

	// A local decoder with the relay's topic configuration says which decode reason random
	// bytes must get.
	srcl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := schema.NewDecoder(map[string]schema.TopicConfig{
		rawT:  {Mode: schema.ModeRaw, Schema: schema.SchemaWebEvent, Kind: schema.KindWeb},
		wireT: {Mode: schema.ModeWire, Kind: schema.KindWeb},
	}, schema.WithRegistry(srcl))
	if err != nil {
		t.Fatal(err)
	}
	randomPoison := func(topic string, i int) poison {
		for {
			b := make([]byte, 1+rng.IntN(120))
			for j := range b {
				b[j] = byte(rng.UintN(256))
			}
			if topic == wireT && rng.IntN(2) == 0 {
				b = schema.AppendWireHeader(nil, schemaID) // a real header, garbage body
				for range 1 + rng.IntN(60) {
					b = append(b, byte(rng.UintN(256)))
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := dec.Decode(ctx, topic, b)
			cancel()
			var de *schema.DecodeError
			if errors.As(err, &de) && !schema.IsTransient(err) {
				return poison{rec: &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("bad-random-%s-%d", topic, i)), Value: b},
					class: "decode", reason: de.Reason.String()}
			}
		}
	}

	var all []*kgo.Record
	var bad []poison
	var keys []eventKey
	for i := range good {
		ev := goodEvent(rawT, i)
		topic := rawT
		var rec *kgo.Record
		if i%2 == 1 {
			topic = wireT
			b, err := encoder().AppendWire(nil, schemaID, ev)
			if err != nil {
				t.Fatal(err)
			}
			rec = &kgo.Record{Topic: topic, Key: []byte(ev.EventID), Value: b}
		} else {
			rec = rawRecord(t, topic, ev)
		}
		all = append(all, rec)
		keys = append(keys, keyOf(ev))
	}
	for i := range badEach {
		bad = append(bad, randomPoison(rawT, i), randomPoison(wireT, i))

		ev := goodEvent(rawT, good+i)
		b, _ := encoder().AppendWire(nil, unknownID, ev)
		bad = append(bad, poison{rec: &kgo.Record{Topic: wireT, Key: []byte("bad-unknown-id-" + strconv.Itoa(i)), Value: b},
			class: "decode", reason: "unknown_schema_id"})

		old := goodEvent(rawT, good+badEach+i)
		old.EventTime = time.Now().Add(-8 * 24 * time.Hour).Unix()
		r := rawRecord(t, rawT, old)
		r.Key = []byte("bad-old-" + strconv.Itoa(i))
		bad = append(bad, poison{rec: r, class: "invalid", reason: "event_time_too_old"})

		noUA := goodEvent(rawT, good+2*badEach+i)
		noUA.User.ClientUserAgent = ""
		b, _ = encoder().AppendWire(nil, schemaID, noUA)
		bad = append(bad, poison{rec: &kgo.Record{Topic: wireT, Key: []byte("bad-no-ua-" + strconv.Itoa(i)), Value: b},
			class: "invalid", reason: "website_missing_user_agent"})
	}
	for _, p := range bad {
		all = append(all, p.rec)
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })

	emu := startEmulator(t)
	cfg := baseConfig(t, seeds, redisAddr(), group, emu, rawTopic(rawT),
		map[string]any{"name": wireT, "format": "wire", "kind": "web"}).
		set("schema_registry.url", reg.URL())
	relay := startRelay(t, "relay", cfg.write(t, "relay"))
	start := time.Now()
	f := startFeeder(t, cl, all, 3000)
	waitDrained(t, 3*time.Minute, adm, group, []string{rawT, wireT}, f, emu, good,
		func() []*relayProc { return []*relayProc{relay} })
	t.Logf("%d good and %d bad records relayed in %s", good, len(bad), time.Since(start).Round(time.Millisecond))

	assertExactlyOnce(t, "good events among poison", checkDelivery(emu, keys), emu)

	// Every bad record once in its topic's DLQ, byte for byte, with reason headers.
	dlq := map[string][]*kgo.Record{}
	for _, tp := range []string{rawT, wireT} {
		for _, r := range readAll(t, seeds, adm, tp+".dlq") {
			dlq[string(r.Key)] = append(dlq[string(r.Key)], r)
		}
	}
	reasons := map[string]int{}
	for _, p := range bad {
		key := string(p.rec.Key)
		got := dlq[key]
		delete(dlq, key)
		if len(got) != 1 {
			t.Errorf("%s: %d copies in the dead-letter topics, want 1", key, len(got))
			continue
		}
		r := got[0]
		h := headers(r)
		reasons[h[processor.HeaderClass]+"/"+h[processor.HeaderReason]]++
		switch {
		case r.Topic != p.rec.Topic+".dlq":
			t.Errorf("%s: dead-lettered to %s, want %s.dlq", key, r.Topic, p.rec.Topic)
		case string(r.Value) != string(p.rec.Value):
			t.Errorf("%s: dead-letter value differs from the original bytes", key)
		case h[processor.HeaderClass] != p.class || h[processor.HeaderReason] != p.reason:
			t.Errorf("%s: %s=%q %s=%q, want %q/%q (error header %q)", key, processor.HeaderClass, h[processor.HeaderClass],
				processor.HeaderReason, h[processor.HeaderReason], p.class, p.reason, h[processor.HeaderError])
		case h[processor.HeaderSourceTopic] != p.rec.Topic ||
			h[processor.HeaderSourcePartition] != strconv.Itoa(int(p.rec.Partition)) ||
			h[processor.HeaderSourceOffset] != strconv.FormatInt(p.rec.Offset, 10):
			t.Errorf("%s: source headers %s/%s/%s, want %s/%d/%d", key, h[processor.HeaderSourceTopic],
				h[processor.HeaderSourcePartition], h[processor.HeaderSourceOffset], p.rec.Topic, p.rec.Partition, p.rec.Offset)
		}
	}
	for key, rs := range dlq {
		t.Errorf("unexpected dead-letter record %q (%d copies, reason %q)", key, len(rs), headers(rs[0])[processor.HeaderReason])
	}
	t.Logf("dead-lettered by class/reason: %v", reasons)
	relay.stop(t, 30*time.Second)
}

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		if _, ok := m[h.Key]; !ok { // the relay's headers come first, the original's after
			m[h.Key] = string(h.Value)
		}
	}
	return m
}
