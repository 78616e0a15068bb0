package main

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Helm chart's default configuration and the compose file's environment must be
// configurations the binary accepts: a chart that crash-loops on start is a broken chart.

func TestHelmChartConfigLoads(t *testing.T) {
	b, err := os.ReadFile("../../deploy/helm/capirelay/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(values.Config)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "capirelay.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	// The chart injects the token from a Secret and the instance id from the pod name.
	if _, err := loadConfig(path, []string{"CAPIRELAY_CAPI_ACCESS_TOKEN=x", "CAPIRELAY_KAFKA_INSTANCE_ID=capirelay-0"}); err != nil {
		t.Fatalf("the chart's config does not load: %v", err)
	}
}

func TestComposeEnvironmentLoads(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	svc, ok := compose.Services["capirelay"]
	if !ok {
		t.Fatal("no capirelay service")
	}
	var env []string
	for k, v := range svc.Environment {
		env = append(env, k+"="+v)
	}
	cfg, err := loadConfig("", env)
	if err != nil {
		t.Fatalf("the compose environment does not load: %v", err)
	}
	if len(cfg.Kafka.Topics) != 2 || cfg.Kafka.Topics[1].Schema != "OfflineEvent" {
		t.Fatalf("topics from JSON env: %+v", cfg.Kafka.Topics)
	}
}
