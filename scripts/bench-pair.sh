#!/usr/bin/env bash
# Compares the CPU of two relay binaries run side by side. On this VM the speed of the
# whole machine drifts by ±20% from minute to minute, so one binary's CPU-seconds per
# million swing more between runs than most changes move them. Two relays in one consumer
# group split the partitions and live through the same minutes; the ratio of their CPU per
# record consumed is steady to about 2% (an A/A run of one binary against a copy of itself:
# mean 0.98, each pair 0.97–1.00).
#
# capirelay-bench starts this script in place of the relay; it starts both relays on the
# bench's config, each with its own admin port, and on SIGTERM appends one line to
# $PAIR_OUT: "labelA cpuA consumedA labelB cpuB consumedB" (CPU-seconds of the whole
# process, records consumed). Swap the binaries between invocations: the order they start
# in is alternated by PAIR_SWAP, but which one is A still showed about 1% here.
#
#   go build -o /tmp/relay-old ./cmd/capirelay   # at the base commit
#   go build -o /tmp/relay-new ./cmd/capirelay   # with the change
#   for i in 1 2 3 4; do
#     a=/tmp/relay-old b=/tmp/relay-new; [ $((i % 2)) = 0 ] && a=/tmp/relay-new b=/tmp/relay-old
#     RELAY_A=$a RELAY_B=$b PAIR_SWAP=$((i % 2)) PAIR_OUT=/tmp/pairs.txt \
#       scripts/bench.sh --scenarios e2e --latencies 0ms --no-record -- -relay "$PWD/scripts/bench-pair.sh"
#   done
#   scripts/bench-pair.sh --report /tmp/pairs.txt relay-old
#
# --report FILE BASE prints each pair's CPU per million and the ratio other/BASE, whichever
# side BASE ran on, with their mean and standard deviation.
set -euo pipefail

if [ "${1:-}" = --report ]; then
  awk -v base="$3" '$3 > 0 && $6 > 0 {
    a = $2 / $3 * 1e6; b = $5 / $6 * 1e6
    if ($1 == base) { r = b / a; o = $4 } else { r = a / b; o = $1 }
    printf "%s %.2f  %s %.2f  %s/%s %.3f\n", $1, a, $4, b, o, base, r
    s += r; ss += r * r; n++
  } END { if (n) { m = s / n; printf "mean %.3f sd %.3f pairs %d\n", m, sqrt(ss / n - m * m), n } }' "$2"
  exit 0
fi

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${RELAY_A:?the first relay binary}" "${RELAY_B:?the second relay binary}" "${PAIR_OUT:?where to append the pair}"
cfg=${3:?capirelay-bench runs this as: run --config FILE}
label_a=$(basename "$RELAY_A") label_b=$(basename "$RELAY_B")
port_a=$(free_port) port_b=$(free_port "$port_a")
sed "s|listen: \"\"|listen: 127.0.0.1:$port_a|" "$cfg" >"$cfg.a.yaml"
sed "s|listen: \"\"|listen: 127.0.0.1:$port_b|" "$cfg" >"$cfg.b.yaml"
# Fresh logs before either relay starts: a log left by an earlier run, truncated only once
# the relay's shell opens it, would show the old run's assignment below.
: >"$cfg.a.log"
: >"$cfg.b.log"
if [ "${PAIR_SWAP:-0}" = 1 ]; then
  "$RELAY_B" run --config "$cfg.b.yaml" >>"$cfg.b.log" 2>&1 &
  pid_b=$!
  "$RELAY_A" run --config "$cfg.a.yaml" >>"$cfg.a.log" 2>&1 &
  pid_a=$!
else
  "$RELAY_A" run --config "$cfg.a.yaml" >>"$cfg.a.log" 2>&1 &
  pid_a=$!
  "$RELAY_B" run --config "$cfg.b.yaml" >>"$cfg.b.log" 2>&1 &
  pid_b=$!
fi

cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
consumed() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^capirelay_records_consumed/ {s += $2} END {print s + 0}'; }
stop() {
  local ca cb na nb
  ca=$(cpu "$pid_a") cb=$(cpu "$pid_b") na=$(consumed "$port_a") nb=$(consumed "$port_b")
  kill -TERM "$pid_a" "$pid_b" 2>/dev/null || true
  wait "$pid_a" "$pid_b" || true
  echo "$label_a $ca $na $label_b $cb $nb" >>"$PAIR_OUT"
  exit 0
}
trap stop TERM INT

# The bench times the run from the relay's first assignment, which it reads from our output.
until grep -qa "partitions assigned" "$cfg.a.log" "$cfg.b.log" 2>/dev/null; do
  kill -0 "$pid_a" 2>/dev/null && kill -0 "$pid_b" 2>/dev/null || break
  sleep 0.05
done
grep -ah "partitions assigned" "$cfg.a.log" "$cfg.b.log" | head -1 || true
while kill -0 "$pid_a" 2>/dev/null && kill -0 "$pid_b" 2>/dev/null; do
  sleep 0.5 &
  wait $! || true
done
echo "bench-pair: a relay exited early (logs: $cfg.a.log, $cfg.b.log)" >&2
kill -TERM "$pid_a" "$pid_b" 2>/dev/null || true
exit 1
