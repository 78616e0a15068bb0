package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/capirelay/capirelay/sink/emulator"
)

// pixelFlags collects repeated -pixel ID=TOKEN flags.
type pixelFlags map[string]string

func (p pixelFlags) String() string { return fmt.Sprint(len(p), " pixels") }

func (p pixelFlags) Set(v string) error {
	id, token, ok := strings.Cut(v, "=")
	if !ok || id == "" || token == "" || !isDigits(id) {
		return errors.New("want PIXEL_ID=ACCESS_TOKEN with a numeric pixel id")
	}
	p[id] = token
	return nil
}

func cmdEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8089", "address to listen on")
	appSecret := fs.String("app-secret", "", "require appsecret_proof computed with this app secret")
	pixels := pixelFlags{}
	fs.Var(pixels, "pixel", "a pixel and the access token it accepts, PIXEL_ID=TOKEN (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(pixels) == 0 {
		return usageError{errors.New("at least one -pixel PIXEL_ID=TOKEN is required")}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	opts := []emulator.Option{emulator.WithLogger(log)}
	for id, token := range pixels {
		opts = append(opts, emulator.WithPixel(id, token))
	}
	if *appSecret != "" {
		opts = append(opts, emulator.WithAppSecret(*appSecret))
	}
	fmt.Fprintf(stdout, "capirelay emulator: POST http://%s/{version}/{pixel_id}/events for %d pixels; GET /_emulator/events lists what was accepted\n", *addr, len(pixels))
	return emulator.ListenAndServe(ctx, *addr, emulator.New(opts...))
}
