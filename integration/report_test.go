package integration

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// The chaos scenarios (crash, sink faults, Redis restart, broker restart) measure what
// scripts/chaos.sh tabulates: they log one line
//
//	CHAOS-RESULT {json}
//
// when CAPIRELAY_IT_REPORT=1 (chaosResult below), so the script and the tests share one
// implementation of every number.

// chaosResult is one scenario's outcome.
type chaosResult struct {
	Scenario string `json:"scenario"`
	Produced int    `json:"produced"`
	// Distinct is how many of the produced events the emulator received at least once.
	Distinct int `json:"distinct_delivered"`
	// Duplicates counts extra copies beyond the first; Late of them the emulator caused by
	// accepting a request after the relay had timed it out.
	Duplicates   int     `json:"duplicates"`
	Late         int     `json:"late_accepted_duplicates"`
	DeadLettered int     `json:"dead_lettered"`
	MaxLag       int64   `json:"max_lag"`
	Seconds      float64 `json:"seconds"`
	Faults       []fault `json:"faults"`
}

// fault is one injected fault and how long the group took to recover from it: from the
// fault's start until, after the fault ended, the group's lag (committed vs end offsets) was
// back at or below its level when the fault hit (the largest sample of the 5 s before). Faults
// that overlap (the sink-fault scenario's background errors) make this an upper bound.
// -1: not recovered by the end of the run.
type fault struct {
	Name       string  `json:"name"`
	AtEvents   int     `json:"at_events"`
	LagBefore  int64   `json:"lag_before"`
	PeakLag    int64   `json:"peak_lag"`
	DurationS  float64 `json:"duration_s"`
	RecoveredS float64 `json:"recovery_s"`

	start, end time.Time
}

// rate is a scenario's feeder rate in events per second: CAPIRELAY_IT_RATE if set, else def.
func rate(def int) int {
	if v := os.Getenv("CAPIRELAY_IT_RATE"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return def
}

// drainTimeout grows a scenario's drain timeout with its size (a second per 1000 events
// beyond the first 20000), so chaos volumes do not hit the small-run timeouts.
func drainTimeout(base time.Duration, n int) time.Duration {
	return base + time.Duration(max(0, n-20_000)/1000)*time.Second
}

type lagSample struct {
	at  time.Time
	lag int64
}

// lagMonitor samples a group's lag every 250 ms for the whole scenario, from the moment the
// group has committed on every partition.
type lagMonitor struct {
	mu      sync.Mutex
	samples []lagSample
	faults  []*fault
	start   time.Time
	sample  func(context.Context) (int64, []partitionLag, error)
	cancel  context.CancelFunc
	done    chan struct{}
}

func startLagMonitor(t *testing.T, adm *kadm.Client, group string, topics ...string) *lagMonitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := &lagMonitor{start: time.Now(), cancel: cancel, done: make(chan struct{})}
	m.sample = func(ctx context.Context) (int64, []partitionLag, error) { return lag(ctx, adm, group, topics...) }
	t.Cleanup(m.stop)
	go func() {
		defer close(m.done)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		started := false
		for {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			total, parts, err := m.sample(c)
			cancel()
			// Sampling starts once the group has committed on every partition with data:
			// before that, "lag" is the backlog of a group still forming, not a fault's.
			if err == nil && !started {
				started = len(parts) > 0
				for _, p := range parts {
					if p.Committed < 0 && p.End > 0 {
						started = false
					}
				}
			}
			if err == nil && started {
				m.mu.Lock()
				m.samples = append(m.samples, lagSample{time.Now(), total})
				m.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return m
}

func (m *lagMonitor) stop() {
	m.cancel()
	<-m.done
}

// fault records that a fault starts now; call the returned function when it ends (the
// process restarted, the server back).
func (m *lagMonitor) fault(name string, atEvents int) (end func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := &fault{Name: name, AtEvents: atEvents, start: time.Now()}
	for i := len(m.samples) - 1; i >= 0 && f.start.Sub(m.samples[i].at) <= 5*time.Second; i-- {
		f.LagBefore = max(f.LagBefore, m.samples[i].lag)
	}
	m.faults = append(m.faults, f)
	return func() {
		m.mu.Lock()
		f.end = time.Now()
		m.mu.Unlock()
	}
}

// result stops sampling and fills in the lag and recovery figures of r. It takes one last
// sample first, so a run that just drained ends on its final lag.
func (m *lagMonitor) result(r *chaosResult) {
	m.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if total, _, err := m.sample(ctx); err == nil {
		m.samples = append(m.samples, lagSample{time.Now(), total})
	}
	cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	r.Seconds = time.Since(m.start).Round(100 * time.Millisecond).Seconds()
	for _, s := range m.samples {
		r.MaxLag = max(r.MaxLag, s.lag)
	}
	r.Faults = r.Faults[:0]
	for _, f := range m.faults {
		end := f.end
		if end.IsZero() {
			end = f.start
		}
		f.DurationS = round1(end.Sub(f.start).Seconds())
		f.RecoveredS = -1
		for _, s := range m.samples {
			if s.at.Before(f.start) {
				continue
			}
			if f.RecoveredS < 0 {
				f.PeakLag = max(f.PeakLag, s.lag)
			}
			if f.RecoveredS < 0 && !s.at.Before(end) && s.lag <= f.LagBefore {
				f.RecoveredS = round1(s.at.Sub(f.start).Seconds())
			}
		}
		r.Faults = append(r.Faults, *f)
	}
}

func round1(s float64) float64 { return float64(int64(s*10+0.5)) / 10 }

// report fills r from the delivery check and the monitor, logs it, and, with
// CAPIRELAY_IT_REPORT=1, logs the CHAOS-RESULT line scripts/chaos.sh collects.
func report(t *testing.T, r chaosResult, d delivery, emu *capi, deadLettered int, m *lagMonitor) {
	t.Helper()
	r.Distinct = r.Produced - len(d.Lost)
	r.Duplicates = d.Duplicates
	r.Late = int(emu.lateEvents.Load())
	r.DeadLettered = deadLettered
	m.result(&r)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Faults {
		t.Logf("fault %q at %d events: lag %d before, peak %d, lasted %.1fs, recovered after %.1fs",
			f.Name, f.AtEvents, f.LagBefore, f.PeakLag, f.DurationS, f.RecoveredS)
	}
	t.Logf("%s: max lag %d over %.1fs", r.Scenario, r.MaxLag, r.Seconds)
	if os.Getenv("CAPIRELAY_IT_REPORT") == "1" {
		t.Log("CHAOS-RESULT " + string(b))
	}
}
