package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

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

// errorRateFlag reads -error-rate CLASS=RATE[,CLASS=RATE…] into the rate fields of a
// FaultConfig. Repeating the flag adds to what earlier ones set.
type errorRateFlag struct{ c *emulator.FaultConfig }

// errorRateClasses maps the names -error-rate accepts to the FaultConfig field they set.
// Both "ratelimit" and "rate_limit" are accepted: the first is what people type, the
// second what the admin endpoint's JSON calls it.
var errorRateClasses = map[string]func(*emulator.FaultConfig) *float64{
	"transient":            func(c *emulator.FaultConfig) *float64 { return &c.Transient },
	"ratelimit":            func(c *emulator.FaultConfig) *float64 { return &c.RateLimit },
	"rate_limit":           func(c *emulator.FaultConfig) *float64 { return &c.RateLimit },
	"auth":                 func(c *emulator.FaultConfig) *float64 { return &c.Auth },
	"permission":           func(c *emulator.FaultConfig) *float64 { return &c.Permission },
	"timeout":              func(c *emulator.FaultConfig) *float64 { return &c.Timeout },
	"timeout_after_accept": func(c *emulator.FaultConfig) *float64 { return &c.TimeoutAfterAccept },
}

func (f errorRateFlag) String() string {
	if f.c == nil {
		return ""
	}
	var parts []string
	for _, k := range []string{"transient", "rate_limit", "auth", "permission", "timeout", "timeout_after_accept"} {
		if v := *errorRateClasses[k](f.c); v != 0 {
			parts = append(parts, k+"="+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	return strings.Join(parts, ",")
}

func (f errorRateFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		name, rate, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%q: want CLASS=RATE, such as transient=0.05", part)
		}
		field, known := errorRateClasses[strings.ToLower(name)]
		if !known {
			return fmt.Errorf("unknown class %q: want transient, ratelimit, auth, permission, timeout or timeout_after_accept", name)
		}
		r, err := parseRate(rate)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		*field(f.c) = r
	}
	return nil
}

// rateFlag is a probability flag (-timeout-rate).
type rateFlag struct{ p *float64 }

func (f rateFlag) String() string {
	if f.p == nil || *f.p == 0 {
		return ""
	}
	return strconv.FormatFloat(*f.p, 'g', -1, 64)
}

func (f rateFlag) Set(v string) error {
	r, err := parseRate(v)
	if err != nil {
		return err
	}
	*f.p = r
	return nil
}

func parseRate(v string) (float64, error) {
	r, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, fmt.Errorf("rate %q is not a number", v)
	}
	if !(r >= 0 && r <= 1) { // also refuses NaN
		return 0, fmt.Errorf("rate %v outside [0, 1]", r)
	}
	return r, nil
}

// durationFlag is a non-negative duration flag that writes an emulator.Duration.
type durationFlag struct{ d *emulator.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return time.Duration(*f.d).String()
}

func (f durationFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 250ms or 30s", v)
	}
	if d < 0 {
		return fmt.Errorf("duration %v is negative", d)
	}
	*f.d = emulator.Duration(d)
	return nil
}

// pixelListFlag collects -fault-pixel ID[,ID…].
type pixelListFlag struct{ ids *[]string }

func (f pixelListFlag) String() string {
	if f.ids == nil {
		return ""
	}
	return strings.Join(*f.ids, ",")
}

func (f pixelListFlag) Set(v string) error {
	for id := range strings.SplitSeq(v, ",") {
		id = strings.TrimSpace(id)
		if !isDigits(id) {
			return fmt.Errorf("pixel id %q is not numeric", id)
		}
		*f.ids = append(*f.ids, id)
	}
	return nil
}

// emulatorSettings is the parsed command line of `capirelay emulator`.
type emulatorSettings struct {
	addr      string
	appSecret string
	pixels    pixelFlags
	faults    emulator.FaultConfig
	seed      uint64
}

// parseEmulatorFlags reads the command line. Every mistake is a usageError naming the flag.
func parseEmulatorFlags(args []string, stderr io.Writer) (*emulatorSettings, error) {
	s := &emulatorSettings{pixels: pixelFlags{}}
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.addr, "addr", "127.0.0.1:8089", "address to listen on")
	fs.StringVar(&s.appSecret, "app-secret", "", "require appsecret_proof computed with this app secret")
	fs.Var(s.pixels, "pixel", "a pixel and the access token it accepts, PIXEL_ID=TOKEN (repeatable)")

	f := &s.faults
	fs.Var(errorRateFlag{f}, "error-rate",
		"probability of injected errors by class, CLASS=RATE[,…]: transient (500, code 1/2), ratelimit (code 17 or 80004/2446079), auth (190/463), permission (code 10/200)")
	fs.Var(rateFlag{&f.Timeout}, "timeout-rate", "probability a request is held unprocessed until the client gives up (then 504); nothing stored")
	fs.Var(rateFlag{&f.TimeoutAfterAccept}, "timeout-after-accept-rate", "probability a valid request is stored, then held like a timeout: a retry duplicates it")
	fs.Var(durationFlag{&f.TimeoutHold}, "timeout-hold", "how long timeouts hold a request before answering 504 (default 35s)")
	fs.Var(durationFlag{&f.Latency}, "latency", "fixed latency added to every request")
	fs.Var(durationFlag{&f.Jitter}, "jitter", "uniform random latency in [0, jitter) added to -latency")
	fs.Var(durationFlag{&f.LatencyP50}, "latency-p50", "median of a lognormal latency (with -latency-p99; instead of -latency/-jitter)")
	fs.Var(durationFlag{&f.LatencyP99}, "latency-p99", "99th percentile of the lognormal latency")
	fs.IntVar(&f.RateLimitNext, "ratelimit-next", 0, "rate limit the next N requests")
	fs.Var(durationFlag{&f.RateLimitFor}, "ratelimit-for", "rate limit every request for this long after start")
	fs.Var(durationFlag{&f.RetryAfter}, "retry-after", "wait the rate-limit answers advertise (default 1m)")
	fs.Var(durationFlag{&f.OutageAt}, "outage-at", "start a full outage this long after start (needs -outage-for)")
	fs.Var(durationFlag{&f.OutageFor}, "outage-for", "length of the full outage")
	fs.StringVar(&f.OutageMode, "outage-mode", emulator.OutageReset, "how the outage fails requests: reset (close the connection) or 503")
	fs.Var(pixelListFlag{&f.Pixels}, "fault-pixel", "inject faults only for these pixels, ID[,ID…] (repeatable; default every pixel)")
	fs.Uint64Var(&s.seed, "fault-seed", 1, "seed of the fault RNG: the same seed and requests give the same faults")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q: the emulator takes only flags", fs.Arg(0))}
	}
	if len(s.pixels) == 0 {
		return nil, usageError{errors.New("at least one -pixel PIXEL_ID=TOKEN is required")}
	}
	for _, id := range f.Pixels {
		if _, ok := s.pixels[id]; !ok {
			return nil, usageError{fmt.Errorf("-fault-pixel %s is not one of the -pixel ids", id)}
		}
	}
	if err := f.Validate(); err != nil {
		return nil, usageError{err}
	}
	return s, nil
}

func cmdEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseEmulatorFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	opts := []emulator.Option{
		emulator.WithLogger(log),
		emulator.WithFaultSeed(s.seed),
		emulator.WithFaults(s.faults), // validated by parseEmulatorFlags
	}
	for id, token := range s.pixels {
		opts = append(opts, emulator.WithPixel(id, token))
	}
	if s.appSecret != "" {
		opts = append(opts, emulator.WithAppSecret(s.appSecret))
	}
	base := "http://" + s.addr
	fmt.Fprintf(stdout, "capirelay emulator: POST %s/{version}/{pixel_id}/events for %d pixels\n", base, len(s.pixels))
	fmt.Fprintf(stdout, "  events: GET %s/_emulator/events[?pixel_id=ID][&test=1|0][&test_event_code=CODE]   stats: GET %s/_emulator/stats\n", base, base)
	fmt.Fprintf(stdout, "  faults: GET|POST|DELETE %s/_emulator/faults (JSON body, e.g. {\"transient\":0.05,\"latency\":\"20ms\"})\n", base)
	if desc := describeFaults(s.faults); desc != "" {
		fmt.Fprintf(stdout, "  injecting: %s (seed %d)\n", desc, s.seed)
	}
	return emulator.ListenAndServe(ctx, s.addr, emulator.New(opts...))
}

// describeFaults is the one-line summary printed at start, "" when nothing is injected.
func describeFaults(c emulator.FaultConfig) string {
	if c.OutageMode == emulator.OutageReset {
		c.OutageMode = "" // the default says nothing on its own
	}
	b, err := json.Marshal(c)
	if err != nil || string(b) == "{}" {
		return ""
	}
	return string(b)
}
