package main

import (
	"os"
	"testing"
	"time"
)

func TestParseMachineTimes(t *testing.T) {
	tests := []struct {
		line               string
		idle, steal, total uint64
		bad                bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{line: "cpu  100 5 50 800 20 1 4 20 7 0", idle: 820, steal: 20, total: 1000},
		{line: "cpu  0 0 0 0 0 0 0 0", idle: 0, total: 0},
		{line: "cpu0 100 5 50 800 20 1 4 20 0 0", bad: true}, // a single CPU's line
		{line: "cpu  100 5 50", bad: true},
		{line: "cpu  100 5 50 x 20 1 4 20", bad: true},
	}
	for _, tt := range tests {
		got, err := parseMachineTimes(tt.line)
		if (err != nil) != tt.bad {
			t.Errorf("parseMachineTimes(%q) error %v, want error %v", tt.line, err, tt.bad)
			continue
		}
		if !tt.bad && (got.idle != tt.idle || got.steal != tt.steal || got.total != tt.total) {
			t.Errorf("parseMachineTimes(%q) = %+v, want idle %d steal %d total %d", tt.line, got, tt.idle, tt.steal, tt.total)
		}
	}
}

func TestIdlePercent(t *testing.T) {
	a := machineTimes{idle: 100, total: 400}
	if got := idlePercent(a, machineTimes{idle: 150, total: 600}); got != 25 {
		t.Errorf("idlePercent = %v, want 25", got)
	}
	if got := idlePercent(a, a); got != -1 {
		t.Errorf("idlePercent with no time passed = %v, want -1", got)
	}
	if got := idlePercent(machineTimes{}, a); got != -1 {
		t.Errorf("idlePercent without a first reading = %v, want -1", got)
	}
	if got := stealPercent(machineTimes{steal: 10, total: 400}, machineTimes{steal: 30, total: 600}); got != 10 {
		t.Errorf("stealPercent = %v, want 10", got)
	}
}

func TestParseContextSwitches(t *testing.T) {
	status := "Name:\tcapirelay\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1200\nnonvoluntary_ctxt_switches:\t34\n"
	if got := parseContextSwitches(status); got != 1234 {
		t.Errorf("parseContextSwitches = %d, want 1234", got)
	}
	if got := parseContextSwitches("Name:\tx\n"); got != 0 {
		t.Errorf("parseContextSwitches without the fields = %d, want 0", got)
	}
}

// TestContextSwitchesOfThisProcess reads real /proc files: a process that has run this far
// has switched at least once, and the machine has run for some time.
func TestContextSwitchesOfThisProcess(t *testing.T) {
	n, err := contextSwitches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Errorf("contextSwitches(self) = %d, want > 0", n)
	}
	m, err := readMachineTimes()
	if err != nil {
		t.Fatal(err)
	}
	if m.total == 0 || m.idle > m.total {
		t.Errorf("readMachineTimes = %+v", m)
	}
}

func TestIdleAndSwitches(t *testing.T) {
	tests := []struct {
		e    E2ERes
		want string
	}{
		{E2ERes{Records: 1000000, MachineIdlePct: 38.64, MachineStealPct: 2.25, RelaySwitches: 129056}, "38.6% idle, 2.2% steal; 129056 switches (129 per thousand events)"},
		{E2ERes{Records: 1000000, MachineIdlePct: -1, RelaySwitches: -1}, "idle unknown; context switches unknown"},
	}
	for _, tt := range tests {
		if got := idleAndSwitches(tt.e); got != tt.want {
			t.Errorf("idleAndSwitches(%+v) = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestParseCPUTimes(t *testing.T) {
	// Fields 14 and 15 (utime, stime) are 1234 and 56; the name holds a space and a ')'.
	stat := "4242 (relay (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 9 0 100 0 0"
	tests := []struct {
		stat string
		want cpuTimes
		bad  bool
	}{
		{stat: stat, want: cpuTimes{user: 12.34, sys: 0.56}},
		{stat: "4242 capirelay S 1 2", bad: true},             // no parentheses
		{stat: "4242 (capirelay) S 1 4242 4242 0", bad: true}, // too few fields
		{stat: "4242 (capirelay) S 1 4242 4242 0 -1 4194560 900 0 0 0 x 56 0", bad: true},
	}
	for _, tt := range tests {
		got, err := parseCPUTimes(tt.stat)
		if (err != nil) != tt.bad {
			t.Errorf("parseCPUTimes(%q) error %v, want error %v", tt.stat, err, tt.bad)
			continue
		}
		if !tt.bad && got != tt.want {
			t.Errorf("parseCPUTimes(%q) = %+v, want %+v", tt.stat, got, tt.want)
		}
	}
}

func TestParseStatusCount(t *testing.T) {
	// nonvoluntary first: a name must match whole, not as part of a longer one.
	status := "Name:\tcapirelay\nnonvoluntary_ctxt_switches:\t34\nvoluntary_ctxt_switches:\t1200\n"
	tests := []struct {
		name string
		want int64
	}{
		{"voluntary_ctxt_switches", 1200},
		{"nonvoluntary_ctxt_switches", 34},
		{"ctxt_switches", 0},
	}
	for _, tt := range tests {
		if got := parseStatusCount(status, tt.name); got != tt.want {
			t.Errorf("parseStatusCount(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestReadMonitorOfThisProcess reads this test binary's own monitor thread. While a
// goroutine keeps a P busy, sysmon sleeps at most 10 ms at a time, so the thread found must
// have slept at least a few times over 200 ms; any other thread of an otherwise idle test
// binary sleeps about once, when it parks.
func TestReadMonitorOfThisProcess(t *testing.T) {
	before, err := readMonitor(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var spins int
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		spins++
	}
	after, err := readMonitor(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n := after.sleeps - before.sleeps; n < 5 {
		t.Errorf("monitor thread slept %d times in 200 ms of work (%d spins), want at least 5: not sysmon", n, spins)
	}
	if after.cpu.user < before.cpu.user || after.cpu.sys < before.cpu.sys {
		t.Errorf("monitor thread's CPU went back: %+v then %+v", before.cpu, after.cpu)
	}
}

func TestCPUKinds(t *testing.T) {
	tests := []struct {
		e    E2ERes
		want string
	}{
		{E2ERes{Records: 1000000, RelayUserCPU: 15.96, RelaySysCPU: 2.81, MonitorCPU: 1.58, MonitorSleeps: 66802},
			"user 16.0, kernel 2.8 CPU-s per million; monitor thread 1.58 CPU-s per million in 66802 sleeps"},
		{E2ERes{Records: 500000, RelayUserCPU: 8, RelaySysCPU: 1, MonitorSleeps: -1},
			"user 16.0, kernel 2.0 CPU-s per million; monitor thread unknown"},
	}
	for _, tt := range tests {
		if got := cpuKinds(tt.e); got != tt.want {
			t.Errorf("cpuKinds(%+v) = %q, want %q", tt.e, got, tt.want)
		}
	}
}
