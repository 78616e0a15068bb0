package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/processor"
	"github.com/capirelay/capirelay/schema"
	"github.com/capirelay/capirelay/sink"
)

// relay is the assembled service: decoder, dedup store, identity map, sink and processor.
type relay struct {
	proc       *processor.Processor
	batcher    *sink.Batcher
	store      dedupstore.Store
	identities dedupstore.IdentityMap
	closers    []func()
	log        *slog.Logger
	timeout    time.Duration
	telemetry  TelemetryConfig
	state      atomic.Int32 // stateStarting …; read by /readyz
}

// relayParts replaces parts of the assembly; the demo and tests use it to run on in-process
// stand-ins. Zero fields are built from the configuration.
type relayParts struct {
	log          *slog.Logger
	store        dedupstore.Store
	identities   dedupstore.IdentityMap
	kafkaOptions []kgo.Opt
	httpClient   *http.Client
	now          func() time.Time
}

// newRelay assembles the relay from cfg; ctx bounds what it asks Redis on the way.
func newRelay(ctx context.Context, cfg Config, parts relayParts) (*relay, error) {
	log := parts.log
	if log == nil {
		log = slog.Default()
	}
	r := &relay{log: log, timeout: cfg.ShutdownTimeout, telemetry: cfg.Telemetry}
	fail := func(err error) (*relay, error) {
		r.close()
		return nil, err
	}

	dec, err := newDecoder(cfg)
	if err != nil {
		return fail(err)
	}

	store, ids := parts.store, parts.identities
	if store == nil {
		rc := newRedisClient(cfg.Redis)
		r.closers = append(r.closers, func() { _ = rc.Close() })
		if err := refuseClusterNode(ctx, rc, log); err != nil {
			return fail(err)
		}
		common := []dedupstore.Option{dedupstore.WithLogger(log)}
		if cfg.Kafka.InstanceID != "" {
			common = append(common, dedupstore.WithOwner(cfg.Kafka.InstanceID))
		}
		if cfg.Redis.FailOpen {
			common = append(common, dedupstore.WithFailOpen())
		}
		if cfg.Redis.ChunkScripts {
			common = append(common, dedupstore.WithChunkScripts())
		}
		store = dedupstore.NewRedis(rc, append([]dedupstore.Option{
			dedupstore.WithPrefix(cfg.Redis.KeyPrefix + "dedup:"),
			dedupstore.WithLease(cfg.Redis.Lease),
			dedupstore.WithTTL(cfg.Redis.DedupTTL),
		}, common...)...)
		if ids == nil {
			ids = dedupstore.NewRedisIdentityMap(rc, append([]dedupstore.Option{
				dedupstore.WithPrefix(cfg.Redis.KeyPrefix + "idmap:"),
				dedupstore.WithTTL(cfg.Redis.IdentityTTL),
			}, common...)...)
		}
	}

	clientOpts := []sink.ClientOption{
		sink.WithBaseURL(cfg.CAPI.BaseURL),
		sink.WithAPIVersion(cfg.CAPI.APIVersion),
		sink.WithTokenSource(tokenSource(cfg.CAPI)),
	}
	if cfg.CAPI.AppSecret != "" {
		clientOpts = append(clientOpts, sink.WithAppSecret(cfg.CAPI.AppSecret))
	}
	if parts.httpClient != nil {
		clientOpts = append(clientOpts, sink.WithHTTPClient(parts.httpClient))
	} else {
		clientOpts = append(clientOpts, sink.WithHTTPClient(graphHTTPClient(cfg.CAPI)))
	}
	batcher, err := sink.NewBatcher(sink.NewGraphClient(clientOpts...),
		sink.WithMaxBatch(cfg.CAPI.MaxBatch),
		sink.WithLinger(cfg.CAPI.Linger),
		sink.WithMaxInFlight(cfg.CAPI.MaxInFlightRequests),
		sink.WithMaxPending(cfg.CAPI.MaxPendingEvents),
		sink.WithPartnerAgent(cfg.CAPI.PartnerAgent),
		sink.WithTestEventCode(testEventCodes(cfg.CAPI)),
		sink.WithRetry(100*time.Millisecond, 30*time.Second, cfg.CAPI.RetryMaxElapsed),
		sink.WithLogger(log),
	)
	if err != nil {
		return fail(fmt.Errorf("sink: %w", err))
	}
	r.batcher = batcher

	now := parts.now
	if now == nil {
		now = time.Now
	}
	prepare := newPreparer(cfg)

	suffix := cfg.Kafka.DeadLetterSuffix
	proc, err := processor.New(processor.Config{
		Brokers:                 cfg.Kafka.Brokers,
		Group:                   cfg.Kafka.Group,
		Topics:                  topicNames(cfg),
		InstanceID:              cfg.Kafka.InstanceID,
		GroupProtocol:           cfg.Kafka.GroupProtocol,
		DeadLetterTopic:         func(t string) string { return t + suffix },
		MaxInFlight:             cfg.Kafka.MaxInFlight,
		MaxInFlightPerPartition: cfg.Kafka.MaxInFlightPerPartition,
		FetchMaxBytes:           cfg.Kafka.FetchMaxBytes,
		FetchMaxWait:            cfg.Kafka.FetchMaxWait,
		CommitInterval:          cfg.Kafka.CommitInterval,
		RevokeTimeout:           cfg.Kafka.RevokeTimeout,
		SessionTimeout:          cfg.Kafka.SessionTimeout,
		LeaseRenewInterval:      cfg.Redis.Lease / 3,
		ShutdownTimeout:         cfg.ShutdownTimeout,
		RequireConsent:          cfg.Processing.RequireConsent,
		KafkaOptions:            parts.kafkaOptions,
		Logger:                  log,
		Now:                     now,
	}, processor.Deps{
		Decoder:    dec,
		Store:      store,
		Identities: ids,
		Sink:       batcher,
		Prepare:    prepare.prepare,
	})
	if err != nil {
		return fail(err)
	}
	r.proc = proc
	r.store = store
	r.identities = ids
	return r, nil
}

// run runs the processor until ctx is done, then closes the sink and the rest.
func (r *relay) run(ctx context.Context) error {
	var admin sync.WaitGroup
	if r.telemetry.Listen != "" {
		actx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
		defer func() { stopAdmin(); admin.Wait() }()
		admin.Add(1)
		go func() {
			defer admin.Done()
			if err := serveTelemetry(actx, r.telemetry, r, r.log); err != nil {
				r.log.Error("admin endpoint failed", "err", err)
			}
		}()
	}
	r.state.Store(stateRunning)
	stopAt := make(chan time.Time, 1)
	runDone := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			r.state.CompareAndSwap(stateRunning, stateDraining)
			stopAt <- time.Now()
		case <-runDone:
		}
	}()
	err := r.proc.Run(ctx)
	close(runDone)
	defer r.state.Store(stateStopped)
	// shutdown_timeout bounds the whole drain: the processor has flushed the sink already,
	// so closing it gets what is left of the budget (at least a second to wind down).
	deadline := time.Now().Add(time.Second)
	select {
	case t := <-stopAt:
		if d := t.Add(r.timeout); d.After(deadline) {
			deadline = d
		}
	default:
	}
	cctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if cerr := r.batcher.Close(cctx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("sink: close: %w", cerr))
	}
	r.close()
	return err
}

func (r *relay) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

func topicNames(cfg Config) []string {
	names := make([]string, len(cfg.Kafka.Topics))
	for i, t := range cfg.Kafka.Topics {
		names[i] = t.Name
	}
	return names
}

func newDecoder(cfg Config) (*schema.Decoder, error) {
	topics := make(map[string]schema.TopicConfig, len(cfg.Kafka.Topics))
	for i, t := range cfg.Kafka.Topics {
		mode, err := schema.ParseMode(t.Format)
		if err != nil {
			return nil, usageError{fmt.Errorf("config: kafka.topics[%d].format: %w", i, err)}
		}
		text := t.Schema
		if strings.HasSuffix(text, ".avsc") {
			b, err := os.ReadFile(text)
			if err != nil {
				return nil, usageError{fmt.Errorf("config: kafka.topics[%d].schema: %w", i, err)}
			}
			text = string(b)
		}
		tc := schema.TopicConfig{Mode: mode, Schema: text}
		if mode == schema.ModeWire {
			tc.Schema = ""
		}
		switch t.Kind {
		case "web":
			tc.Kind = schema.KindWeb
		case "offline":
			tc.Kind = schema.KindOffline
		}
		topics[t.Name] = tc
	}
	var opts []schema.Option
	if cfg.SchemaRegistry.URL != "" {
		srOpts := []sr.ClientOpt{sr.URLs(cfg.SchemaRegistry.URL)}
		if cfg.SchemaRegistry.Username != "" {
			srOpts = append(srOpts, sr.BasicAuth(cfg.SchemaRegistry.Username, cfg.SchemaRegistry.Password))
		}
		cl, err := sr.NewClient(srOpts...)
		if err != nil {
			return nil, fmt.Errorf("schema registry client: %w", err)
		}
		opts = append(opts, schema.WithRegistry(cl))
	}
	dec, err := schema.NewDecoder(topics, opts...)
	if err != nil {
		return nil, usageError{fmt.Errorf("config: kafka.topics: %w", err)}
	}
	return dec, nil
}

// preparer turns decoded events into the events to send, as the relay and inspect do.
type preparer struct {
	validate sink.ValidateOptions
	pool     sync.Pool // *sink.Hasher: Build borrows its scratch buffers
}

func newPreparer(cfg Config) *preparer {
	return &preparer{
		// An event that passes validation may still wait in the sink (linger, retries, a
		// throttled pixel) before Meta sees it; validating against a shorter age keeps it
		// from turning too old on the way and failing a whole request.
		validate: sink.ValidateOptions{
			MaxAge:              max(cfg.Processing.MaxEventAge-sinkMaxWait(cfg.CAPI), time.Hour),
			MaxFutureSkew:       cfg.Processing.MaxFutureSkew,
			ClampFuture:         cfg.Processing.FutureEventTime == "clamp",
			PhysicalStoreMaxAge: cfg.Processing.PhysicalStoreMaxAge,
			Built:               true, // prepare validates what BuildInto just built
		},
		pool: sync.Pool{New: func() any { return sink.NewHasher() }},
	}
}

func (p *preparer) prepare(ev *schema.Event, now time.Time, w *sink.Event) ([]sink.Dropped, error) {
	h := p.pool.Get().(*sink.Hasher)
	dropped := sink.BuildInto(w, ev, sink.BuildOptions{Now: now, Hasher: h})
	p.pool.Put(h)
	return dropped, sink.Validate(w, now, p.validate)
}

// sinkMaxWait bounds how long an event can spend in the sink: the batcher gives up on a
// batch after retry_max_elapsed of failures, or five times that when throttled.
func sinkMaxWait(c CAPIConfig) time.Duration {
	return c.Linger + 5*c.RetryMaxElapsed + c.RequestTimeout
}

// tokenSource resolves a pixel's access token: its own, else the default.
func tokenSource(c CAPIConfig) func(string) (string, bool) {
	return func(pixel string) (string, bool) {
		if px, ok := c.Pixels[pixel]; ok && px.AccessToken != "" {
			return px.AccessToken, true
		}
		return c.AccessToken, c.AccessToken != ""
	}
}

func testEventCodes(c CAPIConfig) func(string) string {
	return func(pixel string) string {
		if px, ok := c.Pixels[pixel]; ok && px.TestEventCode != "" {
			return px.TestEventCode
		}
		return c.TestEventCode
	}
}

// graphHTTPClient keeps enough idle connections for every request in flight, so batches
// reuse TLS connections to the Graph endpoint instead of dialling.
func graphHTTPClient(c CAPIConfig) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = c.MaxInFlightRequests * 2
	tr.MaxIdleConns = c.MaxInFlightRequests * 4
	return &http.Client{Transport: tr, Timeout: c.RequestTimeout}
}

// newRedisClient is a Cluster client for several addresses or cfg.Cluster, else a
// single-node client.
func newRedisClient(cfg RedisConfig) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:         cfg.Addrs,
		IsClusterMode: cfg.Cluster,
		Username:      cfg.Username,
		Password:      cfg.Password,
		DB:            cfg.DB,
	})
}

// clusterCheckTimeout bounds refuseClusterNode's question, so a Redis that is down at start
// delays the start by no more than this.
const clusterCheckTimeout = 3 * time.Second

// refuseClusterNode fails when a single-node client was configured for a node of a Redis
// Cluster. Every key another node serves would be answered MOVED: the relay would wait on
// Redis for ever, or, failing open, send every event unchecked. A Redis that cannot be asked
// (down, or INFO not permitted) is no reason to fail here: the store waits for it later, as
// it would after any outage.
func refuseClusterNode(ctx context.Context, rc redis.UniversalClient, log *slog.Logger) error {
	single, ok := rc.(*redis.Client)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, clusterCheckTimeout)
	defer cancel()
	addr := single.Options().Addr
	info, err := single.Info(ctx, "cluster").Result()
	if err != nil {
		log.Warn("redis: could not ask whether the server is a cluster node; going on", "addr", addr, "err", err)
		return nil
	}
	if strings.Contains(info, "cluster_enabled:1") {
		return usageError{fmt.Errorf("config: redis.addrs: %s is a node of a Redis Cluster; set redis.cluster: true, or list several of its nodes", addr)}
	}
	return nil
}
