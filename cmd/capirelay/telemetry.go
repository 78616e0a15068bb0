package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/capirelay/capirelay/dedupstore"
	"github.com/capirelay/capirelay/sink"
)

// TelemetryConfig is the admin endpoint SREs scrape and probe.
type TelemetryConfig struct {
	// Listen is the address of the admin HTTP server: /metrics (Prometheus text format,
	// from OpenTelemetry instruments), /healthz, /readyz and, with Pprof, /debug/pprof/.
	// Empty turns it off.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ on the admin address.
	Pprof bool `yaml:"pprof"`
}

// serveTelemetry runs the admin server until ctx is done. Metric labels are classes,
// reasons, topics and partitions only: never pixel tokens, event ids or personal data.
func serveTelemetry(ctx context.Context, cfg TelemetryConfig, r *relay, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	if err := registerMetrics(mp.Meter("github.com/capirelay/capirelay"), r); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if r.state.Load() != stateRunning {
			http.Error(w, "not running: "+stateName(r.state.Load()), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("telemetry: listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("admin endpoint", "addr", ln.Addr().String(), "pprof", cfg.Pprof)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: %w", err)
	}
	return nil
}

// Relay lifecycle, for /readyz.
const (
	stateStarting int32 = iota
	stateRunning
	stateDraining
	stateStopped
)

func stateName(s int32) string {
	return [...]string{"starting", "running", "draining", "stopped"}[s]
}

// registerMetrics reads the relay's counters at scrape time, so the hot path pays nothing
// for metrics.
func registerMetrics(m metric.Meter, r *relay) error {
	var errs []error
	counter := func(name, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, desc, unit string) metric.Float64ObservableGauge {
		g, err := m.Float64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return g
	}
	consumed := counter("capirelay.records.consumed", "Records fetched from assigned partitions.")
	delivered := counter("capirelay.events.delivered", "Events Meta acknowledged.")
	duplicates := counter("capirelay.events.duplicates", "Events dropped: the dedup store had them as sent.")
	consent := counter("capirelay.events.consent_dropped", "Events dropped for missing or refused consent.")
	enriched := counter("capirelay.events.enriched", "Offline events that got external_id from the identity map.")
	deadLetters := counter("capirelay.dead_letters", "Records written to a dead-letter topic, by class and reason.")
	droppedValues := counter("capirelay.user_data.values_dropped", "user_data values that could not be normalized, by field and reason.")
	commits := counter("capirelay.commits", "Offset commits.")
	leasesLost := counter("capirelay.dedup.leases_lost", "Claims lost while their events were in the sink (possible duplicates).")
	requests := counter("capirelay.capi.requests", "Requests to the Conversions API.")
	retries := counter("capirelay.capi.retries", "Requests that resent earlier events.")
	bisections := counter("capirelay.capi.bisections", "Batches split after Meta rejected them as invalid.")
	requestErrors := counter("capirelay.capi.request_errors", "Failed requests by error class.")
	redisErrors := counter("capirelay.redis.errors", "Failed Redis round trips.")
	failOpen := counter("capirelay.redis.fail_open_claims", "Events sent unchecked while Redis was unreachable (fail_open).")
	idSkipped := counter("capirelay.identity.writes_skipped", "Identity links not rewritten: this process wrote them recently.")
	idHits := counter("capirelay.identity.lookup_cache_hits", "Identity lookups answered from the in-process cache.")
	lag := gauge("capirelay.partition.lag", "End offset minus committed offset.", "{record}")
	open := gauge("capirelay.partition.open", "Records fetched and not yet done.", "{record}")
	stalled := gauge("capirelay.partition.stalled", "Time records have been open without the commit watermark moving.", "s")
	pending := gauge("capirelay.capi.pending", "Events in the sink not yet settled.", "{event}")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	classes := []sink.Class{sink.ClassTransient, sink.ClassRateLimit, sink.ClassAuth, sink.ClassPermission, sink.ClassInvalid, sink.ClassUnknown}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := r.proc.Stats()
		o.ObserveInt64(consumed, s.Consumed)
		o.ObserveInt64(delivered, s.Delivered)
		o.ObserveInt64(duplicates, s.Duplicates)
		o.ObserveInt64(consent, s.ConsentDropped)
		o.ObserveInt64(enriched, s.Enriched)
		o.ObserveInt64(commits, s.Commits)
		o.ObserveInt64(leasesLost, s.LeasesLost)
		for k, v := range s.DeadLettered {
			class, reason, _ := strings.Cut(k, "/")
			o.ObserveInt64(deadLetters, v, metric.WithAttributes(attribute.String("class", class), attribute.String("reason", reason)))
		}
		for k, v := range s.DroppedValues {
			field, reason, _ := strings.Cut(k, "/")
			o.ObserveInt64(droppedValues, v, metric.WithAttributes(attribute.String("field", field), attribute.String("reason", reason)))
		}
		for _, p := range r.proc.Partitions() {
			attrs := metric.WithAttributes(attribute.String("topic", p.Topic), attribute.String("partition", strconv.Itoa(int(p.Partition))))
			if p.HighWatermark >= 0 {
				o.ObserveFloat64(lag, float64(p.HighWatermark-max(p.Committed, 0)), attrs)
			}
			o.ObserveFloat64(open, float64(p.Open), attrs)
			o.ObserveFloat64(stalled, p.Stalled.Seconds(), attrs)
		}
		bs := r.batcher.Stats()
		o.ObserveInt64(requests, int64(bs.Requests))
		o.ObserveInt64(retries, int64(bs.Retries))
		o.ObserveInt64(bisections, int64(bs.Bisections))
		for _, c := range classes {
			o.ObserveInt64(requestErrors, int64(bs.RequestErrors.Get(c)), metric.WithAttributes(attribute.String("class", c.String())))
		}
		o.ObserveFloat64(pending, float64(bs.Pending))
		if rs, ok := r.store.(interface{ Stats() dedupstore.Stats }); ok {
			st := rs.Stats()
			o.ObserveInt64(redisErrors, int64(st.Errors))
			o.ObserveInt64(failOpen, int64(st.FailOpenClaims))
		}
		if im, ok := r.identities.(interface{ Stats() dedupstore.Stats }); ok {
			st := im.Stats()
			o.ObserveInt64(idSkipped, int64(st.IdentityWritesSkipped))
			o.ObserveInt64(idHits, int64(st.IdentityLookupCacheHits))
		}
		return nil
	}, consumed, delivered, duplicates, consent, enriched, deadLetters, droppedValues, commits, leasesLost,
		requests, retries, bisections, requestErrors, redisErrors, failOpen, idSkipped, idHits, lag, open, stalled, pending)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	return nil
}
