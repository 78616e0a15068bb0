package main

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/sink/emulator"
)

// emu is the in-process CAPI emulator the relay posts to, on a loopback port.
//
// In "full" mode every event is validated and kept (Received), as in the tests. In "fast"
// mode a Fault hook acknowledges each authenticated, well-formed request with
// events_received = its event count, without validating or keeping the events: the
// emulator then costs the shared CPUs little more than parsing the request, and its memory
// does not grow by a million stored events. Injected latency applies in both modes.
type emu struct {
	*emulator.Server
	URL  string
	fast bool
	srv  *http.Server

	fastEvents   atomic.Int64
	fastRequests atomic.Int64
	firstAccept  atomic.Int64 // unix nanos of the first 200
	lastAccept   atomic.Int64 // unix nanos of the latest 200
	non200       atomic.Int64
}

func startEmu(mode string, latency time.Duration) (*emu, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &emu{URL: "http://" + ln.Addr().String(), fast: mode == "fast"}
	opts := make([]emulator.Option, 0, len(benchPixels)+2)
	for _, p := range benchPixels {
		opts = append(opts, emulator.WithPixel(p, benchToken))
	}
	if latency > 0 {
		opts = append(opts, emulator.WithFaults(emulator.FaultConfig{Latency: emulator.Duration(latency)}))
	}
	if e.fast {
		opts = append(opts, emulator.WithFault(func(r emulator.FaultRequest) *emulator.FaultResponse {
			e.fastEvents.Add(int64(r.Events))
			e.fastRequests.Add(1)
			return &emulator.FaultResponse{
				Status: http.StatusOK,
				Header: http.Header{"Content-Type": {"application/json"}},
				Body:   []byte(`{"events_received":` + strconv.Itoa(r.Events) + `,"messages":[],"fbtrace_id":"bench"}`),
			}
		}))
	}
	e.Server = emulator.New(opts...)
	e.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusWriter{ResponseWriter: w}
		e.Server.ServeHTTP(rec, r)
		if rec.status == http.StatusOK {
			now := time.Now().UnixNano()
			e.firstAccept.CompareAndSwap(0, now)
			e.lastAccept.Store(now)
		} else {
			e.non200.Add(1)
		}
	})}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// events is the number of events acknowledged so far.
func (e *emu) events() int64 {
	if e.fast {
		return e.fastEvents.Load()
	}
	return int64(e.Stats().EventsReceived)
}

func (e *emu) requests() int64 {
	if e.fast {
		return e.fastRequests.Load()
	}
	return int64(e.Stats().Requests)
}

func (e *emu) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = e.srv.Shutdown(ctx)
	_ = e.srv.Close()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
