# Shell helpers shared by the scripts in this directory; source it, don't run it.

# free_port prints a loopback TCP port nothing listens on, other than $1.
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(((RANDOM % 20000) + 30000))
    [ "$port" = "${1:-}" ] && continue
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
