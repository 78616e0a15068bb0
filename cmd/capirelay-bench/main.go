// Command capirelay-bench drives capirelay's performance benchmarks against a real Kafka
// broker and a real Redis: it produces the records, hosts the CAPI emulator in-process on a
// loopback port, runs `capirelay run --config` as a subprocess, and measures.
//
//	capirelay-bench -brokers 127.0.0.1:9092 -redis 127.0.0.1:6379 -relay ./capirelay \
//	    -scenarios ceiling,e2e,latency,backlog -json results.json
//
// Scenarios:
//
//	ceiling  a plain franz-go group consumer reading the e2e records, doing nothing else
//	e2e      the relay from first fetch (partitions assigned) to last commit, -e2e-runs
//	         times per -e2e-latencies value (with their medians when more than once); CPU
//	         of relay, broker, redis and this process; peak RSS
//	latency  produce → CAPI acknowledgement at a steady -lat-rate (event_id carries the
//	         produce time; the emulator's ReceivedAt is the acknowledgement)
//	backlog  RSS over time while a -backlog-events backlog drains into an emulator that
//	         accepts -backlog-accept-rate events/s
//	profile  the relay's parts assembled in this process (as cmd/capirelay does) on the e2e
//	         records, with CPU and allocation profiles written to -profile-dir
//
// scripts/bench.sh starts Kafka and Redis, builds both binaries, and records the table.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type options struct {
	brokers                      []string
	redis                        string
	relayBin                     string
	workDir                      string
	jsonOut                      string
	scenarios                    []string
	events                       int
	partitions                   int
	dupEvery                     int
	latencies                    []time.Duration
	latRate                      int
	latDuration                  time.Duration
	linger                       time.Duration
	backlogEvents                int
	backlogAccept                int
	e2eRuns                      int
	redisFlush                   bool
	backlogMaxDur                time.Duration
	emuMode                      string
	kafkaPID                     int
	redisPID                     int
	perfOut                      string
	profileDir                   string
	relayGOGC                    string
	relayMaxInFlightPerPartition int
	relayMaxPending              int
	relayGOMEMLIMIT              string
	relayTelemetry               string
	relayCPUProfile              string
	relayCPUProfileSecs          int
	relaySet                     []string
	timeout                      time.Duration
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	var brokers, scenarios, latencies string
	flag.StringVar(&brokers, "brokers", os.Getenv("KAFKA_BROKERS"), "Kafka seed brokers, comma separated")
	flag.StringVar(&o.redis, "redis", os.Getenv("REDIS_ADDR"), "Redis address host:port")
	flag.StringVar(&o.relayBin, "relay", "./bin/capirelay", "the capirelay binary")
	flag.StringVar(&o.workDir, "work-dir", "", "where configs and relay logs go (default: a temp dir)")
	flag.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	flag.StringVar(&scenarios, "scenarios", "ceiling,e2e,latency,backlog", "scenarios to run, comma separated (also: profile)")
	flag.IntVar(&o.events, "events", 1_000_000, "records in the ceiling/e2e topic")
	flag.IntVar(&o.partitions, "partitions", 12, "partitions of every bench topic")
	flag.IntVar(&o.dupEvery, "dup-every", 10, "every Nth record republishes an earlier event (10 = 10% duplicates; 0 = none)")
	flag.StringVar(&latencies, "e2e-latencies", "0ms,100ms", "emulator latencies for the e2e runs")
	flag.BoolVar(&o.redisFlush, "redis-flush", false, "FLUSHDB the Redis before every relay run, so each starts from an empty dedup store (only for a Redis the bench owns; scripts/bench.sh sets it when it started redis-server itself)")
	flag.IntVar(&o.e2eRuns, "e2e-runs", 1, "end-to-end runs per latency, each with its own consumer group and dedup keys; with more than one the report adds their median")
	flag.IntVar(&o.latRate, "lat-rate", 5000, "events/s produced in the latency scenario")
	flag.DurationVar(&o.latDuration, "lat-duration", 30*time.Second, "how long the latency scenario produces")
	flag.DurationVar(&o.linger, "linger", 0, "capi.linger for every relay (0: capirelay's default, 200ms)")
	flag.IntVar(&o.backlogEvents, "backlog-events", 2_000_000, "records in the backlog topic")
	flag.IntVar(&o.backlogAccept, "backlog-accept-rate", 0, "events/s the emulator accepts in the backlog scenario (0: a tenth of the measured e2e rate, else 5000)")
	flag.DurationVar(&o.backlogMaxDur, "backlog-max", 3*time.Minute, "stop sampling the backlog after this long even if it has not drained")
	flag.StringVar(&o.emuMode, "emu", "fast", "emulator mode for e2e/backlog: fast (acknowledge without validating or storing) or full")
	flag.IntVar(&o.kafkaPID, "kafka-pid", -1, "PID of the broker JVM, to report its CPU")
	flag.IntVar(&o.redisPID, "redis-pid", -1, "PID of redis-server, to report its CPU")
	flag.StringVar(&o.perfOut, "perf", "", "record `perf record -g` of the relay during the first e2e run into this file")
	flag.StringVar(&o.profileDir, "profile-dir", "bench/profiles", "where the profile scenario writes cpu.pprof and allocs.pprof")
	flag.StringVar(&o.relayGOGC, "relay-gogc", "", "GOGC for the relay subprocess (default: unset)")
	flag.StringVar(&o.relayGOMEMLIMIT, "relay-gomemlimit", "", "GOMEMLIMIT for the relay subprocess (default: unset)")
	flag.IntVar(&o.relayMaxInFlightPerPartition, "relay-max-in-flight-per-partition", 0, "kafka.max_in_flight_per_partition for every relay (0: capirelay's default, 4000)")
	flag.StringVar(&o.relayTelemetry, "relay-telemetry", "", "telemetry.listen for the relay, with pprof on (e.g. 127.0.0.1:9464; default: off)")
	flag.IntVar(&o.relayMaxPending, "relay-max-pending", 0, "capi.max_pending_events for every relay (0: capirelay's default, 20000)")
	flag.Func("relay-set", "set a relay configuration field for every relay, path=value (e.g. kafka.fetch_max_bytes=1048576); repeatable", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want path=value, got %q", v)
		}
		o.relaySet = append(o.relaySet, v)
		return nil
	})
	flag.StringVar(&o.relayCPUProfile, "relay-cpuprofile", "", "write a pprof CPU profile of the relay binary, taken from the first fetch of the first e2e run, to this file (turns the relay's telemetry on)")
	flag.IntVar(&o.relayCPUProfileSecs, "relay-cpuprofile-seconds", 10, "how long -relay-cpuprofile profiles")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up a single scenario after this long")
	flag.Parse()

	o.brokers = splitList(brokers)
	o.scenarios = splitList(scenarios)
	for _, s := range splitList(latencies) {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "capirelay-bench: -e2e-latencies: %v\n", err)
			return 2
		}
		o.latencies = append(o.latencies, d)
	}
	if o.relayCPUProfile != "" && o.relayTelemetry == "" {
		addr, err := freeLoopbackAddr()
		if err != nil {
			fmt.Fprintf(os.Stderr, "capirelay-bench: -relay-cpuprofile: %v\n", err)
			return 1
		}
		o.relayTelemetry = addr
	}
	if len(o.brokers) == 0 || o.redis == "" {
		fmt.Fprintln(os.Stderr, "capirelay-bench: -brokers and -redis are required (or KAFKA_BROKERS and REDIS_ADDR)")
		return 2
	}
	if o.workDir == "" {
		d, err := os.MkdirTemp("", "capirelay-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(d)
		o.workDir = d
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := newBench(ctx, &o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "capirelay-bench: %v\n", err)
		return 1
	}
	defer b.close()
	res, err := b.run(ctx)
	if res != nil {
		if o.jsonOut != "" {
			out, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(o.jsonOut, out, 0o644); werr != nil {
				fmt.Fprintf(os.Stderr, "capirelay-bench: %v\n", werr)
			}
		}
		fmt.Print(res.markdown())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "capirelay-bench: %v\n", err)
		return 1
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
