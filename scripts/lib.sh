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
