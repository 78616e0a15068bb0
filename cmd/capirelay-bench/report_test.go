package main

import (
	"strings"
	"testing"
)

func TestMedianE2E(t *testing.T) {
	runs := []E2ERes{
		// Redis's CPU is per run of Records: 2,000,000 records at 8 CPU-s is 4 per million.
		{LatencyMS: 0, Run: 1, Records: 2_000_000, PerSecond: 45000, CPUPerMillion: 22, PeakRSSMiB: 110, CPUSeconds: map[string]float64{"redis": 8}},
		{LatencyMS: 100, Run: 1, Records: 1_000_000, PerSecond: 30000, CPUPerMillion: 25, PeakRSSMiB: 120},
		{LatencyMS: 0, Run: 2, Records: 1_000_000, PerSecond: 52000, CPUPerMillion: 19, PeakRSSMiB: 112, CPUSeconds: map[string]float64{"redis": 10}},
		{LatencyMS: 0, Run: 3, Records: 1_000_000, PerSecond: 41000, CPUPerMillion: 24, PeakRSSMiB: 108, CPUSeconds: map[string]float64{"redis": 8}},
		{LatencyMS: 100, Run: 2, Records: 1_000_000, PerSecond: 28000, CPUPerMillion: 27, PeakRSSMiB: 118, CPUSeconds: map[string]float64{"bench": 3}},
	}
	tests := []struct {
		lat  int64
		want e2eSummary
	}{
		{0, e2eSummary{Runs: 3, PerSecond: 45000, CPUPerMillion: 22, MinPerSecond: 41000, MaxPerSecond: 52000, MinCPU: 19, MaxCPU: 24, PeakRSSMiB: 112,
			RelayToRedis: 3, MinRelayToRedis: 1.9, MaxRelayToRedis: 5.5}},
		{100, e2eSummary{Runs: 2, PerSecond: 29000, CPUPerMillion: 26, MinPerSecond: 28000, MaxPerSecond: 30000, MinCPU: 25, MaxCPU: 27, PeakRSSMiB: 120}},
	}
	for _, tt := range tests {
		got, ok := medianE2E(runs, tt.lat)
		if !ok || got != tt.want {
			t.Errorf("latency %d: %+v (%v), want %+v", tt.lat, got, ok, tt.want)
		}
	}
	if _, ok := medianE2E(runs, 50); ok {
		t.Error("a summary for a latency with no runs")
	}
	if got := e2eLatencies(runs); len(got) != 2 || got[0] != 0 || got[1] != 100 {
		t.Errorf("latencies %v", got)
	}
	// The report gives the medians their own rows, with a verdict against the targets.
	md := (&Results{E2E: runs}).markdown()
	for _, want := range []string{"median of 3 runs | 45000 events/s (runs 41000–52000) | ≥ 50000/s | **miss",
		"median of 3 runs: relay CPU | 22.0 CPU-s per million events (runs 19.0–24.0) | ≤ 15 | **miss",
		"median of 2 runs | 29000 events/s (runs 28000–30000) | ≥ 20000/s | pass",
		"median of 3 runs: relay CPU per event over Redis's | 3.00 (runs 1.90–5.50;"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// Without Redis's CPU there is no ratio, rather than a ratio to zero.
	if strings.Contains(md, "median of 2 runs: relay CPU per event over Redis's") {
		t.Errorf("a ratio to Redis for runs that do not know Redis's CPU:\n%s", md)
	}
}
