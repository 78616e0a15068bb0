# Shell helpers shared by the scripts in this directory; source it, don't run it.

# free_port prints a loopback TCP port nothing listens on, other than its arguments (ports
# already picked for servers not yet started). It picks below the kernel's ephemeral range
# (net.ipv4.ip_local_port_range): a port in that range can be taken by any outgoing
# connection between this check and the server's bind, or while a server is down for a
# restart, and Kafka then fails to start with "Address already in use".
free_port() {
  local port lo=32768 hi=60999 base=30000 span=20000
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  if [ "$lo" -ge 12000 ]; then
    base=10000 span=$((lo - 10000))
  elif [ "$hi" -le 63000 ]; then
    base=$((hi + 1)) span=$((65535 - hi))
  fi
  for _ in $(seq 1 200); do
    port=$(((RANDOM * 32768 + RANDOM) % span + base))
    case " $* " in *" $port "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# apt_install installs Debian packages quietly.
apt_install() {
  echo "== installing $* (apt-get)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# kafka_start_or_reuse sets KAFKA_BROKERS to the broker whose state is in $KAFKA_LOCAL_DIR.
# It starts one, and sets kafka_started=1 so that the caller's cleanup stops it, only when
# none runs there: a broker someone else started (a developer's, another script's) is used
# as it is and left running. kafka-local.sh start refuses a running broker, and a caller
# that took the refusal for its own failure used to stop that broker on the way out.
kafka_start_or_reuse() {
  if KAFKA_BROKERS=$(./scripts/kafka-local.sh brokers 2>/dev/null); then
    echo "== kafka: using the broker already running in $KAFKA_LOCAL_DIR (pid $(cat "$KAFKA_LOCAL_DIR/kafka.pid")); it stays running" >&2
    return 0
  fi
  kafka_started=1 # set first: a start that fails half way still leaves a PID to stop
  KAFKA_BROKERS=$(./scripts/kafka-local.sh start)
}
