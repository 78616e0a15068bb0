package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It is 100 on
// every Linux architecture Go supports (the kernel fixes it for the ABI).
const clockTicks = 100

// cpuSeconds returns utime+stime of pid (0 = this process) in seconds, from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	t, err := readCPUTimes(path)
	return t.total(), err
}

// cpuTimes is a process's or a thread's CPU time in seconds: user mode and kernel.
type cpuTimes struct{ user, sys float64 }

func (t cpuTimes) minus(u cpuTimes) cpuTimes { return cpuTimes{t.user - u.user, t.sys - u.sys} }

func (t cpuTimes) total() float64 { return t.user + t.sys }

// readCPUTimes reads utime and stime from a /proc stat file, a process's or a thread's.
func readCPUTimes(path string) (cpuTimes, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return cpuTimes{}, err
	}
	t, err := parseCPUTimes(string(b))
	if err != nil {
		return cpuTimes{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func parseCPUTimes(stat string) (cpuTimes, error) {
	// The command name (field 2) is in parentheses and may contain spaces: split after it.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return cpuTimes{}, errors.New("unexpected format")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return cpuTimes{}, errors.New("too few fields")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return cpuTimes{}, errors.New("bad utime/stime")
	}
	return cpuTimes{float64(ut) / clockTicks, float64(st) / clockTicks}, nil
}

// monitorSample is the Go runtime's monitor thread (sysmon) at one moment: its CPU time and
// how often it has gone to sleep. sysmon polls every 20 µs while the program is busy again
// after being idle, backing off to 10 ms only after about a millisecond without work for it
// (sysmon in runtime/proc.go); on a VM, where each sleep and wake-up is dear, its share of
// the relay's system time says how much of that time the stop-and-go of a waiting relay costs.
type monitorSample struct {
	cpu    cpuTimes
	sleeps int64 // voluntary context switches
}

// readMonitor samples pid's monitor thread: the first thread a Go program starts, so the
// lowest thread id after the main thread's (runtime.main starts sysmon before anything else,
// user code included, can start a thread).
func readMonitor(pid int) (monitorSample, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return monitorSample{}, err
	}
	tid := 0
	for _, t := range tasks {
		if n, err := strconv.Atoi(t.Name()); err == nil && n != pid && (tid == 0 || n < tid) {
			tid = n
		}
	}
	if tid == 0 {
		return monitorSample{}, fmt.Errorf("%s: no thread but the main one", dir)
	}
	thread := dir + "/" + strconv.Itoa(tid)
	c, err := readCPUTimes(thread + "/stat")
	if err != nil {
		return monitorSample{}, err
	}
	status, err := os.ReadFile(thread + "/status")
	if err != nil {
		return monitorSample{}, err
	}
	return monitorSample{cpu: c, sleeps: parseStatusCount(string(status), "voluntary_ctxt_switches")}, nil
}

// memStatus returns VmRSS and VmHWM of pid (0 = this process) in bytes.
func memStatus(pid int) (rss, hwm int64, err error) {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		default:
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			*dst = kb * 1024
		}
	}
	return rss, hwm, sc.Err()
}

// cpuMeter measures the CPU seconds a set of processes used between Start and Stop.
type cpuMeter struct {
	pids  map[string]int
	start map[string]float64
}

func newCPUMeter(pids map[string]int) *cpuMeter {
	m := &cpuMeter{pids: map[string]int{}, start: map[string]float64{}}
	for name, pid := range pids {
		if pid >= 0 {
			m.pids[name] = pid
		}
	}
	return m
}

func (m *cpuMeter) Start() {
	for name, pid := range m.pids {
		if c, err := cpuSeconds(pid); err == nil {
			m.start[name] = c
		}
	}
}

// Stop returns each process's CPU seconds since Start (missing when unreadable).
func (m *cpuMeter) Stop() map[string]float64 {
	out := map[string]float64{}
	for name, pid := range m.pids {
		s, ok := m.start[name]
		if !ok {
			continue
		}
		if c, err := cpuSeconds(pid); err == nil {
			out[name] = round3(c - s)
		}
	}
	return out
}

// loadAvg returns the 1-minute load average, to tell a quiet machine from a busy one.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func round3(f float64) float64 {
	return float64(int64(f*1000+0.5)) / 1000
}

const mib = 1 << 20

// machineTimes is the machine's CPU time in clock ticks, summed over its CPUs.
type machineTimes struct{ idle, steal, total uint64 }

// readMachineTimes reads the first line of /proc/stat.
func readMachineTimes() (machineTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTimes{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseMachineTimes(line)
}

// parseMachineTimes parses /proc/stat's "cpu" line: user nice system idle iowait irq
// softirq steal (guest time is already in user). Idle counts iowait: a CPU waiting for I/O
// runs nothing.
func parseMachineTimes(line string) (machineTimes, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var t machineTimes
	for i, s := range f[1:9] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return machineTimes{}, fmt.Errorf("/proc/stat: column %d: %w", i+1, err)
		}
		t.total += v
		switch i {
		case 3, 4:
			t.idle += v
		case 7:
			t.steal = v
		}
	}
	return t, nil
}

// idlePercent is the share of the machine's CPU time between a and b that ran nothing;
// -1 when no time passed or either reading is missing (zero).
func idlePercent(a, b machineTimes) float64 { return sharePercent(a, b, a.idle, b.idle) }

// stealPercent is the share of the machine's CPU time between a and b that the hypervisor
// gave to other guests while this one had work; -1 as for idlePercent. Without steal, a
// slow phase is not time taken away but the same time doing less (caches, memory
// bandwidth or clock shared with other guests).
func stealPercent(a, b machineTimes) float64 { return sharePercent(a, b, a.steal, b.steal) }

func sharePercent(a, b machineTimes, partA, partB uint64) float64 {
	if a.total == 0 || b.total <= a.total {
		return -1
	}
	return 100 * float64(partB-partA) / float64(b.total-a.total)
}

// contextSwitches returns the context switches, voluntary and not, of every live thread of
// pid, from /proc/<pid>/task/*/status. A thread that exited takes its count with it; the
// Go runtime keeps its threads.
func contextSwitches(pid int) (int64, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/status")
		if err != nil {
			continue // the thread exited since ReadDir
		}
		n += parseContextSwitches(string(b))
	}
	return n, nil
}

// parseContextSwitches sums the voluntary and nonvoluntary switches in a status file.
func parseContextSwitches(status string) int64 {
	return parseStatusCount(status, "voluntary_ctxt_switches") + parseStatusCount(status, "nonvoluntary_ctxt_switches")
}

// parseStatusCount is the number on a status file's line called name (0 without one).
func parseStatusCount(status, name string) int64 {
	for line := range strings.Lines(status) {
		n, val, ok := strings.Cut(line, ":")
		if ok && n == name {
			v, _ := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
			return v
		}
	}
	return 0
}
