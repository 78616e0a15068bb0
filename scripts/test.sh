#!/usr/bin/env bash
# The whole test suite, on a fresh machine: starts what the tests need (a real redis-server, a
# Redis Cluster of three masters and a single-node Apache Kafka broker, each on free loopback
# ports), runs every Go test with the race detector, and stops only what it started, by PID,
# even when tests fail.
#
# Point the suite at your own Redis with REDIS_ADDR=host:port, your own Redis Cluster with
# REDIS_CLUSTER_ADDRS=host:port[,host:port] and your own Kafka with
# KAFKA_BROKERS=host:port[,host:port]; nothing is started for what is given. Kafka comes from
# Maven Central jars (scripts/kafka-local.sh; Java 17+ and Maven needed, jars cached in ~/.m2).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

STATE_DIR=${CAPIRELAY_TEST_STATE:-$PWD/.redis-it}
export KAFKA_LOCAL_DIR=${KAFKA_LOCAL_DIR:-$PWD/.kafka-it}
pids=()
kafka_started=""
cleanup() {
  local pid
  if [ -n "$kafka_started" ]; then
    # stops only the PID kafka-local.sh start wrote
    ./scripts/kafka-local.sh stop || true
  fi
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

need_redis_server() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server
  fi
}

start_redis() {
  need_redis_server
  local port
  port=$(free_port)
  mkdir -p "$STATE_DIR"
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --dir "$STATE_DIR" --logfile "$STATE_DIR/redis.log" &
  pids+=("$!")
  wait_redis "127.0.0.1:$port" ping PONG "$STATE_DIR/redis.log" || return 1
  export REDIS_ADDR="127.0.0.1:$port"
  echo "== redis-server $(redis-server --version | awk '{print $3}') on $REDIS_ADDR (pid ${pids[-1]})"
}

# wait_redis waits up to 10 s for the Redis at $1 to answer command $2 with text $3, and
# prints its log $4 if it does not.
wait_redis() {
  local host=${1%:*} port=${1##*:} _
  for _ in $(seq 1 100); do
    # $2 is word-split on purpose: it is a command and its arguments
    # shellcheck disable=SC2086
    if redis-cli -h "$host" -p "$port" $2 2>/dev/null | grep -q "$3"; then
      return 0
    fi
    sleep 0.1
  done
  echo "redis at $1 did not answer $2 with $3; its log:" >&2
  cat "$4" >&2 || true
  return 1
}

# start_redis_cluster starts a Redis Cluster of three masters, for the dedup store's tests on a
# real Cluster (keys spread over nodes, pipelines split by node), and exports its nodes as
# REDIS_CLUSTER_ADDRS.
start_redis_cluster() {
  local dir="$STATE_DIR/cluster" used=() addrs=() port bus i
  need_redis_server
  mkdir -p "$dir"
  rm -f "$dir"/nodes-*.conf # a node that finds an old one would rejoin a cluster long gone
  for i in 1 2 3; do
    port=$(free_port "${used[@]}")
    used+=("$port")
    bus=$(free_port "${used[@]}")
    used+=("$bus")
    redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes --cluster-port "$bus" \
      --cluster-config-file "nodes-$port.conf" --save '' --appendonly no \
      --dir "$dir" --logfile "$dir/redis-$port.log" &
    pids+=("$!")
    addrs+=("127.0.0.1:$port")
  done
  for i in "${addrs[@]}"; do
    wait_redis "$i" ping PONG "$dir/redis-${i##*:}.log" || return 1
  done
  if ! redis-cli --cluster create "${addrs[@]}" --cluster-yes >"$dir/create.log" 2>&1; then
    echo "redis-cli --cluster create failed:" >&2
    cat "$dir/create.log" >&2
    return 1
  fi
  for i in "${addrs[@]}"; do
    wait_redis "$i" "cluster info" cluster_state:ok "$dir/redis-${i##*:}.log" || return 1
  done
  REDIS_CLUSTER_ADDRS=$(IFS=,; echo "${addrs[*]}")
  export REDIS_CLUSTER_ADDRS
  echo "== redis cluster of 3 masters on $REDIS_CLUSTER_ADDRS (pids ${pids[*]: -3})"
}

# need_helm makes HELM name a helm binary, for the test that renders deploy/helm/capirelay.
# Without one on PATH it is built from its Go module, which the Go module proxy serves, into
# a cache outside the clone (about 2.5 minutes the first time on 2 cores).
HELM_VERSION=v3.22.0
need_helm() {
  if [ -n "${HELM:-}" ]; then
    return 0
  fi
  if command -v helm >/dev/null 2>&1; then
    HELM=$(command -v helm)
  else
    local dir=${XDG_CACHE_HOME:-$HOME/.cache}/capirelay/helm-$HELM_VERSION
    if [ ! -x "$dir/helm" ]; then
      echo "== building helm $HELM_VERSION into $dir (go install)"
      GOBIN="$dir" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    fi
    HELM="$dir/helm"
  fi
  export HELM
  echo "== helm $("$HELM" version --short) ($HELM)"
}

install_java_maven() {
  if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    apt_install openjdk-17-jre-headless maven
  fi
}

start_kafka() {
  install_java_maven
  local t0=$SECONDS
  kafka_start_or_reuse
  export KAFKA_BROKERS
  echo "== kafka $(sed -n 's/.*<kafka.version>\(.*\)<.*/\1/p' tools/kafka/pom.xml) on $KAFKA_BROKERS (pid $(cat "$KAFKA_LOCAL_DIR/kafka.pid"), up in $((SECONDS - t0))s)"
}

if [ -z "${REDIS_ADDR:-}" ]; then
  start_redis
fi
if [ -z "${REDIS_CLUSTER_ADDRS:-}" ]; then
  start_redis_cluster
fi
if [ -z "${KAFKA_BROKERS:-}" ]; then
  start_kafka
fi
need_helm
# Tests that need a real service fail, rather than skip, when it is missing.
export CAPIRELAY_REQUIRE_SERVICES=1

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files -co --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './.*'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...

# Each fuzz target also runs its committed seed corpus with the tests below; here it explores for a short
# while: a number of inputs per target, about 10 s each on a 2-core machine. Counts, not durations:
# with a duration, Go 1.26's fuzz coordinator can report "context deadline exceeded" as a failure
# when the time is up while a worker is busy (go.dev/issue/75804, fixed in Go 1.27), which failed
# this script with nothing found. CAPIRELAY_FUZZTIME (e.g. 30s or 5000x) overrides every count.
echo "== fuzzing"
for target in "schema FuzzDecode 60000x" "schema FuzzDecodeFastVsGoavro 40000x" "sink FuzzNormalize 30000x" \
  "sink FuzzParseAnswer 60000x" "sink FuzzAppendRequest 60000x" "sink/emulator FuzzSplitJSON 30000x" "processor FuzzLZ4 40000x"; do
  read -r pkg fn count <<<"$target"
  go test -run='^$' -fuzz="^${fn}\$" -fuzztime="${CAPIRELAY_FUZZTIME:-$count}" "./$pkg"
done

echo "== go test -race"
go test -race -count=1 -timeout 20m "$@" ./...
