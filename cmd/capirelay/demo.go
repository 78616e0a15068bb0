package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/processor"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
	"github.com/capirelay/capirelay/sink/emulator"
)

// The demo's advertisers: two shops and a card issuer whose CRM reports approvals.
var demoPixels = []struct{ id, token, name string }{
	{"1111111111111111", "EAAdemoShopAlpha", "shop-alpha"},
	{"2222222222222222", "EAAdemoShopBeta", "shop-beta"},
	{"3333333333333333", "EAAdemoCardIssuer", "card-issuer"},
}

type demoOptions struct {
	web, offline int
	dupRate      float64
	seed         uint64
	timeout      time.Duration
	verbose      bool
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o demoOptions
	fs.IntVar(&o.web, "web", 3000, "web events to publish (before duplicates)")
	fs.IntVar(&o.offline, "offline", 600, "offline CRM Approval events to publish")
	fs.Float64Var(&o.dupRate, "dup-rate", 0.1, "share of web events published twice with the same event_id")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed, for a repeatable mix")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up if the relay has not caught up by then")
	fs.BoolVar(&o.verbose, "v", false, "show the relay's logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.web < 10 || o.offline < 1 || o.dupRate < 0 || o.dupRate > 1 {
		return usageError{errors.New("need -web >= 10, -offline >= 1 and 0 <= -dup-rate <= 1")}
	}
	res, err := runDemo(ctx, o, stdout, stderr)
	if err != nil {
		return err
	}
	res.print(stdout)
	if len(res.problems) > 0 {
		return fmt.Errorf("demo result is wrong: %s", strings.Join(res.problems, "; "))
	}
	return nil
}

// demoPlan is what the generator published and so what must come out.
type demoPlan struct {
	records     map[string]int // per topic
	distinct    map[string]int // events each pixel must receive exactly once
	dupes       int            // records repeating an event_id
	noConsent   int
	enrichable  map[string]string // offline event_id -> external_id the identity map must supply
	deadLetters map[string]int    // by class/reason
}

type demoResult struct {
	plan      demoPlan
	stats     processor.Stats
	received  map[string]int
	committed map[string]map[int32][2]int64 // topic -> partition -> {committed, end}
	dlq       map[string]int
	elapsed   time.Duration
	problems  []string
}

func runDemo(ctx context.Context, o demoOptions, stdout, stderr io.Writer) (*demoResult, error) {
	logOut := io.Discard
	if o.verbose {
		logOut = stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// Embedded Kafka.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "capi.web"), kfake.SeedTopics(2, "capi.offline"),
		kfake.AllowAutoTopicCreation())
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	defer cluster.Close()

	// Embedded schema registry: web events arrive in Confluent wire format, offline ones raw.
	reg := srfake.New()
	defer reg.Close()
	webSchema, _ := schema.EmbeddedSchema(schema.SchemaWebEvent)
	webID, _, err := reg.RegisterSchema("capi.web-value", sr.Schema{Schema: webSchema, Type: sr.TypeAvro})
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}

	// The Conversions API emulator.
	var emuOpts []emulator.Option
	for _, px := range demoPixels {
		emuOpts = append(emuOpts, emulator.WithPixel(px.id, px.token))
	}
	emu := emulator.New(emuOpts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	cfg := defaultConfig()
	cfg.Kafka.Brokers = cluster.ListenAddrs()
	cfg.Kafka.Group = "capirelay-demo"
	cfg.Kafka.CommitInterval = 200 * time.Millisecond
	cfg.SchemaRegistry.URL = reg.URL()
	cfg.Redis.Addrs = []string{"in-memory"}
	cfg.CAPI.BaseURL = "http://" + ln.Addr().String()
	cfg.CAPI.PartnerAgent = "capirelay"
	cfg.CAPI.Linger = 50 * time.Millisecond
	cfg.CAPI.Pixels = map[string]PixelConfig{}
	for _, px := range demoPixels {
		cfg.CAPI.Pixels[px.id] = PixelConfig{AccessToken: px.token}
	}
	cfg.ShutdownTimeout = 20 * time.Second
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r, err := newRelay(ctx, cfg, relayParts{
		log:        log,
		store:      dedupstore.NewMemory(dedupstore.WithLease(cfg.Redis.Lease), dedupstore.WithTTL(cfg.Redis.DedupTTL)),
		identities: dedupstore.NewMemoryIdentityMap(dedupstore.WithTTL(cfg.Redis.IdentityTTL)),
	})
	if err != nil {
		return nil, err
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.DefaultProduceTopic("capi.web"))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	adm := kadm.NewClient(prod)

	start := time.Now()
	runCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.run(runCtx) }()

	gen := newDemoGenerator(o, start, uint32(webID))
	fmt.Fprintf(stdout, "capirelay demo: embedded Kafka %v, schema registry, CAPI emulator %s\n", cfg.Kafka.Brokers, cfg.CAPI.BaseURL)

	waitCtx, cancelWait := context.WithTimeout(ctx, o.timeout)
	defer cancelWait()
	progress := func(phase string) error {
		return waitCaughtUp(waitCtx, adm, cfg.Kafka.Group, []string{"capi.web", "capi.offline"}, func() {
			s := r.proc.Stats()
			fmt.Fprintf(stdout, "  %-8s consumed %6d  sent %6d  duplicates %5d  dead-lettered %d  emulator %6d\n",
				phase, s.Consumed, s.Delivered, s.Duplicates, sumValues(s.DeadLettered), len(emu.Received()))
		})
	}

	// Phase 1: the web events (with duplicates, a refusal of consent, one undecodable
	// record and one event too old for Meta).
	if err := produceAll(waitCtx, prod, gen.webRecords()); err != nil {
		return nil, err
	}
	if err := progress("web"); err != nil {
		return nil, fmt.Errorf("waiting for the web events: %w", err)
	}
	// Phase 2: the CRM's approvals, which carry no external_id: the identity map filled by
	// phase 1 must supply it.
	if err := produceAll(waitCtx, prod, gen.offlineRecords()); err != nil {
		return nil, err
	}
	if err := progress("offline"); err != nil {
		return nil, fmt.Errorf("waiting for the offline events: %w", err)
	}

	stopRelay()
	if err := <-relayDone; err != nil {
		return nil, fmt.Errorf("relay shutdown: %w", err)
	}
	res := &demoResult{plan: gen.plan, stats: r.proc.Stats(), elapsed: time.Since(start)}
	res.check(ctx, emu, adm, cfg.Kafka.Group, cfg.Kafka.Brokers)
	return res, nil
}

func sumValues(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// waitCaughtUp waits until the group's committed offsets equal the topics' end offsets,
// reporting progress every second.
func waitCaughtUp(ctx context.Context, adm *kadm.Client, group string, topics []string, report func()) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		lag, err := groupLag(ctx, adm, group, topics)
		if err == nil && lag == 0 {
			report()
			return nil
		}
		if time.Since(last) >= time.Second {
			report()
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// groupLag is the sum over the topics' partitions of end offset minus committed offset.
func groupLag(ctx context.Context, adm *kadm.Client, group string, topics []string) (int64, error) {
	off, err := committedAndEnd(ctx, adm, group, topics)
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, parts := range off {
		for _, ce := range parts {
			lag += ce[1] - max(ce[0], 0)
		}
	}
	return lag, nil
}

func committedAndEnd(ctx context.Context, adm *kadm.Client, group string, topics []string) (map[string]map[int32][2]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[int32][2]int64)
	ends.Each(func(lo kadm.ListedOffset) {
		c := int64(-1)
		if o, ok := committed.Lookup(lo.Topic, lo.Partition); ok && o.Err == nil {
			c = o.At
		}
		if out[lo.Topic] == nil {
			out[lo.Topic] = make(map[int32][2]int64)
		}
		out[lo.Topic][lo.Partition] = [2]int64{c, lo.Offset}
	})
	return out, nil
}

func produceAll(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producing demo records: %w", err)
	}
	return nil
}

// check compares what came out with the plan.
func (res *demoResult) check(ctx context.Context, emu *emulator.Server, adm *kadm.Client, group string, brokers []string) {
	bad := func(format string, args ...any) { res.problems = append(res.problems, fmt.Sprintf(format, args...)) }

	res.received = make(map[string]int)
	seen := make(map[string]int)
	for _, ev := range emu.Received() {
		res.received[ev.PixelID]++
		seen[ev.PixelID+"\x00"+ev.EventName+"\x00"+ev.EventID]++
		if want, ok := res.plan.enrichable[ev.EventID]; ok {
			var body struct {
				UserData struct {
					ExternalID []string `json:"external_id"`
				} `json:"user_data"`
			}
			if err := json.Unmarshal(ev.Raw, &body); err != nil || !slices.Contains(body.UserData.ExternalID, sink.HashString(want)) {
				bad("offline event %s reached CAPI without the external_id of its web counterpart", ev.EventID)
			}
		}
	}
	for key, n := range seen {
		if n > 1 {
			bad("event %q reached CAPI %d times", strings.ReplaceAll(key, "\x00", "/"), n)
		}
	}
	for _, px := range demoPixels {
		if got, want := res.received[px.id], res.plan.distinct[px.id]; got != want {
			bad("pixel %s received %d events, want %d", px.id, got, want)
		}
	}
	if got := res.stats.Duplicates; got != int64(res.plan.dupes) {
		bad("%d duplicates dropped, want %d", got, res.plan.dupes)
	}
	if got := res.stats.ConsentDropped; got != int64(res.plan.noConsent) {
		bad("%d events dropped for consent, want %d", got, res.plan.noConsent)
	}

	res.dlq = make(map[string]int)
	if err := readDeadLetters(ctx, adm, brokers, res.dlq); err != nil {
		bad("reading the dead-letter topics: %v", err)
	}
	for reason, want := range res.plan.deadLetters {
		if got := res.dlq[reason]; got != want {
			bad("dead-letter topic holds %d records for %s, want %d", got, reason, want)
		}
	}
	if len(res.dlq) != len(res.plan.deadLetters) {
		bad("dead-letter reasons %v, want %v", res.dlq, res.plan.deadLetters)
	}

	off, err := committedAndEnd(ctx, adm, group, []string{"capi.web", "capi.offline"})
	if err != nil {
		bad("reading committed offsets: %v", err)
	}
	res.committed = off
	for topic, parts := range off {
		for p, ce := range parts {
			if ce[0] != ce[1] {
				bad("%s[%d] committed %d, end offset %d", topic, p, ce[0], ce[1])
			}
		}
	}
}

// readDeadLetters counts the dead-letter topics' records by class/reason header.
func readDeadLetters(ctx context.Context, adm *kadm.Client, brokers []string, into map[string]int) error {
	topics := []string{"capi.web.dlq", "capi.offline.dlq"}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return err
	}
	want := 0
	offsets := make(map[string]map[int32]kgo.Offset)
	ends.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil || lo.Offset == 0 {
			return
		}
		want += int(lo.Offset)
		if offsets[lo.Topic] == nil {
			offsets[lo.Topic] = make(map[int32]kgo.Offset)
		}
		offsets[lo.Topic][lo.Partition] = kgo.NewOffset().AtStart()
	})
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(offsets))
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for got := 0; got < want; {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return fmt.Errorf("read %d of %d dead letters: %w", got, want, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			var class, reason string
			for _, h := range r.Headers {
				switch h.Key {
				case processor.HeaderClass:
					class = string(h.Value)
				case processor.HeaderReason:
					reason = string(h.Value)
				}
			}
			into[class+"/"+reason]++
		})
	}
	return nil
}

func (res *demoResult) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	s := res.stats
	fmt.Fprintf(tw, "\nsummary (%.1fs)\n", res.elapsed.Seconds())
	fmt.Fprintf(tw, "  consumed\t%d\trecords (web %d, offline %d)\n", s.Consumed, res.plan.records["capi.web"], res.plan.records["capi.offline"])
	fmt.Fprintf(tw, "  duplicates dropped\t%d\n", s.Duplicates)
	fmt.Fprintf(tw, "  dropped for consent\t%d\n", s.ConsentDropped)
	fmt.Fprintf(tw, "  external_id from identity map\t%d\n", s.Enriched)
	fmt.Fprintf(tw, "  sent per pixel\n")
	for _, px := range demoPixels {
		fmt.Fprintf(tw, "    %s (%s)\t%d\tof %d expected\n", px.id, px.name, res.received[px.id], res.plan.distinct[px.id])
	}
	fmt.Fprintf(tw, "  dead-lettered by reason\n")
	reasons := make([]string, 0, len(res.dlq))
	for k := range res.dlq {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		fmt.Fprintf(tw, "    %s\t%d\n", k, res.dlq[k])
	}
	fmt.Fprintf(tw, "  committed / end offsets\n")
	topics := make([]string, 0, len(res.committed))
	for t := range res.committed {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		parts := make([]int32, 0)
		for p := range res.committed[t] {
			parts = append(parts, p)
		}
		slices.Sort(parts)
		var b strings.Builder
		for _, p := range parts {
			ce := res.committed[t][p]
			fmt.Fprintf(&b, " p%d %d/%d", p, ce[0], ce[1])
		}
		fmt.Fprintf(tw, "    %s\t%s\n", t, b.String())
	}
	tw.Flush()
	if len(res.problems) == 0 {
		fmt.Fprintln(w, "\nRESULT: OK: every distinct event reached CAPI exactly once, bad records are in the dead-letter topics, offsets committed to the end")
		return
	}
	fmt.Fprintln(w, "\nRESULT: WRONG")
	for _, p := range res.problems {
		fmt.Fprintln(w, "  -", p)
	}
}

// demoGenerator makes a realistic, repeatable mix of records.
type demoGenerator struct {
	o      demoOptions
	rng    *rand.Rand
	now    time.Time
	webID  uint32
	enc    *schema.Encoder
	plan   demoPlan
	people []demoPerson
}

type demoPerson struct {
	email, phone, externalID, first, last, city, zip string
}

func newDemoGenerator(o demoOptions, now time.Time, webSchemaID uint32) *demoGenerator {
	enc, err := schema.NewEncoder()
	if err != nil {
		panic(err) // the embedded schemas compile, or the build is broken
	}
	g := &demoGenerator{
		o: o, rng: rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)), now: now, webID: webSchemaID, enc: enc,
		plan: demoPlan{records: map[string]int{}, distinct: map[string]int{}, enrichable: map[string]string{}, deadLetters: map[string]int{}},
	}
	firsts := []string{"Mary", "John", "Valéry", "Aiko", "Lars", "Fatima", "Diego", "Chloé"}
	lasts := []string{"Smith", "Okafor", "Müller", "García", "Tanaka", "O'Brien", "Dubois"}
	mailboxes := []string{"mary.smith", "john_okafor", "valery.m", "aiko.tanaka", "lars", "fatima.g", "diego+shop", "chloe.d"}
	cities := [][2]string{{"New York", "10001"}, {"Palo Alto", "94301-1234"}, {"Austin", "73301"}, {"Seattle", "98101"}}
	for i := 0; i < o.offline+50; i++ {
		c := cities[i%len(cities)]
		g.people = append(g.people, demoPerson{
			email:      fmt.Sprintf(" %s%d@Example.com ", mailboxes[i%len(mailboxes)], i),
			phone:      fmt.Sprintf("+1 (650) 555-%04d", i%10000),
			externalID: fmt.Sprintf("crm-user-%06d", i),
			first:      firsts[i%len(firsts)], last: lasts[i%len(lasts)], city: c[0], zip: c[1],
		})
	}
	return g
}

func (g *demoGenerator) recent() int64 {
	return g.now.Add(-time.Duration(g.rng.Int64N(int64(2 * time.Hour)))).Unix()
}

func (g *demoGenerator) webRecords() []*kgo.Record {
	var recs []*kgo.Record
	add := func(ev schema.Event, deliver bool) {
		b, err := g.enc.AppendWire(nil, int(g.webID), ev)
		if err != nil {
			panic(err)
		}
		recs = append(recs, &kgo.Record{Topic: "capi.web", Key: []byte(ev.EventID), Value: b})
		if deliver {
			g.plan.distinct[ev.PixelID]++
		}
	}
	// Applications on the card issuer's site: the people whose approvals follow offline.
	for i := 0; i < g.o.offline; i++ {
		p := g.people[i]
		ev := g.webEvent(demoPixels[2].id, "SubmitApplication", fmt.Sprintf("app-%06d", i), p, nil)
		add(ev, true)
	}
	for i := 0; i < max(g.o.web-g.o.offline, g.o.web/2); i++ {
		p := g.people[g.rng.IntN(len(g.people))]
		value := float64(g.rng.IntN(20000)+500) / 100
		ev := g.webEvent(demoPixels[i%2].id, "Purchase", fmt.Sprintf("order-%06d", i), p, &value)
		if i%97 == 13 {
			ev.Consent = schema.Consent{Known: true, AdsAllowed: false}
			add(ev, false)
			g.plan.noConsent++
			continue
		}
		add(ev, true)
		if g.rng.Float64() < g.o.dupRate {
			add(ev, false) // the shop's backend retried the publish
			g.plan.dupes++
		}
	}
	// One event too old for Meta (the whole request would be rejected if it were sent).
	old := g.webEvent(demoPixels[0].id, "Purchase", "order-stale", g.people[0], ptr(42.0))
	old.EventTime = g.now.Add(-8 * 24 * time.Hour).Unix()
	add(old, false)
	g.plan.deadLetters["invalid/event_time_too_old"]++
	// One record nobody can decode.
	recs = append(recs, &kgo.Record{Topic: "capi.web", Key: []byte("garbage"), Value: []byte("this is not avro \xff\xfe")})
	g.plan.deadLetters["decode/"+schema.ReasonAvro.String()]++

	g.rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	g.plan.records["capi.web"] = len(recs)
	return recs
}

func (g *demoGenerator) webEvent(pixel, name, id string, p demoPerson, value *float64) schema.Event {
	ev := schema.Event{
		Kind: schema.KindWeb, EventID: id, EventName: name, EventTime: g.recent(), PixelID: pixel,
		ActionSource:   "website",
		EventSourceURL: "https://shop.example.com/checkout/thanks",
		User: schema.UserData{
			Emails: []string{p.email}, Phones: []string{p.phone}, ExternalIDs: []string{p.externalID},
			ClientIPAddress: fmt.Sprintf("203.0.113.%d", g.rng.IntN(250)+1),
			ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
			FBP:             fmt.Sprintf("fb.1.%d.%d", g.now.UnixMilli(), g.rng.Int64N(1e10)),
		},
		Consent: schema.Consent{Known: true, AdsAllowed: true},
	}
	if value != nil {
		ev.Custom = schema.CustomData{Value: value, Currency: "usd", OrderID: id, ContentType: "product",
			Contents: []schema.Content{{ID: fmt.Sprintf("sku-%d", g.rng.IntN(500)), Quantity: 1, ItemPrice: value}}}
	}
	return ev
}

func (g *demoGenerator) offlineRecords() []*kgo.Record {
	var recs []*kgo.Record
	for i := 0; i < g.o.offline; i++ {
		p := g.people[i]
		ev := schema.Event{
			Kind: schema.KindOffline, EventID: fmt.Sprintf("approval-%06d", i), EventName: "Approval",
			EventTime: g.recent(), PixelID: demoPixels[2].id, ActionSource: "system_generated",
			// The CRM holds the email as typed into the application, with another case and
			// spacing: normalization must make it match the web event's.
			User: schema.UserData{
				Emails: []string{strings.ToUpper(strings.TrimSpace(p.email))}, FirstNames: []string{p.first},
				LastNames: []string{p.last}, Cities: []string{p.city}, Zips: []string{p.zip}, Countries: []string{"United States"},
			},
			Custom:  schema.CustomData{Value: ptr(0.0), Currency: "USD", OrderID: fmt.Sprintf("card-%06d", i)},
			Consent: schema.Consent{Known: true, AdsAllowed: true},
			CRMName: "Salesforce",
		}
		b, err := g.enc.AppendRaw(nil, ev)
		if err != nil {
			panic(err)
		}
		recs = append(recs, &kgo.Record{Topic: "capi.offline", Key: []byte(ev.EventID), Value: b})
		g.plan.distinct[ev.PixelID]++
		g.plan.enrichable[ev.EventID] = strings.ToLower(p.externalID)
	}
	g.plan.records["capi.offline"] = len(recs)
	return recs
}

func ptr[T any](v T) *T { return &v }
