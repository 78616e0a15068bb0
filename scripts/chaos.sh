#!/usr/bin/env bash
# Chaos runs at volume: the crash (SIGKILL + restart), sink-fault, Redis-restart (block and
# fail_open) and broker-restart scenarios of integration/, each with many more events than
# scripts/test.sh uses, against a Kafka broker and a redis-server this script starts (its own
# state dirs, free loopback ports; stopped by PID at exit). Prints one table row per scenario:
# produced, distinct delivered, duplicates, dead-lettered, maximum group lag and the recovery
# time after each fault. The numbers come from the tests themselves (the CHAOS-RESULT lines
# they log with CAPIRELAY_IT_REPORT=1; integration/report_test.go defines them).
#
#   scripts/chaos.sh [--events N] [--rate N] [--kills N] [--run REGEX] [--keep-log FILE]
#
#   --events N   events per scenario (default 500000)
#   --rate N     feeder rate, events per second (default 10000)
#   --kills N    SIGKILLs in the crash scenario (default 10)
#   --run REGEX  go test -run pattern (default: the four chaos tests)
#   --log FILE   keep the full go test output there (default: a temp file, path printed)
#
# The broker-restart scenario starts one more broker of its own (scripts/kafka-local.sh).
# Needs Go, redis-server, Java 17+, Maven and jq.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

events=500000
rate=10000
kills=10
run='^(TestCrashRestart|TestSinkFaults|TestRedisRestart|TestBrokerRestart)$'
logfile=""
while [ $# -gt 0 ]; do
  case "$1" in
  --events) events=$2; shift 2 ;;
  --rate) rate=$2; shift 2 ;;
  --kills) kills=$2; shift 2 ;;
  --run) run=$2; shift 2 ;;
  --log) logfile=$2; shift 2 ;;
  -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
  *) echo "unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
done
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v jq >/dev/null || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi
for cmd in go redis-server redis-cli java mvn jq; do
  command -v "$cmd" >/dev/null || { echo "chaos.sh needs $cmd" >&2; exit 1; }
done

state=$(mktemp -d "${TMPDIR:-/tmp}/capirelay-chaos.XXXXXX")
[ -n "$logfile" ] || logfile=$state/go-test.log
export KAFKA_LOCAL_DIR=$state/kafka
# share the jar cache with scripts/test.sh
export KAFKA_LIB_DIR=${KAFKA_LIB_DIR:-$PWD/.kafka-it/lib}
redis_pid=""
kafka_started=""
cleanup() {
  if [ -n "$kafka_started" ]; then
    ./scripts/kafka-local.sh stop || true
  fi
  if [ -n "$redis_pid" ]; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$state/kafka/data" "$state/redis"
}
trap cleanup EXIT

mkdir -p "$state/redis"
rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
  --dir "$state/redis" --logfile "$state/redis/redis.log" &
redis_pid=$!
for _ in $(seq 1 100); do
  redis-cli -h 127.0.0.1 -p "$rport" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
export REDIS_ADDR=127.0.0.1:$rport
kafka_started=1
KAFKA_BROKERS=$(./scripts/kafka-local.sh start)
export KAFKA_BROKERS
kafka_version=$(sed -n 's/.*<kafka.version>\(.*\)<.*/\1/p' tools/kafka/pom.xml)
echo "== chaos: $events events per scenario at $rate/s, $kills kills; kafka $kafka_version on $KAFKA_BROKERS, redis on $REDIS_ADDR"
echo "== go test output: $logfile"

t0=$SECONDS
set +e
CAPIRELAY_REQUIRE_SERVICES=1 CAPIRELAY_IT_REPORT=1 \
  CAPIRELAY_IT_EVENTS=$events CAPIRELAY_IT_RATE=$rate CAPIRELAY_IT_KILLS=$kills \
  go test -count=1 -v -timeout 120m -run "$run" ./integration >"$logfile" 2>&1
status=$?
set -e
grep -E '^(--- |FAIL|ok|PASS)' "$logfile" || true
echo "== took $((SECONDS - t0))s (go test exit status $status)"
echo

results=$(sed -n 's/.*CHAOS-RESULT //p' "$logfile")
if [ -z "$results" ]; then
  echo "no CHAOS-RESULT lines; see $logfile" >&2
  exit 1
fi
{
  echo "| scenario | produced | distinct delivered | duplicates (late-accepted) | dead-lettered | max lag | faults: recovery time |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  echo "$results" | jq -r '"| \(.scenario) | \(.produced) | \(.distinct_delivered) | \(.duplicates) (\(.late_accepted_duplicates)) | \(.dead_lettered) | \(.max_lag) | " +
    ([.faults | group_by(.name)[] | map(.recovery_s) as $r |
      if length == 1 then "\(.[0].name): \(if $r[0] < 0 then "not recovered" else "\($r[0]) s" end)"
      else "\(length)× \(.[0].name): \($r | map(select(. >= 0)) | sort | if length == 0 then "not recovered" else "median \(.[length / 2 | floor]) s, max \(max) s" end)\($r | map(select(. < 0)) | if length > 0 then ", \(length) not recovered" else "" end)"
      end] | join("; ")) + " |"'
}
exit "$status"
