#!/usr/bin/env bash
# A single-node KRaft Apache Kafka 4.x broker (broker and controller in one JVM) on loopback,
# from Maven Central jars, for the integration tests. No Docker, no tarball.
#
#   scripts/kafka-local.sh start     fresh data dir, format, start, wait until it serves metadata
#   scripts/kafka-local.sh stop      stop the broker this directory started (its PID only)
#   scripts/kafka-local.sh restart   graceful stop, then start again on the same ports and data
#   scripts/kafka-local.sh status    exit 0 when running and answering a Metadata request
#   scripts/kafka-local.sh brokers   print host:port of the running broker
#
# Environment:
#   KAFKA_LOCAL_DIR        state dir (data/, server.properties, kafka.log, kafka.pid, ports)
#                          default: <repo>/.kafka-it
#   KAFKA_LIB_DIR          where the jars are collected; default: <repo>/.kafka-it/lib. Maven
#                          caches them in ~/.m2, so only the first run downloads.
#   KAFKA_PORT             client port; KAFKA_CONTROLLER_PORT controller port. Default: free
#                          loopback ports picked at start and kept for restart.
#   KAFKA_HEAP             JVM heap (default 512m)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker (default 120)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KDIR=${KAFKA_LOCAL_DIR:-$ROOT/.kafka-it}
LIB=${KAFKA_LIB_DIR:-$ROOT/.kafka-it/lib}
POM=$ROOT/tools/kafka/pom.xml
HEAP=${KAFKA_HEAP:-512m}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}

log() { echo "kafka-local: $*" >&2; }

# jars collects the broker's jars into $LIB once per pom.xml version (under a lock, as tests
# may call this concurrently with scripts/test.sh).
jars() {
  mkdir -p "$(dirname "$LIB")"
  local sum
  sum=$(sha256sum "$POM" | cut -d' ' -f1)
  (
    flock 9
    if [ -f "$LIB/.pom.sha256" ] && [ "$(cat "$LIB/.pom.sha256")" = "$sum" ]; then
      exit 0
    fi
    command -v java >/dev/null || { log "java is required (OpenJDK 17+)"; exit 1; }
    command -v mvn >/dev/null || { log "mvn is required (Maven 3.8+)"; exit 1; }
    log "collecting Kafka jars into $LIB (mvn dependency:copy-dependencies)"
    rm -rf "$LIB"
    if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIB" >"$LIB.mvn.log" 2>&1; then
      cat "$LIB.mvn.log" >&2
      exit 1
    fi
    echo "$sum" >"$LIB/.pom.sha256"
  ) 9>"$LIB.lock"
}

# jvm is the java command line for the broker's jars: small heap, the test logging config.
jvm() {
  JVM=(java -Xms128m "-Xmx$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/tools/kafka/log4j2.properties" -cp "$LIB/*")
}

java_cmd() {
  jvm
  "${JVM[@]}" "$@"
}

storage_tool() {
  # StorageTool lives in core (kafka.tools) through 4.x; fall back if a release moved it.
  # (zip entry names are stored uncompressed, so grep finds them)
  if grep -qa 'kafka/tools/StorageTool.class' "$LIB"/kafka_2.13-*.jar; then
    echo kafka.tools.StorageTool
  else
    echo org.apache.kafka.tools.StorageTool
  fi
}

pid_alive() {
  [ -f "$KDIR/kafka.pid" ] && kill -0 "$(cat "$KDIR/kafka.pid")" 2>/dev/null
}

port() { sed -n 's/^port=//p' "$KDIR/ports"; }

# metadata_ok sends a real Metadata v4 request (null topic list: all topics) and checks that
# the answer carries our correlation id and lists this broker on 127.0.0.1.
metadata_ok() {
  local p=$1 out
  # size 19 | api_key 3 | version 4 | correlation 1 | client_id "ktst" | topics null | no auto-create
  out=$(timeout 3 bash -c '
      exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      printf "\x00\x00\x00\x13\x00\x03\x00\x04\x00\x00\x00\x01\x00\x04ktst\xff\xff\xff\xff\x00" >&3
      head -c 31 <&3 | od -An -v -tx1 | tr -d " \n"' _ "$p" 2>/dev/null) || return 1
  # size(4) corr=1 throttle(4) brokers=1 node=1 hostlen=9 "127.0.0.1"
  [[ $out == ????????0000000100000000000000010000000100093132372e302e302e31 ]]
}

launch() {
  local p
  p=$(port)
  if [ -f "$KDIR/kafka.log" ]; then
    cat "$KDIR/kafka.log" >>"$KDIR/kafka.previous.log"
  fi
  # A simple command in the background: $! is the JVM itself, so stop signals the broker.
  jvm
  "${JVM[@]}" kafka.Kafka "$KDIR/server.properties" >"$KDIR/kafka.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$KDIR/kafka.pid"
  local deadline=$((SECONDS + START_TIMEOUT)) started=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker exited during start; its log:"
      cat "$KDIR/kafka.log" >&2
      rm -f "$KDIR/kafka.pid"
      return 1
    fi
    if [ -z "$started" ] && grep -q 'Kafka Server started' "$KDIR/kafka.log"; then
      started=1
    fi
    if [ -n "$started" ] && metadata_ok "$p"; then
      echo "127.0.0.1:$p" >"$KDIR/brokers"
      return 0
    fi
    sleep 0.2
  done
  log "broker did not start within ${START_TIMEOUT}s; last log lines:"
  tail -50 "$KDIR/kafka.log" >&2
  return 1
}

start() {
  if pid_alive; then
    log "already running (pid $(cat "$KDIR/kafka.pid")) on $(cat "$KDIR/brokers")"
    return 1
  fi
  local t0=$SECONDS
  jars
  mkdir -p "$KDIR"
  rm -rf "$KDIR/data" "$KDIR/kafka.log" "$KDIR/kafka.previous.log"
  mkdir -p "$KDIR/data"
  local p cp
  p=${KAFKA_PORT:-$(free_port)}
  cp=${KAFKA_CONTROLLER_PORT:-$(free_port "$p")}
  printf 'port=%s\ncontroller_port=%s\n' "$p" "$cp" >"$KDIR/ports"
  sed -e "s#__DATA_DIR__#$KDIR/data#" -e "s#__CONTROLLER_PORT__#$cp#g" -e "s#__PORT__#$p#g" \
    "$ROOT/tools/kafka/server.properties" >"$KDIR/server.properties"
  local st cluster
  st=$(storage_tool)
  # a random 16-byte Kafka Uuid, base64url without padding (as `StorageTool random-uuid`
  # prints, minus a JVM start); one starting with "-" would read as a flag
  cluster=-
  while [[ $cluster == -* ]]; do
    cluster=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
  done
  java_cmd "$st" format -t "$cluster" -c "$KDIR/server.properties" --ignore-formatted >"$KDIR/format.log" 2>&1 || {
    log "format failed:"
    cat "$KDIR/format.log" >&2
    return 1
  }
  launch
  log "up on $(cat "$KDIR/brokers") (pid $(cat "$KDIR/kafka.pid")) in $((SECONDS - t0))s"
  cat "$KDIR/brokers"
}

# stop ends only the PID this directory's start wrote: SIGTERM (Kafka's shutdown hook does a
# controlled shutdown), then SIGKILL after 30 s.
stop() {
  [ -f "$KDIR/kafka.pid" ] || return 0
  local pid
  pid=$(cat "$KDIR/kafka.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$KDIR/kafka.pid"
}

restart() {
  [ -f "$KDIR/ports" ] && [ -f "$KDIR/server.properties" ] || {
    log "nothing to restart in $KDIR (run start first)"
    return 1
  }
  local t0=$SECONDS
  stop
  launch
  log "restarted on $(cat "$KDIR/brokers") (pid $(cat "$KDIR/kafka.pid")) in $((SECONDS - t0))s"
}

status() {
  if pid_alive && metadata_ok "$(port)"; then
    echo "running: $(cat "$KDIR/brokers") (pid $(cat "$KDIR/kafka.pid"))"
    return 0
  fi
  echo "not running"
  return 1
}

brokers() {
  pid_alive || { log "not running"; return 1; }
  cat "$KDIR/brokers"
}

case "${1:-}" in
start | stop | restart | status | brokers | jars) "$1" ;;
*)
  echo "usage: $0 start|stop|restart|status|brokers|jars" >&2
  exit 2
  ;;
esac
