package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/capirelay/capirelay/sink"
)

// EnvPrefix starts every environment override: CAPIRELAY_ + the field's YAML path in upper
// case joined by "_" (capi.access_token → CAPIRELAY_CAPI_ACCESS_TOKEN). Lists take commas;
// lists of objects and maps take JSON.
const EnvPrefix = "CAPIRELAY"

// Config is capirelay's whole configuration, loaded from YAML and then overridden by the
// environment. Secrets belong in the environment, not in the file.
type Config struct {
	Kafka          KafkaConfig      `yaml:"kafka"`
	SchemaRegistry RegistryConfig   `yaml:"schema_registry"`
	Redis          RedisConfig      `yaml:"redis"`
	CAPI           CAPIConfig       `yaml:"capi"`
	Processing     ProcessingConfig `yaml:"processing"`
	Log            LogConfig        `yaml:"log"`
	Telemetry      TelemetryConfig  `yaml:"telemetry"`
	Runtime        RuntimeConfig    `yaml:"runtime"`
	// ShutdownTimeout bounds the drain on SIGTERM: flush, acknowledgements, commit, leave.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// KafkaConfig is the consumer group and its topics.
type KafkaConfig struct {
	Brokers    []string `yaml:"brokers"`
	Group      string   `yaml:"group"`
	InstanceID string   `yaml:"instance_id"`
	// GroupProtocol is classic (cooperative-sticky, the default) or consumer (KIP-848).
	GroupProtocol string        `yaml:"group_protocol"`
	Topics        []TopicConfig `yaml:"topics"`
	// DeadLetterSuffix names each topic's dead-letter topic: <topic><suffix>.
	DeadLetterSuffix string `yaml:"dead_letter_suffix"`
	// MaxInFlight bounds the records fetched and not done over every owned partition.
	MaxInFlight             int `yaml:"max_in_flight"`
	MaxInFlightPerPartition int `yaml:"max_in_flight_per_partition"`
	// FetchMaxBytes bounds one fetch response: what the client reads ahead of the pipeline.
	FetchMaxBytes int32 `yaml:"fetch_max_bytes"`
	// FetchMaxWait is how long the broker may hold a fetch with nothing new; a partition
	// resumed after a pause waits for the fetch in flight, so keep it short.
	FetchMaxWait   time.Duration `yaml:"fetch_max_wait"`
	CommitInterval time.Duration `yaml:"commit_interval"`
	RevokeTimeout  time.Duration `yaml:"revoke_timeout"`
	// SessionTimeout is the classic group's session.timeout.ms; 0 keeps franz-go's 45 s.
	// With instance_id, a pod that restarts within it keeps its partitions.
	SessionTimeout time.Duration `yaml:"session_timeout"`
}

// TopicConfig says how one topic's records are encoded.
type TopicConfig struct {
	Name string `yaml:"name"`
	// Format is raw (Avro body only, schema below), wire (Confluent: magic byte + schema id,
	// writer schema from the registry) or auto.
	Format string `yaml:"format"`
	// Schema is an embedded schema name (WebEvent, OfflineEvent) or a path to an .avsc file;
	// required for raw.
	Schema string `yaml:"schema"`
	// Kind (web or offline) is used when the writer schema's record name does not say.
	Kind string `yaml:"kind"`
}

// RegistryConfig is the Confluent-compatible Schema Registry for wire-format topics.
type RegistryConfig struct {
	URL      string `yaml:"url"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// RedisConfig is the dedup store and identity map. One address is a single node; several
// are a Cluster, and so is one address with Cluster set.
type RedisConfig struct {
	Addrs []string `yaml:"addrs"`
	// Cluster treats a single address as a Cluster's seed, such as a managed service's one
	// configuration endpoint. Without it a single-node client would be told MOVED for every
	// key that another node serves.
	Cluster     bool          `yaml:"cluster"`
	Username    string        `yaml:"username"`
	Password    string        `yaml:"password"`
	DB          int           `yaml:"db"`
	KeyPrefix   string        `yaml:"key_prefix"`
	Lease       time.Duration `yaml:"lease"`
	DedupTTL    time.Duration `yaml:"dedup_ttl"`
	IdentityTTL time.Duration `yaml:"identity_ttl"`
	// FailOpen sends events unchecked (and counts them) while Redis is unreachable, instead
	// of waiting for it.
	FailOpen bool `yaml:"fail_open"`
	// ChunkScripts claims and confirms by script over chunks of keys on a single Redis
	// server, instead of one command per key: less CPU for the relay, more for Redis.
	ChunkScripts bool `yaml:"chunk_scripts"`
}

// CAPIConfig is the Conversions API endpoint and the advertisers' pixels.
type CAPIConfig struct {
	BaseURL    string `yaml:"base_url"`
	APIVersion string `yaml:"api_version"`
	// AccessToken is used for pixels without a token of their own.
	AccessToken   string                 `yaml:"access_token"`
	AppSecret     string                 `yaml:"app_secret"`
	PartnerAgent  string                 `yaml:"partner_agent"`
	TestEventCode string                 `yaml:"test_event_code"`
	Pixels        map[string]PixelConfig `yaml:"pixels"`

	MaxBatch            int           `yaml:"max_batch"`
	Linger              time.Duration `yaml:"linger"`
	MaxInFlightRequests int           `yaml:"max_in_flight_requests"`
	MaxPendingEvents    int           `yaml:"max_pending_events"`
	RequestTimeout      time.Duration `yaml:"request_timeout"`
	RetryMaxElapsed     time.Duration `yaml:"retry_max_elapsed"`
}

// PixelConfig is one advertiser's pixel (dataset).
type PixelConfig struct {
	AccessToken   string `yaml:"access_token"`
	TestEventCode string `yaml:"test_event_code"`
}

// ProcessingConfig holds the rules applied before sending.
type ProcessingConfig struct {
	// RequireConsent drops events that carry no consent record at all.
	RequireConsent bool `yaml:"require_consent"`
	// MaxEventAge is Meta's limit on event_time's age; older events are dead-lettered.
	MaxEventAge time.Duration `yaml:"max_event_age"`
	// MaxFutureSkew is how far ahead of now an event_time may be.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// FutureEventTime says what happens to an event_time beyond MaxFutureSkew: clamp (set
	// it to now, the reference's advice for clock skew) or dead_letter.
	FutureEventTime string `yaml:"future_event_time"`
	// PhysicalStoreMaxAge lets physical_store events be older than max_event_age, up to
	// 62 days (Meta's offline docs; opt-in, since the same docs repeat the 7-day rule).
	PhysicalStoreMaxAge time.Duration `yaml:"physical_store_max_age"`
}

// RuntimeConfig tunes Go's garbage collector. GOGC and GOMEMLIMIT in the environment
// win over it, as they do for every Go program.
//
// Collection is the relay's largest single cost after its own work: at Go's default
// (GOGC=100) a collection runs every time the heap doubles, a third of the relay's CPU in
// the throughput bench (bench/RESULTS.md). The relay's live heap is bounded by its
// in-flight limits, so it lets the heap grow further between collections (GCPercent) and
// caps the total with a soft limit (MemoryLimitMiB) under which the collector works
// harder instead.
type RuntimeConfig struct {
	// GCPercent is GOGC: how far, in percent of the live heap, the heap grows before the
	// next collection. -1 turns collection off until the memory limit, which it then needs.
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimitMiB is GOMEMLIMIT in MiB, a soft limit on all the memory the Go runtime
	// holds; 0 sets none. Keep it well above the live heap, which grows with
	// kafka.max_in_flight and capi.max_pending_events: a limit at the live heap makes the
	// collector run continuously (Go then caps it at about half the CPU).
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
}

// LogConfig sets the structured log.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// defaultConfig holds every default; a loaded file and the environment override it.
func defaultConfig() Config {
	return Config{
		Kafka: KafkaConfig{
			Group:         "capirelay",
			GroupProtocol: "classic",
			Topics: []TopicConfig{
				{Name: "capi.web", Format: "auto", Schema: "WebEvent", Kind: "web"},
				{Name: "capi.offline", Format: "auto", Schema: "OfflineEvent", Kind: "offline"},
			},
			DeadLetterSuffix:        ".dlq",
			MaxInFlight:             6000,
			MaxInFlightPerPartition: 4000,
			FetchMaxBytes:           256 << 10,
			FetchMaxWait:            100 * time.Millisecond,
			CommitInterval:          time.Second,
			RevokeTimeout:           10 * time.Second,
		},
		Redis: RedisConfig{
			KeyPrefix:   "capirelay:",
			Lease:       30 * time.Second,
			DedupTTL:    48 * time.Hour,
			IdentityTTL: 30 * 24 * time.Hour,
		},
		CAPI: CAPIConfig{
			BaseURL:             "https://graph.facebook.com",
			APIVersion:          "v25.0",
			MaxBatch:            500,
			Linger:              200 * time.Millisecond,
			MaxInFlightRequests: 8,
			MaxPendingEvents:    20000,
			RequestTimeout:      30 * time.Second,
			RetryMaxElapsed:     2 * time.Minute,
		},
		Processing: ProcessingConfig{
			MaxEventAge:     7 * 24 * time.Hour,
			MaxFutureSkew:   time.Minute,
			FutureEventTime: "clamp",
		},
		Log:             LogConfig{Level: "info", Format: "json"},
		Runtime:         RuntimeConfig{GCPercent: 200, MemoryLimitMiB: 100},
		ShutdownTimeout: 30 * time.Second,
	}
}

// loadConfig reads the YAML file (if path is not empty) over the defaults, then applies the
// environment, then validates. Unknown keys in the file are errors: a misspelt key that is
// silently ignored is a production incident.
func loadConfig(path string, environ []string) (Config, error) {
	cfg := defaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

// applyEnv overrides fields from CAPIRELAY_* variables, walking the struct by YAML tags.
func applyEnv(cfg *Config, environ []string) error {
	env := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix+"_") {
			env[k] = v
		}
	}
	used := make(map[string]bool)
	err := walkEnv(reflect.ValueOf(cfg).Elem(), EnvPrefix, "", env, used)
	if err != nil {
		return err
	}
	// A variable under a configuration section that names no field is a typo (and a
	// setting silently not applied); other CAPIRELAY_* variables belong to someone else,
	// such as the test suite, and are left alone.
	sections := configSections(reflect.TypeOf(*cfg))
	for k := range env {
		if used[k] {
			continue
		}
		for _, sec := range sections {
			if strings.HasPrefix(k, sec+"_") || k == sec {
				return fmt.Errorf("config: environment variable %s names no configuration field", k)
			}
		}
	}
	return nil
}

// configSections returns CAPIRELAY_<NAME> for every top-level field.
func configSections(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			out = append(out, EnvPrefix+"_"+strings.ToUpper(tag))
		}
	}
	return out
}

func walkEnv(v reflect.Value, envName, path string, env map[string]string, used map[string]bool) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := envName + "_" + strings.ToUpper(tag)
		fpath := tag
		if path != "" {
			fpath = path + "." + tag
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			if err := walkEnv(fv, name, fpath, env, used); err != nil {
				return err
			}
			continue
		}
		raw, ok := env[name]
		if !ok {
			continue
		}
		used[name] = true
		if err := setFromString(fv, raw); err != nil {
			return fmt.Errorf("config: %s (from %s): %w", fpath, name, err)
		}
	}
	return nil
}

func setFromString(v reflect.Value, raw string) error {
	if v.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 200ms, 30s, 48h)")
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not a boolean")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		v.SetInt(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			var parts []string
			for _, s := range strings.Split(raw, ",") {
				if s = strings.TrimSpace(s); s != "" {
					parts = append(parts, s)
				}
			}
			v.Set(reflect.ValueOf(parts))
			return nil
		}
		return decodeJSONInto(v, raw)
	case reflect.Map:
		return decodeJSONInto(v, raw)
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// decodeJSONInto decodes JSON via YAML (JSON is YAML) so the YAML field names apply.
func decodeJSONInto(v reflect.Value, raw string) error {
	ptr := reflect.New(v.Type())
	dec := yaml.NewDecoder(strings.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(ptr.Interface()); err != nil {
		if !json.Valid([]byte(raw)) {
			return fmt.Errorf("not valid JSON")
		}
		return err
	}
	v.Set(ptr.Elem())
	return nil
}

// validate checks every field a wrong value of which would fail later or, worse, silently.
// Each error names the field.
func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "at least one seed broker is required")
	}
	if c.Runtime.GCPercent < -1 {
		bad("runtime.gc_percent", "must be -1 (off) or more, not %d", c.Runtime.GCPercent)
	}
	if c.Runtime.MemoryLimitMiB < 0 {
		bad("runtime.memory_limit_mib", "must be 0 (none) or more, not %d", c.Runtime.MemoryLimitMiB)
	}
	if c.Runtime.GCPercent == -1 && c.Runtime.MemoryLimitMiB == 0 {
		// Collection off with no limit grows the heap until the kernel kills the process.
		bad("runtime.gc_percent", "-1 (collection off) needs runtime.memory_limit_mib")
	}
	if c.Kafka.Group == "" {
		bad("kafka.group", "must not be empty")
	}
	switch c.Kafka.GroupProtocol {
	case "classic", "consumer":
	default:
		bad("kafka.group_protocol", "must be classic or consumer (KIP-848), not %q", c.Kafka.GroupProtocol)
	}
	if len(c.Kafka.Topics) == 0 {
		bad("kafka.topics", "at least one topic is required")
	}
	seen := map[string]bool{}
	for i, t := range c.Kafka.Topics {
		field := fmt.Sprintf("kafka.topics[%d]", i)
		if t.Name == "" {
			bad(field+".name", "must not be empty")
		}
		if seen[t.Name] {
			bad(field+".name", "topic %q is listed twice", t.Name)
		}
		seen[t.Name] = true
		switch t.Format {
		case "raw", "wire", "auto":
		default:
			bad(field+".format", "must be raw, wire or auto, not %q", t.Format)
		}
		if t.Format == "raw" && t.Schema == "" {
			bad(field+".schema", "is required for raw format")
		}
		if t.Format == "wire" && c.SchemaRegistry.URL == "" {
			bad("schema_registry.url", "is required for wire-format topic %q", t.Name)
		}
		switch t.Kind {
		case "", "web", "offline":
		default:
			bad(field+".kind", "must be web or offline, not %q", t.Kind)
		}
	}
	if c.Kafka.DeadLetterSuffix == "" {
		bad("kafka.dead_letter_suffix", "must not be empty (the dead-letter topic must differ from the source)")
	}
	if c.Kafka.MaxInFlight < 1 {
		bad("kafka.max_in_flight", "must be at least 1")
	}
	if c.Kafka.MaxInFlightPerPartition < 1 {
		bad("kafka.max_in_flight_per_partition", "must be at least 1")
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			bad(field, "must be a positive duration")
		}
	}
	if c.Kafka.FetchMaxBytes < 1<<10 {
		bad("kafka.fetch_max_bytes", "must be at least 1024")
	}
	positive("kafka.fetch_max_wait", c.Kafka.FetchMaxWait)
	positive("kafka.commit_interval", c.Kafka.CommitInterval)
	positive("kafka.revoke_timeout", c.Kafka.RevokeTimeout)
	switch {
	case c.Kafka.SessionTimeout < 0:
		bad("kafka.session_timeout", "must not be negative (0: franz-go's 45s)")
	case c.Kafka.SessionTimeout > 0 && c.Kafka.GroupProtocol == "consumer":
		bad("kafka.session_timeout", "applies to the classic protocol only; with consumer (KIP-848) the broker's group.consumer.session.timeout.ms decides")
	}
	if len(c.Redis.Addrs) == 0 {
		bad("redis.addrs", "at least one address is required")
	}
	if c.Redis.DB != 0 && (c.Redis.Cluster || len(c.Redis.Addrs) > 1) {
		bad("redis.db", "must be 0 for a Redis Cluster, which has only database 0; got %d", c.Redis.DB)
	}
	positive("redis.lease", c.Redis.Lease)
	positive("redis.dedup_ttl", c.Redis.DedupTTL)
	positive("redis.identity_ttl", c.Redis.IdentityTTL)
	if c.Redis.Lease >= c.Redis.DedupTTL {
		bad("redis.lease", "must be shorter than redis.dedup_ttl")
	}
	if c.Redis.Lease < 3*time.Second {
		// Leases are renewed every third of their length; much shorter and one slow Redis
		// round trip could let a lease lapse under an event still in the sink.
		bad("redis.lease", "must be at least 3s (leases are renewed every lease/3), got %s", c.Redis.Lease)
	}
	if c.CAPI.BaseURL == "" {
		bad("capi.base_url", "must not be empty")
	}
	if !validAPIVersion(c.CAPI.APIVersion) {
		bad("capi.api_version", "must look like v25.0, not %q", c.CAPI.APIVersion)
	}
	if c.CAPI.PartnerAgent != "" && !sink.ValidPartnerAgent(c.CAPI.PartnerAgent) {
		bad("capi.partner_agent", "must be fewer than 23 characters with at least two letters (Meta's rule), got %d characters", len([]rune(c.CAPI.PartnerAgent)))
	}
	if c.CAPI.AccessToken == "" {
		for id, px := range c.CAPI.Pixels {
			if px.AccessToken == "" {
				bad("capi.pixels."+id+".access_token", "is required when capi.access_token is not set")
			}
		}
	}
	for id := range c.CAPI.Pixels {
		if !isDigits(id) {
			bad("capi.pixels", "pixel id %q must be digits", id)
		}
	}
	if c.CAPI.MaxBatch < 1 || c.CAPI.MaxBatch > 1000 {
		bad("capi.max_batch", "must be between 1 and 1000 (Meta's limit per request), not %d", c.CAPI.MaxBatch)
	}
	positive("capi.linger", c.CAPI.Linger)
	if c.CAPI.MaxInFlightRequests < 1 {
		bad("capi.max_in_flight_requests", "must be at least 1")
	}
	if c.CAPI.MaxPendingEvents < c.CAPI.MaxBatch {
		bad("capi.max_pending_events", "must be at least capi.max_batch (%d)", c.CAPI.MaxBatch)
	}
	positive("capi.request_timeout", c.CAPI.RequestTimeout)
	positive("capi.retry_max_elapsed", c.CAPI.RetryMaxElapsed)
	if c.Processing.MaxEventAge <= 0 || c.Processing.MaxEventAge > 7*24*time.Hour {
		bad("processing.max_event_age", "must be positive and at most 168h (Meta rejects older events)")
	}
	if c.Processing.MaxFutureSkew < 0 {
		bad("processing.max_future_skew", "must not be negative")
	}
	switch c.Processing.FutureEventTime {
	case "clamp", "dead_letter":
	default:
		bad("processing.future_event_time", "must be clamp or dead_letter, not %q", c.Processing.FutureEventTime)
	}
	if c.Processing.PhysicalStoreMaxAge < 0 || c.Processing.PhysicalStoreMaxAge > sink.MaxPhysicalStoreAge {
		bad("processing.physical_store_max_age", "must be between 0 (off) and 1488h (62 days)")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "must be json or text, not %q", c.Log.Format)
	}
	positive("shutdown_timeout", c.ShutdownTimeout)
	return errors.Join(errs...)
}

func validAPIVersion(s string) bool {
	major, minor, ok := strings.Cut(strings.TrimPrefix(s, "v"), ".")
	return ok && strings.HasPrefix(s, "v") && isDigits(major) && isDigits(minor)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
