package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// shutdownGrace bounds how long in-flight requests may finish once ctx ends.
const shutdownGrace = 5 * time.Second

// ListenAndServe serves s on addr until ctx ends, then shuts down gracefully. It returns nil
// after a shutdown caused by ctx.
func ListenAndServe(ctx context.Context, addr string, s *Server) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("emulator: listen on %s: %w", addr, err)
	}
	return Serve(ctx, ln, s)
}

// Serve is ListenAndServe on an existing listener (tests pass one on 127.0.0.1:0). It closes
// ln.
func Serve(ctx context.Context, ln net.Listener, s *Server) error {
	// Requests inherit ctx so that ones an injected timeout or latency is holding end when
	// ctx does; otherwise Shutdown would wait out every hold and then fail.
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("emulator: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("emulator: shutdown on %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("emulator: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}
