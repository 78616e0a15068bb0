package integration

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// serverPort returns a free loopback TCP port for a server a test starts, and may restart, on
// a fixed port. It lies outside the kernel's ephemeral range when it can. A port from that
// range (what listening on port 0 gives) can be taken by an outgoing connection of a test
// running in parallel, between the check and the server's bind or while the server is down
// for a restart; the server then fails with "address already in use". scripts/lib.sh's
// free_port picks the same way for the brokers and Redis the scripts start.
func serverPort(t *testing.T) int {
	t.Helper()
	base, span := portBand(ephemeralRange())
	for range 200 {
		port := base + rand.IntN(span)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatalf("no free loopback port in [%d, %d)", base, base+span)
	return 0
}

// ephemeralRange is net.ipv4.ip_local_port_range, or Linux's default when it cannot be read.
func ephemeralRange() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return lo, hi
	}
	return l, h
}

// portBand is where serverPort picks, [base, base+span): below the ephemeral range when at
// least 2,000 ports lie between 10000 and it, else above it when 2,500 do, else (a range
// spanning nearly everything) 30000–49999, as before.
func portBand(lo, hi int) (base, span int) {
	switch {
	case lo >= 12000:
		return 10000, lo - 10000
	case hi <= 63000:
		return hi + 1, 65535 - hi
	}
	return 30000, 20000
}
