// Command capirelay forwards conversion events from Kafka to Meta's Conversions API.
//
//	capirelay run --config capirelay.yaml   the production relay
//	capirelay demo                          the whole path in one process, nothing external
//	capirelay emulator -addr :8080           a local Conversions API endpoint for testing
//	capirelay inspect events.jsonl           the requests it would send, and each verdict
//	capirelay dlq replay -dlq-topic T        re-publish dead letters after a fix
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `capirelay forwards conversion events from Kafka to Meta's Conversions API.

Usage:
  capirelay run --config FILE     run the relay (every setting also from CAPIRELAY_* env)
  capirelay demo [flags]          run the whole path on an embedded Kafka, store and emulator
  capirelay emulator [flags]      serve a local Conversions API emulator
  capirelay inspect [flags] FILE  show the requests and verdicts for events, sending nothing
  capirelay dlq replay [flags]    re-publish dead letters to their source topic after a fix
  capirelay help                  show this text

Run 'capirelay COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "emulator":
		err = cmdEmulator(ctx, args[1:], stdout, stderr)
	case "inspect":
		err = cmdInspect(ctx, args[1:], stdout, stderr)
	case "dlq":
		err = cmdDLQ(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "capirelay: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "capirelay %s: %v\n", args[0], err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError is a mistake in the command line or configuration (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func newLogger(w io.Writer, cfg LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path to the YAML configuration (CAPIRELAY_* environment variables override it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, os.Environ())
	if err != nil {
		return usageError{err}
	}
	log := newLogger(stderr, cfg.Log)
	gc := applyRuntime(cfg.Runtime, os.Getenv)
	log.Info("garbage collector", "gogc", gc.GOGC, "gogc_from_env", gc.FromEnvGC,
		"memory_limit_mib", gc.LimitMiB, "memory_limit_from_env", gc.FromEnvML)
	r, err := newRelay(ctx, cfg, relayParts{log: log})
	if err != nil {
		return err
	}
	log.Info("capirelay starting", "brokers", cfg.Kafka.Brokers, "group", cfg.Kafka.Group, "topics", topicNames(cfg))
	err = r.run(ctx)
	log.Info("capirelay stopped", "err", err)
	return err
}
