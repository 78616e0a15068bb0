package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const validYAML = `
kafka:
  brokers: [127.0.0.1:9092]
  topics:
    - {name: capi.web, format: raw, schema: WebEvent}
redis:
  addrs: [127.0.0.1:6379]
capi:
  access_token: from-file
  partner_agent: capirelay
  pixels:
    "123456":
      access_token: pixel-token
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "capirelay.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, validYAML), []string{
		"CAPIRELAY_CAPI_ACCESS_TOKEN=from-env",
		"CAPIRELAY_KAFKA_BROKERS=a:1, b:2",
		"CAPIRELAY_CAPI_LINGER=50ms",
		"CAPIRELAY_REDIS_FAIL_OPEN=true",
		"CAPIRELAY_REDIS_CHUNK_SCRIPTS=true",
		"CAPIRELAY_CAPI_MAX_BATCH=250",
		"CAPIRELAY_KAFKA_FETCH_MAX_WAIT=250ms",
		"CAPIRELAY_KAFKA_SESSION_TIMEOUT=2m",
		"CAPIRELAY_REQUIRE_SERVICES=1", // the test suite's, not a configuration field
		"PATH=/usr/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CAPI.AccessToken != "from-env" {
		t.Errorf("env did not override the file: %q", cfg.CAPI.AccessToken)
	}
	if strings.Join(cfg.Kafka.Brokers, ",") != "a:1,b:2" {
		t.Errorf("brokers %v", cfg.Kafka.Brokers)
	}
	if cfg.CAPI.Linger != 50*time.Millisecond || !cfg.Redis.FailOpen || !cfg.Redis.ChunkScripts || cfg.CAPI.MaxBatch != 250 {
		t.Errorf("overrides not applied: %+v", cfg.CAPI)
	}
	if cfg.Kafka.FetchMaxWait != 250*time.Millisecond || cfg.Kafka.FetchMaxBytes != 256<<10 {
		t.Errorf("fetch settings: wait %s bytes %d", cfg.Kafka.FetchMaxWait, cfg.Kafka.FetchMaxBytes)
	}
	if cfg.Kafka.SessionTimeout != 2*time.Minute {
		t.Errorf("session timeout %s, want 2m", cfg.Kafka.SessionTimeout)
	}
	if cfg.Kafka.Group != "capirelay" || cfg.Redis.DedupTTL != 48*time.Hour {
		t.Errorf("defaults lost: group %q ttl %s", cfg.Kafka.Group, cfg.Redis.DedupTTL)
	}
	if cfg.Runtime != (RuntimeConfig{GCPercent: 200, MemoryLimitMiB: 100}) {
		t.Errorf("runtime defaults: %+v", cfg.Runtime)
	}
	if cfg.CAPI.Pixels["123456"].AccessToken != "pixel-token" {
		t.Errorf("pixels: %+v", cfg.CAPI.Pixels)
	}
}

func TestLoadConfigErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		env   []string
		field string
	}{
		{"partner_agent too long", validYAML, []string{"CAPIRELAY_CAPI_PARTNER_AGENT=abcdefghijklmnopqrstuvwxyz"}, "capi.partner_agent"},
		{"partner_agent without letters", validYAML, []string{"CAPIRELAY_CAPI_PARTNER_AGENT=1234-5"}, "capi.partner_agent"},
		{"batch above Meta's cap", validYAML, []string{"CAPIRELAY_CAPI_MAX_BATCH=1001"}, "capi.max_batch"},
		{"not a duration", validYAML, []string{"CAPIRELAY_CAPI_LINGER=soon"}, "capi.linger"},
		{"not an integer", validYAML, []string{"CAPIRELAY_CAPI_MAX_BATCH=many"}, "capi.max_batch"},
		{"unknown env var in a section", validYAML, []string{"CAPIRELAY_CAPI_LINGR=1s"}, "CAPIRELAY_CAPI_LINGR"},
		{"unknown nested env var", validYAML, []string{"CAPIRELAY_SCHEMA_REGISTRY_URI=x"}, "CAPIRELAY_SCHEMA_REGISTRY_URI"},
		{"unknown yaml key", validYAML + "\nlingr: 1s\n", nil, "lingr"},
		{"no brokers", strings.Replace(validYAML, "brokers: [127.0.0.1:9092]", "brokers: []", 1), nil, "kafka.brokers"},
		{"bad format", strings.Replace(validYAML, "format: raw", "format: json", 1), nil, "kafka.topics[0].format"},
		{"wire without registry", strings.Replace(validYAML, "format: raw", "format: wire", 1), nil, "schema_registry.url"},
		{"lease too short to renew", validYAML, []string{"CAPIRELAY_REDIS_LEASE=500ms"}, "redis.lease"},
		{"negative session timeout", validYAML, []string{"CAPIRELAY_KAFKA_SESSION_TIMEOUT=-1s"}, "kafka.session_timeout"},
		{"session timeout under KIP-848", validYAML, []string{"CAPIRELAY_KAFKA_GROUP_PROTOCOL=consumer", "CAPIRELAY_KAFKA_SESSION_TIMEOUT=2m"}, "kafka.session_timeout"},
		{"database on a cluster seed", validYAML, []string{"CAPIRELAY_REDIS_CLUSTER=true", "CAPIRELAY_REDIS_DB=2"}, "redis.db"},
		{"database on cluster nodes", validYAML, []string{"CAPIRELAY_REDIS_ADDRS=a:1,b:2", "CAPIRELAY_REDIS_DB=2"}, "redis.db"},
		{"event age above Meta's 7 days", validYAML, []string{"CAPIRELAY_PROCESSING_MAX_EVENT_AGE=200h"}, "processing.max_event_age"},
		{"fetch wait not a duration", validYAML, []string{"CAPIRELAY_KAFKA_FETCH_MAX_WAIT=0s"}, "kafka.fetch_max_wait"},
		{"fetch bytes too small", validYAML, []string{"CAPIRELAY_KAFKA_FETCH_MAX_BYTES=100"}, "kafka.fetch_max_bytes"},
		{"bad api version", validYAML, []string{"CAPIRELAY_CAPI_API_VERSION=25"}, "capi.api_version"},
		{"gc percent below off", validYAML, []string{"CAPIRELAY_RUNTIME_GC_PERCENT=-2"}, "runtime.gc_percent"},
		{"negative memory limit", validYAML, []string{"CAPIRELAY_RUNTIME_MEMORY_LIMIT_MIB=-1"}, "runtime.memory_limit_mib"},
		{"collection off without a limit", validYAML, []string{"CAPIRELAY_RUNTIME_GC_PERCENT=-1", "CAPIRELAY_RUNTIME_MEMORY_LIMIT_MIB=0"}, "runtime.gc_percent"},
		{"pixel without token", strings.Replace(validYAML, "access_token: from-file", "", 1) + "\n", []string{"CAPIRELAY_CAPI_PIXELS={\"999\": {\"test_event_code\": \"T1\"}}"}, "capi.pixels.999.access_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tt.yaml), tt.env)
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error does not name %s: %v", tt.field, err)
			}
		})
	}
}

// The Redis settings choose the client: a Cluster client for several addresses, or for one
// seed address with redis.cluster; a single-node client otherwise.
func TestRedisClientKind(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     []string
		cluster bool
	}{
		{"one address", nil, false},
		{"one seed address of a cluster", []string{"CAPIRELAY_REDIS_CLUSTER=true"}, true},
		{"several addresses", []string{"CAPIRELAY_REDIS_ADDRS=a:1,b:2,c:3"}, true},
		{"a database on a single node", []string{"CAPIRELAY_REDIS_DB=3"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, validYAML), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			c := newRedisClient(cfg.Redis)
			defer c.Close()
			_, isCluster := c.(*redis.ClusterClient)
			if _, isSingle := c.(*redis.Client); isCluster == isSingle || isCluster != tt.cluster {
				t.Fatalf("client %T for %+v, want a cluster client: %v", c, cfg.Redis, tt.cluster)
			}
		})
	}
}

func TestConfigErrorsNeverEchoSecrets(t *testing.T) {
	_, err := loadConfig(writeConfig(t, validYAML), []string{
		"CAPIRELAY_CAPI_ACCESS_TOKEN=EAAsecret-token-value",
		"CAPIRELAY_CAPI_MAX_BATCH=0",
	})
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), "EAAsecret-token-value") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := loadConfig("../../capirelay.example.yaml", []string{"CAPIRELAY_CAPI_ACCESS_TOKEN=x"})
	if err != nil {
		t.Fatalf("the README's example configuration does not load: %v", err)
	}
	if len(cfg.Kafka.Topics) == 0 {
		t.Fatal("example has no topics")
	}
}
