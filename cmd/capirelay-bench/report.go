package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Targets from issue D · Performance.
const (
	targetE2E0       = 50_000 // events/s at emulator latency 0
	targetE2E100     = 20_000 // events/s at emulator latency 100 ms
	targetCPUPerM    = 15.0   // relay CPU seconds per million events
	targetRSSMiB     = 128.0  // peak RSS in the throughput runs
	targetBacklogMiB = 256.0  // peak RSS through the backlog
	latencySlackMS   = 100.0  // p99 < linger + this
)

func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "**miss**"
}

func miss(got, want float64, lowerIsBetter bool) string {
	if lowerIsBetter {
		if got <= want {
			return "pass"
		}
		return fmt.Sprintf("**miss** (+%.0f%%)", (got/want-1)*100)
	}
	if got >= want {
		return "pass"
	}
	return fmt.Sprintf("**miss** (−%.0f%%)", (1-got/want)*100)
}

func cpuList(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// markdown renders the one table scripts/bench.sh prints and appends to bench/RESULTS.md.
func (r *Results) markdown() string {
	var b strings.Builder
	row := func(metric, value, target, result string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", metric, value, target, result)
	}
	fmt.Fprintf(&b, "| metric | value | target | result |\n|---|---|---|---|\n")
	if r.Produce != nil {
		row("produce (bench producer, for reference)", fmt.Sprintf("%d records in %.1f s = %.0f records/s", r.Produce.Records, r.Produce.Seconds, r.Produce.PerSecond), "", "")
	}
	if c := r.Ceiling; c != nil {
		row("ceiling: plain group consumer (records/s; 0 = too few records to time)", fmt.Sprintf("%.0f records/s (%d in %.2f s; CPU-s: %s; load %.1f)", c.PerSecond, c.Records, c.Seconds, cpuList(c.CPUSeconds), c.LoadAvg), "", "")
	}
	for _, e := range r.E2E {
		tag := fmt.Sprintf("e2e, emulator latency %d ms", e.LatencyMS)
		target := targetE2E0
		if e.LatencyMS > 0 {
			target = targetE2E100
		}
		val := fmt.Sprintf("%.0f events/s (%d records, %d distinct, %d acknowledged, %d requests, %.2f s first fetch → last commit; last ack at %.2f s)",
			e.PerSecond, e.Records, e.Distinct, e.Delivered, e.Requests, e.Seconds, e.DeliverSeconds)
		t := ""
		if e.LatencyMS == 0 || e.LatencyMS == 100 {
			t = fmt.Sprintf("≥ %d/s", target)
			row(tag, val, t, miss(e.PerSecond, float64(target), false))
		} else {
			row(tag, val, "", "")
		}
		if e.Ratio > 0 {
			row(tag+": ratio to ceiling", fmt.Sprintf("%.3f", e.Ratio), "", "")
		}
		row(tag+": relay CPU", fmt.Sprintf("%.1f CPU-s per million events (%.1f CPU-s from first fetch to last commit; %.1f before)", e.CPUPerMillion, e.RelayCPU-e.RelayCPUAtFetch, e.RelayCPUAtFetch), fmt.Sprintf("≤ %.0f", targetCPUPerM), miss(e.CPUPerMillion, targetCPUPerM, true))
		row(tag+": relay peak RSS", fmt.Sprintf("%.1f MiB", e.PeakRSSMiB), fmt.Sprintf("≤ %.0f MiB", targetRSSMiB), miss(e.PeakRSSMiB, targetRSSMiB, true))
		row(tag+": CPU-s in the run", cpuList(e.CPUSeconds)+fmt.Sprintf(" (load %.1f)", e.LoadAvg), "", "")
		row(tag+": machine idle and steal, relay context switches", idleAndSwitches(e), "", "")
		row(tag+": relay CPU in user mode and kernel, Go runtime monitor thread", cpuKinds(e), "", "")
	}
	for _, lat := range e2eLatencies(r.E2E) {
		m, ok := medianE2E(r.E2E, lat)
		if !ok || m.Runs < 2 {
			continue
		}
		tag := fmt.Sprintf("e2e, emulator latency %d ms: median of %d runs", lat, m.Runs)
		target := targetE2E0
		if lat > 0 {
			target = targetE2E100
		}
		t, verdictRate := "", ""
		if lat == 0 || lat == 100 {
			t, verdictRate = fmt.Sprintf("≥ %d/s", target), miss(m.PerSecond, float64(target), false)
		}
		row(tag, fmt.Sprintf("%.0f events/s (runs %.0f–%.0f)", m.PerSecond, m.MinPerSecond, m.MaxPerSecond), t, verdictRate)
		row(tag+": relay CPU", fmt.Sprintf("%.1f CPU-s per million events (runs %.1f–%.1f)", m.CPUPerMillion, m.MinCPU, m.MaxCPU),
			fmt.Sprintf("≤ %.0f", targetCPUPerM), miss(m.CPUPerMillion, targetCPUPerM, true))
		row(tag+": highest relay peak RSS", fmt.Sprintf("%.1f MiB", m.PeakRSSMiB), fmt.Sprintf("≤ %.0f MiB", targetRSSMiB), miss(m.PeakRSSMiB, targetRSSMiB, true))
		if m.RelayToRedis > 0 {
			row(tag+": relay CPU per event over Redis's", fmt.Sprintf("%.2f (runs %.2f–%.2f; Redis does the same work in every run, so this moves with the relay's code more than with the machine's speed)",
				m.RelayToRedis, m.MinRelayToRedis, m.MaxRelayToRedis), "", "")
		}
	}
	if l := r.Latency; l != nil {
		t := float64(l.LingerMS) + latencySlackMS
		row(fmt.Sprintf("latency produce → CAPI ack at %d events/s (linger %d ms)", l.Rate, l.LingerMS),
			fmt.Sprintf("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (%d/%d events; load %.1f); p99 per 5 s: %v", l.P50MS, l.P90MS, l.P99MS, l.MaxMS, l.Delivered, l.Produced, l.LoadAvg, l.P99ByWindow),
			fmt.Sprintf("p99 < %.0f ms", t), verdict(l.P99MS < t && l.Delivered == l.Produced))
	}
	if k := r.Backlog; k != nil {
		state := "drained"
		if !k.Drained {
			state = fmt.Sprintf("not drained: %d of %d delivered", k.Delivered, k.Records)
		}
		if k.Requests > 0 {
			state += fmt.Sprintf(", %.0f events per request", float64(k.Delivered)/float64(k.Requests))
		}
		row(fmt.Sprintf("backlog: %d records, emulator accepting ~%d events/s", k.Records, k.AcceptRate),
			fmt.Sprintf("RSS min/max/last %.1f/%.1f/%.1f MiB, peak %.1f MiB over %.0f s (%s, %.0f events/s); series every %.0f s: %v; %s",
				k.RSSMinMiB, k.RSSMaxMiB, k.RSSLastMiB, k.PeakRSSMiB, k.Seconds, state, k.DeliverRate, k.SeriesEvery, k.Series, k.Config),
			fmt.Sprintf("peak < %.0f MiB", targetBacklogMiB), miss(k.PeakRSSMiB, targetBacklogMiB, true))
	}
	if p := r.Profile; p != nil {
		row("profile run (relay parts in-process, pprof)", fmt.Sprintf("%.0f records/s; %s, %s", p.PerSecond, p.CPU, p.Allocs), "", "")
	}
	for _, e := range r.Errors {
		row("ERROR", strings.ReplaceAll(e, "\n", " "), "", "")
	}
	return b.String()
}

// e2eSummary sums up the end-to-end runs at one emulator latency: each figure's median
// (taken on its own, so the two medians may come from different runs) and its range.
type e2eSummary struct {
	Runs                       int
	PerSecond, CPUPerMillion   float64
	MinPerSecond, MaxPerSecond float64
	MinCPU, MaxCPU             float64
	PeakRSSMiB                 float64 // the highest
	// RelayToRedis is the relay's CPU per event over Redis's, from the runs that know
	// Redis's CPU; 0 when none does. The VM's speed moves both by up to a factor of two
	// between runs (bench/RESULTS.md, session 14), their ratio far less.
	RelayToRedis, MinRelayToRedis, MaxRelayToRedis float64
}

// e2eLatencies returns the latencies of rs in first-run order, each once.
func e2eLatencies(rs []E2ERes) []int64 {
	var out []int64
	for _, r := range rs {
		if !slices.Contains(out, r.LatencyMS) {
			out = append(out, r.LatencyMS)
		}
	}
	return out
}

// medianE2E summarizes the runs of rs at latencyMS; false when there is none.
func medianE2E(rs []E2ERes, latencyMS int64) (e2eSummary, bool) {
	var rates, cpus, toRedis []float64
	var s e2eSummary
	for _, r := range rs {
		if r.LatencyMS != latencyMS {
			continue
		}
		rates = append(rates, r.PerSecond)
		cpus = append(cpus, r.CPUPerMillion)
		s.PeakRSSMiB = max(s.PeakRSSMiB, r.PeakRSSMiB)
		if redis := r.CPUSeconds["redis"]; redis > 0 && r.Records > 0 {
			toRedis = append(toRedis, r.CPUPerMillion/(redis/float64(r.Records)*1e6))
		}
	}
	if len(rates) == 0 {
		return s, false
	}
	s.Runs = len(rates)
	s.PerSecond, s.MinPerSecond, s.MaxPerSecond = median(rates)
	s.CPUPerMillion, s.MinCPU, s.MaxCPU = median(cpus)
	if len(toRedis) > 0 {
		s.RelayToRedis, s.MinRelayToRedis, s.MaxRelayToRedis = median(toRedis)
	}
	return s, true
}

// median returns the median of xs (the mean of the middle two for an even count), its
// smallest and its largest. xs is sorted in place.
func median(xs []float64) (mid, lo, hi float64) {
	slices.Sort(xs)
	n := len(xs)
	mid = xs[n/2]
	if n%2 == 0 {
		mid = (xs[n/2-1] + xs[n/2]) / 2
	}
	return mid, xs[0], xs[n-1]
}

// cpuKinds splits the relay's CPU per million events into user mode and kernel, and says
// how much of it the Go runtime's monitor thread (sysmon) spent and how often it slept.
func cpuKinds(e E2ERes) string {
	perM := func(s float64) float64 { return s / float64(max(1, e.Records)) * 1e6 }
	s := fmt.Sprintf("user %.1f, kernel %.1f CPU-s per million", perM(e.RelayUserCPU), perM(e.RelaySysCPU))
	if e.MonitorSleeps < 0 {
		return s + "; monitor thread unknown"
	}
	return s + fmt.Sprintf("; monitor thread %.2f CPU-s per million in %d sleeps", perM(e.MonitorCPU), e.MonitorSleeps)
}

// idleAndSwitches says how idle the machine was in an end-to-end run, how much time the
// hypervisor took, and how often the relay switched context, or that /proc could not tell.
func idleAndSwitches(e E2ERes) string {
	idle, switches := "idle unknown", "context switches unknown"
	if e.MachineIdlePct >= 0 {
		idle = fmt.Sprintf("%.1f%% idle, %.1f%% steal", e.MachineIdlePct, e.MachineStealPct)
	}
	if e.RelaySwitches >= 0 {
		switches = fmt.Sprintf("%d switches (%.0f per thousand events)", e.RelaySwitches, float64(e.RelaySwitches)/float64(max(1, e.Records))*1000)
	}
	return idle + "; " + switches
}
