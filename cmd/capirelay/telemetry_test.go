package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink/emulator"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminEndpoint(t *testing.T) {
	const pixel, token = "5555555555555555", "EAAtoken-not-for-metrics"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "capi.web"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	emuLn, _ := net.Listen("tcp", "127.0.0.1:0")
	emuSrv := &http.Server{Handler: emulator.New(emulator.WithPixel(pixel, token))}
	go func() { _ = emuSrv.Serve(emuLn) }()
	defer emuSrv.Close()

	cfg := defaultConfig()
	cfg.Kafka.Brokers = cluster.ListenAddrs()
	cfg.Kafka.Topics = []TopicConfig{{Name: "capi.web", Format: "raw", Schema: "WebEvent"}}
	cfg.Kafka.CommitInterval = 50 * time.Millisecond
	cfg.Redis.Addrs = []string{"unused"}
	cfg.CAPI.BaseURL = "http://" + emuLn.Addr().String()
	cfg.CAPI.AccessToken = token
	cfg.CAPI.Linger = 10 * time.Millisecond
	cfg.Telemetry = TelemetryConfig{Listen: freeAddr(t), Pprof: true}
	r, err := newRelay(context.Background(), cfg, relayParts{store: dedupstore.NewMemory(), identities: dedupstore.NewMemoryIdentityMap()})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := schema.NewEncoder()
	var recs []*kgo.Record
	for i := 0; i < 20; i++ {
		v := 5.0
		ev := schema.Event{Kind: schema.KindWeb, EventID: fmt.Sprint(i), EventName: "Purchase", EventTime: time.Now().Unix(),
			PixelID: pixel, ActionSource: "website", EventSourceURL: "https://x.example/",
			User:   schema.UserData{Emails: []string{"someone@example.com"}, ClientUserAgent: "UA"},
			Custom: schema.CustomData{Value: &v, Currency: "USD"}}
		if i == 0 {
			ev.EventTime = time.Now().Add(-10 * 24 * time.Hour).Unix()
		}
		b, _ := enc.AppendRaw(nil, ev)
		recs = append(recs, &kgo.Record{Topic: "capi.web", Value: b})
	}
	prod, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	defer prod.Close()
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + cfg.Telemetry.Listen
	if code, _ := get(t, base+"/readyz"); code == http.StatusOK {
		t.Fatal("ready before the relay runs")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.run(ctx) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := waitCaughtUp(wctx, kadm.NewClient(prod), cfg.Kafka.Group, []string{"capi.web"}, func() {}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/"); code != http.StatusOK {
		t.Errorf("/debug/pprof/: %d", code)
	}
	code, metrics := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"capirelay_events_delivered_total",
		`capirelay_dead_letters_total{class="invalid"`,
		`reason="event_time_too_old"`,
		`capirelay_partition_lag{`,
		`capirelay_capi_requests_total`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if line := grepLines(metrics, "capirelay_events_delivered_total"); !strings.HasSuffix(strings.TrimSpace(line), " 19") {
		t.Errorf("delivered counter is not 19: %q", line)
	}
	if strings.Contains(metrics, token) || strings.Contains(metrics, "someone@example.com") {
		t.Error("/metrics exposes a token or raw PII")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
