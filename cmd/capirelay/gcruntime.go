package main

import (
	"math"
	"runtime/debug"
	"strconv"
)

// gcSettings is what applyRuntime set, for the start-up log.
type gcSettings struct {
	GOGC      string // as GOGC would spell it: "200", "off"
	LimitMiB  int64  // 0: none
	FromEnvGC bool   // GOGC came from the environment, not the configuration
	FromEnvML bool   // GOMEMLIMIT likewise
}

// applyRuntime sets the collector from rc, except where the environment already set it:
// the Go runtime read GOGC and GOMEMLIMIT at start-up, and an operator who set them (the
// Helm chart sets GOMEMLIMIT from the container's limit) means them.
func applyRuntime(rc RuntimeConfig, getenv func(string) string) gcSettings {
	var s gcSettings
	if v := getenv("GOGC"); v != "" {
		s.GOGC, s.FromEnvGC = v, true
	} else {
		debug.SetGCPercent(rc.GCPercent)
		s.GOGC = strconv.Itoa(rc.GCPercent)
		if rc.GCPercent < 0 {
			s.GOGC = "off"
		}
	}
	if getenv("GOMEMLIMIT") != "" {
		s.FromEnvML = true
	} else if rc.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(rc.MemoryLimitMiB) << 20)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		s.LimitMiB = l >> 20
	}
	return s
}
