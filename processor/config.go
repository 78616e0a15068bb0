package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is what the processor needs beyond its dependencies. Zero values take the defaults
// documented on each field.
type Config struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// Group is the consumer group every relay instance joins; Kafka spreads the partitions.
	Group string
	// Topics are consumed; each must be known to the Decoder.
	Topics []string
	// InstanceID enables static membership (e.g. the pod name), so a quick restart does not
	// rebalance the group.
	InstanceID string
	// GroupProtocol is "classic" (the default: client-side cooperative-sticky balancing) or
	// "consumer" (KIP-848: the broker assigns partitions; Kafka 4.0+, and franz-go advises
	// 4.3+, before which a commit can fail once with STALE_MEMBER_EPOCH — harmless here,
	// since a failed commit is retried at the next interval).
	GroupProtocol string
	// DeadLetterTopic names the dead-letter topic for a source topic. Default: topic + ".dlq".
	DeadLetterTopic func(topic string) string

	// MaxInFlight bounds the records fetched but not done, over every partition this
	// process owns: the poll loop waits for room before it polls, so nothing fetched is
	// thrown away. It is what bounds memory. Default 6,000.
	MaxInFlight int
	// MaxInFlightPerPartition bounds records fetched but not done per partition, so that a
	// partition whose records cannot finish (a pixel retrying for minutes) does not take
	// all of MaxInFlight: fetching that partition pauses at the bound and resumes at half of
	// it. A pause makes the client drop what it had fetched ahead for the partition, to be
	// fetched again, so the bound is meant not to bind in steady flow. Default 4,000.
	MaxInFlightPerPartition int
	// PollRecords bounds the records handled per poll. Default 2,000.
	PollRecords int
	// FetchMaxBytes bounds one fetch response, and so what the client buffers ahead of the
	// pipeline. Default 256 KiB: decompressed, the batches of a larger response are a large
	// part of the live heap, and under the memory limit a smaller live heap means fewer
	// collections (at 1 MiB the relay collected 157 times per million records, at 256 KiB
	// 111; bench/RESULTS.md).
	FetchMaxBytes int32
	// FetchMaxWait bounds how long the broker holds a fetch that has no new data. A
	// partition resumed after a pause joins only the next fetch, so this is also the
	// longest a resumed partition waits; franz-go's 5 s default would stall the pipeline
	// behind every pause. Default 100 ms.
	FetchMaxWait time.Duration
	// CommitInterval is how often finished watermarks are committed. Default 1 s.
	CommitInterval time.Duration
	// RevokeTimeout bounds how long a revoked partition's in-flight records may take to
	// finish before its watermark is committed and it is handed over. Keep it well under the
	// group's rebalance timeout. Default 10 s.
	RevokeTimeout time.Duration
	// SessionTimeout is how long the group waits for a member that stopped heartbeating
	// before it rebalances the member's partitions (classic protocol only: with KIP-848 the
	// broker's group.consumer.session.timeout.ms decides). A static member that restarts
	// within it gets its partitions back without a rebalance; one that is gone for good
	// leaves them idle that long. Default franz-go's, 45 s.
	SessionTimeout time.Duration
	// ShutdownTimeout bounds the graceful drain on stop: flush, acknowledgements, commit,
	// leave. Default 30 s.
	ShutdownTimeout time.Duration
	// LeaseRenewInterval is how often the claims of events still in the sink are extended,
	// so a batch that waits (linger, retries, a throttled pixel) keeps its leases. Set it to
	// a fraction of the store's lease (a third leaves two renewals' slack). Default 10 s.
	LeaseRenewInterval time.Duration
	// HeldRetryInterval is how often events held by another claim's lease are claimed again.
	// Default 250 ms.
	HeldRetryInterval time.Duration
	// RetryBackoff bounds the backoff for transient failures the processor retries itself
	// (schema registry unreachable, dead-letter produce). Default 100 ms to 5 s.
	RetryBackoffMin, RetryBackoffMax time.Duration

	// RequireConsent drops events whose record carries no consent at all. Events whose
	// consent says ads are not allowed are always dropped.
	RequireConsent bool

	// KafkaOptions are appended to the client's options (TLS, SASL, tests).
	KafkaOptions []kgo.Opt
	// Logger receives structured logs; never raw PII or secrets. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock used for validation. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.DeadLetterTopic == nil {
		c.DeadLetterTopic = func(topic string) string { return topic + ".dlq" }
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 6000
	}
	if c.MaxInFlightPerPartition <= 0 {
		c.MaxInFlightPerPartition = 4000
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = 256 << 10
	}
	if c.PollRecords <= 0 {
		c.PollRecords = 2000
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = 100 * time.Millisecond
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.RevokeTimeout <= 0 {
		c.RevokeTimeout = 10 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.LeaseRenewInterval <= 0 {
		c.LeaseRenewInterval = 10 * time.Second
	}
	if c.HeldRetryInterval <= 0 {
		c.HeldRetryInterval = 250 * time.Millisecond
	}
	if c.RetryBackoffMin <= 0 {
		c.RetryBackoffMin = 100 * time.Millisecond
	}
	if c.RetryBackoffMax <= 0 {
		c.RetryBackoffMax = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	var errs []error
	switch c.GroupProtocol {
	case "", "classic", "consumer":
	default:
		errs = append(errs, fmt.Errorf("processor: group protocol must be classic or consumer, not %q", c.GroupProtocol))
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("processor: brokers: at least one seed broker is required"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("processor: group: a consumer group is required"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("processor: topics: at least one topic is required"))
	}
	for _, t := range c.Topics {
		if d := c.DeadLetterTopic(t); d == t || d == "" {
			errs = append(errs, fmt.Errorf("processor: dead-letter topic for %q must be a different, non-empty topic", t))
		}
	}
	return errors.Join(errs...)
}
