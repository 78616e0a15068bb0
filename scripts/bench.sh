#!/usr/bin/env bash
# capirelay's performance benchmarks on real services: starts a single-node Kafka broker
# (scripts/kafka-local.sh, state in .kafka-bench/) and its own redis-server on free loopback
# ports, builds capirelay and capirelay-bench, runs the scenarios (ceiling, end to end at
# emulator latency 0 and 100 ms, latency at a steady rate, backlog), prints one table and
# appends it to bench/RESULTS.md with the date, commit, CPU model and the exact command.
# Everything it started is stopped by PID when it ends, however it ends.
#
#   scripts/bench.sh                 full sizes (1M events, 2M backlog sampled 3 min): ~10 minutes
#   scripts/bench.sh --smoke         everything tiny, < 2 minutes (CI-able)
#   scripts/bench.sh --events 200000 --backlog-events 400000 --lat-duration 20s
#
# Flags:
#   --smoke                 tiny sizes: 20k events, 40k backlog, 5 s latency run
#   --events N              records in the ceiling / end-to-end topic (default 1000000)
#   --backlog-events N      records in the backlog topic (default 2000000)
#   --backlog-max D         stop sampling the backlog after D (default 3m)
#   --backlog-rate N        events/s the emulator accepts in the backlog run (default: a
#                           tenth of the measured end-to-end rate)
#   --lat-rate N            events/s in the latency run (default 5000)
#   --lat-duration D        how long the latency run produces (default 30s)
#   --latencies L           emulator latencies of the end-to-end runs (default 0ms,100ms)
#   --e2e-runs N            end-to-end runs per latency, reported with their median
#                           (default 3; 1 with --smoke): one run swings by up to 40% here
#   --scenarios S           subset of ceiling,e2e,latency,backlog,profile (default: the first four)
#   --perf                  record the relay with `perf record -g` during the first e2e run
#                           (bench/profiles/perf.data) and print its top functions
#   --profile               also run the in-process pprof profile scenario (bench/profiles)
#   --no-record             print the table but do not append it to bench/RESULTS.md
#   --                      pass the rest to capirelay-bench (see capirelay-bench -h)
#
# Environment: KAFKA_BROKERS / REDIS_ADDR use running services instead of starting them
# (CPU of the broker and redis is then not reported unless KAFKA_PID / REDIS_PID are given).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$PWD
CMDLINE="scripts/bench.sh $*"

STATE=${CAPIRELAY_BENCH_STATE:-$ROOT/.kafka-bench}
export KAFKA_LOCAL_DIR=${KAFKA_LOCAL_DIR:-$STATE}
events=1000000 backlog_events=2000000 backlog_max=3m backlog_rate=0 lat_rate=5000 lat_duration=30s
latencies=0ms,100ms e2e_runs=3 scenarios=ceiling,e2e,latency,backlog perf="" record=1 smoke="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
  --smoke) smoke=1 events=20000 backlog_events=40000 backlog_max=20s lat_duration=5s e2e_runs=1 ;;
  --events) events=$2; shift ;;
  --backlog-events) backlog_events=$2; shift ;;
  --backlog-max) backlog_max=$2; shift ;;
  --backlog-rate) backlog_rate=$2; shift ;;
  --lat-rate) lat_rate=$2; shift ;;
  --lat-duration) lat_duration=$2; shift ;;
  --latencies) latencies=$2; shift ;;
  --e2e-runs) e2e_runs=$2; shift ;;
  --scenarios) scenarios=$2; shift ;;
  --perf) perf=1 ;;
  --profile) scenarios="$scenarios,profile" ;;
  --no-record) record="" ;;
  --) shift; extra=("$@"); break ;;
  -h | --help) sed -n '2,33p' "$0"; exit 0 ;;
  *) echo "bench.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

redis_pid="" kafka_started=""
cleanup() {
  if [ -n "$kafka_started" ]; then
    ./scripts/kafka-local.sh stop || true # stops only the PID its start wrote
  fi
  if [ -n "$redis_pid" ]; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$redis_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

mkdir -p "$STATE/bin" "$STATE/work" "$STATE/redis" bench/profiles
t0=$SECONDS

if [ -z "${REDIS_ADDR:-}" ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
  fi
  port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --dir "$STATE/redis" --logfile "$STATE/redis/redis.log" &
  redis_pid=$!
  for _ in $(seq 1 100); do
    redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$port" ping | grep -q PONG
  REDIS_ADDR=127.0.0.1:$port
  REDIS_PID=$redis_pid
  redis_owned=1 # ours to flush between runs
  echo "== redis-server on $REDIS_ADDR (pid $redis_pid)" >&2
fi

if [ -z "${KAFKA_BROKERS:-}" ]; then
  if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    apt_install openjdk-17-jre-headless maven
  fi
  kafka_start_or_reuse
  KAFKA_PID=$(cat "$KAFKA_LOCAL_DIR/kafka.pid")
  echo "== kafka on $KAFKA_BROKERS (pid $KAFKA_PID)" >&2
fi

echo "== building capirelay and capirelay-bench" >&2
go build -o "$STATE/bin/capirelay" ./cmd/capirelay
go build -o "$STATE/bin/capirelay-bench" ./cmd/capirelay-bench

args=(-brokers "$KAFKA_BROKERS" -redis "$REDIS_ADDR" -relay "$STATE/bin/capirelay"
  -kafka-pid "${KAFKA_PID:--1}" -redis-pid "${REDIS_PID:--1}"
  -work-dir "$STATE/work" -json "$STATE/results.json"
  -scenarios "$scenarios" -events "$events" -e2e-latencies "$latencies" -e2e-runs "$e2e_runs"
  -lat-rate "$lat_rate" -lat-duration "$lat_duration"
  -backlog-events "$backlog_events" -backlog-max "$backlog_max" -backlog-accept-rate "$backlog_rate"
  -profile-dir bench/profiles)
if [ -n "$perf" ]; then
  if command -v perf >/dev/null 2>&1; then
    args+=(-perf bench/profiles/perf.data)
  else
    echo "== perf not installed; --perf ignored" >&2
  fi
fi
if [ -n "${redis_owned:-}" ]; then
  args+=(-redis-flush)
fi
args+=("${extra[@]}")

rm -f "$STATE/results.json"
table=$STATE/table.md
status=0
"$STATE/bin/capirelay-bench" "${args[@]}" >"$table" || status=$?

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
ncpu=$(nproc)
memgb=$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then dirty=" (working tree has uncommitted changes)"; fi
kver=$(sed -n 's/.*<kafka.version>\(.*\)<.*/\1/p' tools/kafka/pom.xml)
rver=$(redis-server --version | awk '{print $3}' | sed 's/v=//')
{
  echo
  echo "### $(date -u '+%Y-%m-%d %H:%M UTC') · commit $commit$dirty${smoke:+ · smoke}"
  echo
  echo "- command: \`$CMDLINE\`"
  echo "- machine: $cpu, $ncpu CPUs, $memgb GiB; Go $(go env GOVERSION); Kafka $kver (single node, KRaft); Redis $rver; everything on this one machine"
  echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  cat "$table"
} >"$STATE/record.md"
cat "$STATE/record.md"

if [ -n "$perf" ] && [ -f bench/profiles/perf.data ]; then
  echo
  echo "== perf: top functions of the relay (self time)"
  perf report -i bench/profiles/perf.data --stdio --no-children --sort symbol --percent-limit 1.5 2>/dev/null |
    grep -E '^ +[0-9]' | head -40 || true
fi

if [ -n "$record" ]; then
  cat "$STATE/record.md" >>bench/RESULTS.md
  echo "== appended to bench/RESULTS.md (took $((SECONDS - t0))s)" >&2
fi
exit "$status"
