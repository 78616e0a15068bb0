package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// renderedChart is what `helm template` made of the chart: its objects, by kind.
type renderedChart map[string][]kubeObject

// kubeObject holds the fields of the chart's objects that the tests read.
type kubeObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		ClusterIP   string `yaml:"clusterIP"`
		ServiceName string `yaml:"serviceName"`
		Template    struct {
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Args []string `yaml:"args"`
					Env  []struct {
						Name      string `yaml:"name"`
						ValueFrom struct {
							FieldRef struct {
								FieldPath string `yaml:"fieldPath"`
							} `yaml:"fieldRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name      string `yaml:"name"`
					ConfigMap struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// helmTemplate renders the chart with `helm template` (HELM, else helm on PATH; scripts/test.sh
// installs it) and the given --set values.
func helmTemplate(t *testing.T, set ...string) renderedChart {
	t.Helper()
	helm, err := exec.LookPath("helm")
	if os.Getenv("HELM") != "" || err != nil {
		helm = serviceEnv(t, "HELM")
	}
	args := []string{"template", "t", "../../deploy/helm/capirelay"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	chart := renderedChart{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o kubeObject
		if err := dec.Decode(&o); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("helm's output: %v", err)
		}
		if o.Kind != "" {
			chart[o.Kind] = append(chart[o.Kind], o)
		}
	}
	return chart
}

// The chart as Kubernetes gets it: its configuration loads, the pods mount it where the
// command line reads it, the grace period outlasts the drain, and static membership comes
// with the stable pod names it needs. With a Deployment, each restarted pod would join
// under a new name, and its old self's partitions would wait out the session timeout.
func TestHelmChartRenders(t *testing.T) {
	for _, static := range []bool{true, false} {
		t.Run(fmt.Sprintf("staticMembership=%v", static), func(t *testing.T) {
			chart := helmTemplate(t, fmt.Sprintf("staticMembership=%v", static))
			wantKind, otherKind := "Deployment", "StatefulSet"
			if static {
				wantKind, otherKind = otherKind, wantKind
			}
			if len(chart[wantKind]) != 1 || len(chart[otherKind]) != 0 {
				t.Fatalf("%d %s and %d %s; want one %s", len(chart[wantKind]), wantKind, len(chart[otherKind]), otherKind, wantKind)
			}
			w := chart[wantKind][0]
			if len(chart["ConfigMap"]) != 1 {
				t.Fatalf("%d ConfigMaps, want 1", len(chart["ConfigMap"]))
			}
			cm := chart["ConfigMap"][0]

			pod := w.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			instanceFromPodName := false
			for _, e := range c.Env {
				if e.Name == "CAPIRELAY_KAFKA_INSTANCE_ID" && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
					instanceFromPodName = true
				}
			}
			if instanceFromPodName != static {
				t.Errorf("instance id from the pod name: %v, want %v", instanceFromPodName, static)
			}
			if static {
				found := false
				for _, svc := range chart["Service"] {
					found = found || (svc.Metadata.Name == w.Spec.ServiceName && svc.Spec.ClusterIP == "None")
				}
				if !found {
					t.Errorf("the StatefulSet's serviceName %q names no headless Service", w.Spec.ServiceName)
				}
			}

			// The command line's --config is the ConfigMap's file, where the pod mounts it.
			var configPath string
			for i, a := range c.Args {
				if a == "--config" && i+1 < len(c.Args) {
					configPath = c.Args[i+1]
				}
			}
			mounted := false
			for _, vm := range c.VolumeMounts {
				for _, v := range pod.Volumes {
					if v.Name == vm.Name && v.ConfigMap.Name == cm.Metadata.Name {
						for file := range cm.Data {
							mounted = mounted || path.Join(vm.MountPath, file) == configPath
						}
					}
				}
			}
			if !mounted {
				t.Fatalf("--config %q is not a file of ConfigMap %s mounted in the pod", configPath, cm.Metadata.Name)
			}

			p := filepath.Join(t.TempDir(), "capirelay.yaml")
			if err := os.WriteFile(p, []byte(cm.Data[path.Base(configPath)]), 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"CAPIRELAY_CAPI_ACCESS_TOKEN=x"}
			if static {
				env = append(env, "CAPIRELAY_KAFKA_INSTANCE_ID=t-capirelay-0")
			}
			cfg, err := loadConfig(p, env)
			if err != nil {
				t.Fatalf("the rendered configuration does not load: %v", err)
			}
			if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= cfg.ShutdownTimeout {
				t.Errorf("terminationGracePeriodSeconds %s does not outlast shutdown_timeout %s: the kubelet would kill the drain", grace, cfg.ShutdownTimeout)
			}
		})
	}
}
