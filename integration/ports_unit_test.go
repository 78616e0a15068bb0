package integration

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

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
