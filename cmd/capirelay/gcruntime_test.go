package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestApplyRuntime: the configuration sets GOGC and GOMEMLIMIT unless the environment
// did. The test changes the process's collector, so it restores it.
func TestApplyRuntime(t *testing.T) {
	oldGC := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(oldGC)
		debug.SetMemoryLimit(oldLimit)
	})
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	tests := []struct {
		name      string
		rc        RuntimeConfig
		env       map[string]string
		wantGC    int // as debug.SetGCPercent reports it afterwards
		wantLimit int64
		want      gcSettings
	}{
		{"configured", RuntimeConfig{GCPercent: 200, MemoryLimitMiB: 100}, nil,
			200, 100 << 20, gcSettings{GOGC: "200", LimitMiB: 100}},
		{"off with a limit", RuntimeConfig{GCPercent: -1, MemoryLimitMiB: 64}, nil,
			-1, 64 << 20, gcSettings{GOGC: "off", LimitMiB: 64}},
		{"no limit", RuntimeConfig{GCPercent: 150}, nil,
			150, math.MaxInt64, gcSettings{GOGC: "150"}},
		{"environment wins", RuntimeConfig{GCPercent: 200, MemoryLimitMiB: 100}, map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"},
			100, math.MaxInt64, gcSettings{GOGC: "50", FromEnvGC: true, FromEnvML: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What the runtime would have read from the environment at start-up.
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			got := applyRuntime(tt.rc, env(tt.env))
			if got != tt.want {
				t.Errorf("settings %+v, want %+v", got, tt.want)
			}
			if gc := debug.SetGCPercent(100); gc != tt.wantGC {
				t.Errorf("GOGC %d, want %d", gc, tt.wantGC)
			}
			if l := debug.SetMemoryLimit(-1); l != tt.wantLimit {
				t.Errorf("memory limit %d, want %d", l, tt.wantLimit)
			}
		})
	}
}
