package main

import (
	"bufio"
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
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces: split after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: too few fields", path)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: bad utime/stime", path)
	}
	return float64(ut+st) / clockTicks, nil
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
