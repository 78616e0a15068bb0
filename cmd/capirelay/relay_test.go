package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink/emulator"
)

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	res, err := runDemo(context.Background(), demoOptions{web: 600, offline: 120, dupRate: 0.2, seed: 7, timeout: time.Minute}, &out, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if len(res.problems) > 0 {
		t.Fatalf("demo found problems: %v\n%s", res.problems, out.String())
	}
	if res.stats.Duplicates == 0 || res.stats.Enriched != 120 || len(res.dlq) != 2 {
		t.Fatalf("demo mix not exercised: %+v dlq %v", res.stats, res.dlq)
	}
}

// syncBuffer is a log sink safe for the relay's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRelayWithRealRedis runs the production assembly — Graph client, Redis store and
// identity map on a real redis-server, and on a real Redis Cluster reached through one seed
// address — against the emulator and an in-process Kafka. A second run over republished
// records must send nothing: Redis remembers.
func TestRelayWithRealRedis(t *testing.T) {
	for _, tt := range []struct {
		name, env string
		cluster   bool
	}{
		{"single server", "REDIS_ADDR", false},
		// As through a managed service's one configuration endpoint: a single-node client
		// there would be answered MOVED for most keys.
		{"cluster through one seed", "REDIS_CLUSTER_ADDRS", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seed, _, _ := strings.Cut(serviceEnv(t, tt.env), ",")
			relayWithRealRedis(t, RedisConfig{Addrs: []string{seed}, Cluster: tt.cluster})
		})
	}
}

// A single-node client configured for a node of a Redis Cluster would be answered MOVED for
// most keys and wait on Redis for ever: the relay refuses to start, and says what to set. An
// unreachable Redis is no reason to refuse: the store waits for it.
func TestRelayRefusesClusterNodeAsSingleServer(t *testing.T) {
	seed, _, _ := strings.Cut(serviceEnv(t, "REDIS_CLUSTER_ADDRS"), ",")
	for _, tt := range []struct {
		name    string
		redis   RedisConfig
		refused bool
	}{
		{"cluster node as a single server", RedisConfig{Addrs: []string{seed}}, true},
		{"cluster node as a seed", RedisConfig{Addrs: []string{seed}, Cluster: true}, false},
		{"unreachable", RedisConfig{Addrs: []string{"127.0.0.1:1"}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			r, err := newIdleRelay(t, func(cfg *Config) {
				cfg.Redis.Addrs, cfg.Redis.Cluster = tt.redis.Addrs, tt.redis.Cluster
			}, relayParts{log: slog.New(slog.NewTextHandler(&logs, nil))})
			if r != nil {
				r.stopUnrun()
			}
			var ue usageError
			switch {
			case tt.refused && (err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), "redis.cluster") || !strings.Contains(err.Error(), seed)):
				t.Fatalf("newRelay = %v; want a configuration error naming %s and redis.cluster", err, seed)
			case !tt.refused && err != nil:
				t.Fatalf("newRelay = %v; want a relay", err)
			case tt.name == "unreachable" && !strings.Contains(logs.String(), "could not ask"):
				t.Fatalf("no warning logged for an unreachable Redis: %s", logs.String())
			}
		})
	}
}

// serviceEnv returns the environment variable name, which says where a real service is
// (scripts/test.sh sets it). Without it the test is skipped, unless
// CAPIRELAY_REQUIRE_SERVICES=1 says CI must not silently skip.
func serviceEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CAPIRELAY_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s is unset but CAPIRELAY_REQUIRE_SERVICES=1", name)
		}
		t.Skipf("%s is unset; scripts/test.sh sets it", name)
	}
	return v
}

// relayWithRealRedis is TestRelayWithRealRedis on the Redis rc names.
func relayWithRealRedis(t *testing.T, rc RedisConfig) {
	const (
		pixel  = "4444444444444444"
		token  = "EAAtoken-that-must-never-be-logged"
		secret = "app-secret-that-must-never-be-logged"
		email  = "Private.Person@Example.com"
	)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "capi.web"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	emu := emulator.New(emulator.WithPixel(pixel, token), emulator.WithAppSecret(secret))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: emu}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	cfg := defaultConfig()
	cfg.Kafka.Brokers = cluster.ListenAddrs()
	cfg.Kafka.Topics = []TopicConfig{{Name: "capi.web", Format: "raw", Schema: "WebEvent"}}
	cfg.Kafka.CommitInterval = 100 * time.Millisecond
	cfg.Redis.Addrs, cfg.Redis.Cluster = rc.Addrs, rc.Cluster
	cfg.Redis.KeyPrefix = fmt.Sprintf("test:%d:", time.Now().UnixNano())
	cfg.CAPI.BaseURL = "http://" + ln.Addr().String()
	cfg.CAPI.AccessToken = token
	cfg.CAPI.AppSecret = secret
	cfg.CAPI.PartnerAgent = "capirelay"
	cfg.CAPI.Linger = 20 * time.Millisecond
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}

	enc, _ := schema.NewEncoder()
	var recs []*kgo.Record
	const n = 500
	for i := 0; i < n; i++ {
		v := 10.0
		ev := schema.Event{
			Kind: schema.KindWeb, EventID: fmt.Sprintf("o-%d", i), EventName: "Purchase", EventTime: time.Now().Unix() - 60,
			PixelID: pixel, ActionSource: "website", EventSourceURL: "https://shop.example.com/",
			User:   schema.UserData{Emails: []string{email}, ClientUserAgent: "Mozilla/5.0", ExternalIDs: []string{"u1"}},
			Custom: schema.CustomData{Value: &v, Currency: "EUR"},
		}
		b, err := enc.AppendRaw(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "capi.web", Value: b})
	}
	prod, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	defer prod.Close()
	adm := kadm.NewClient(prod)

	var logs syncBuffer
	runOnce := func(group string) {
		t.Helper()
		if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cfg.Kafka.Group = group
		r, err := newRelay(context.Background(), cfg, relayParts{log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.run(ctx) }()
		wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer wcancel()
		if err := waitCaughtUp(wctx, adm, group, []string{"capi.web"}, func() {}); err != nil {
			t.Fatalf("relay did not catch up: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("relay stopped with %v", err)
		}
	}
	runOnce("first")
	if got := len(emu.Received()); got != n {
		t.Fatalf("emulator received %d events, want %d", got, n)
	}
	// Same records again, read by another group (as after a topic replay): Redis has them all
	// as sent, so nothing may reach Meta twice.
	runOnce("second")
	if got := len(emu.Received()); got != n {
		t.Fatalf("after the replay the emulator holds %d events, want still %d", got, n)
	}
	for _, leaked := range []string{token, secret, email, strings.ToLower(email)} {
		if strings.Contains(logs.String(), leaked) {
			t.Errorf("logs contain a secret or raw PII (%q)", leaked[:8])
		}
	}
}

// newIdleRelay makes a relay from the default configuration, changed by edit, that is never
// run: its broker address has nothing listening. Stop it with stopUnrun.
func newIdleRelay(t *testing.T, edit func(*Config), parts relayParts) (*relay, error) {
	t.Helper()
	cfg := defaultConfig()
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"}
	cfg.Redis.Addrs = []string{"unused"}
	cfg.CAPI.AccessToken = "EAAtoken"
	cfg.CAPI.PartnerAgent = "capirelay"
	edit(&cfg)
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return newRelay(ctx, cfg, parts)
}

// stopUnrun closes what newRelay made, by running the relay with a done context.
func (r *relay) stopUnrun() {
	stopped, stop := context.WithCancel(context.Background())
	stop()
	_ = r.run(stopped)
}

// The kafka section reaches the Kafka client the relay consumes with.
func TestRelayKafkaSettings(t *testing.T) {
	r, err := newIdleRelay(t, func(cfg *Config) {
		cfg.Kafka.InstanceID = "capirelay-0"
		cfg.Kafka.SessionTimeout = 2 * time.Minute
	}, relayParts{store: dedupstore.NewMemory(), identities: dedupstore.NewMemoryIdentityMap()})
	if err != nil {
		t.Fatal(err)
	}
	cl := r.proc.Client()
	session, instance := cl.OptValue(kgo.SessionTimeout), cl.OptValue(kgo.InstanceID)
	r.stopUnrun()
	if session != 2*time.Minute {
		t.Errorf("session timeout %v, want 2m", session)
	}
	if instance != "capirelay-0" {
		t.Errorf("instance id %v (%T), want capirelay-0", instance, instance)
	}
}
