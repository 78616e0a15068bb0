package integration

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

func TestPortBand(t *testing.T) {
	for _, c := range []struct {
		lo, hi, base, span int
	}{
		{32768, 60999, 10000, 22768}, // Linux's default: below it
		{12000, 60999, 10000, 2000},
		{1024, 60999, 61000, 4536}, // starts low: above it
		{1024, 63000, 63001, 2535},
		{1024, 65535, 30000, 20000}, // nearly everything: the old band
	} {
		base, span := portBand(c.lo, c.hi)
		if base != c.base || span != c.span {
			t.Errorf("portBand(%d, %d) = [%d, +%d), want [%d, +%d)", c.lo, c.hi, base, span, c.base, c.span)
		}
		end := base + span
		if end > 65536 {
			t.Errorf("portBand(%d, %d) = [%d, %d) leaves the port space", c.lo, c.hi, base, end)
		}
		if roomOutside := c.lo >= 12000 || c.hi <= 63000; roomOutside && base <= c.hi && end > c.lo {
			t.Errorf("portBand(%d, %d) = [%d, %d) overlaps the ephemeral range", c.lo, c.hi, base, end)
		}
	}
}

func TestServerPortOutsideEphemeralRange(t *testing.T) {
	lo, hi := ephemeralRange()
	if lo < 12000 && hi > 63000 {
		t.Skipf("ephemeral range %d–%d leaves no band outside it", lo, hi)
	}
	for range 20 {
		if p := serverPort(t); p >= lo && p <= hi {
			t.Fatalf("serverPort() = %d, inside the ephemeral range %d–%d", p, lo, hi)
		}
	}
}

// TestScriptFreePortOutsideEphemeralRange holds scripts/lib.sh's free_port, which picks the
// ports of the brokers and Redis servers the scripts start, to the same band as serverPort.
func TestScriptFreePortOutsideEphemeralRange(t *testing.T) {
	lo, hi := ephemeralRange()
	base, span := portBand(lo, hi)
	if lo < 12000 && hi > 63000 {
		t.Skipf("ephemeral range %d–%d leaves no band outside it", lo, hi)
	}
	lib := filepath.Join(repoRoot, "scripts", "lib.sh")
	out, err := exec.Command("bash", "-c", `. "$1"; for i in $(seq 1 20); do free_port 10000 || exit 1; done`, "bash", lib).Output()
	if err != nil {
		t.Fatalf("free_port: %v", err)
	}
	ports := strings.Fields(string(out))
	if len(ports) != 20 {
		t.Fatalf("free_port printed %q, want 20 ports", out)
	}
	for _, s := range ports {
		p, err := strconv.Atoi(s)
		if err != nil || p < base || p >= base+span || p == 10000 {
			t.Errorf("free_port printed %q: want a port in [%d, %d) other than 10000, outside the ephemeral range %d–%d", s, base, base+span, lo, hi)
		}
	}
}
