package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestKafkaStartOrReuseLeavesARunningBroker runs scripts/lib.sh's kafka_start_or_reuse,
// which bench.sh and test.sh call, on a state directory whose broker is running. It must
// use that broker and must not mark it as its own: bench.sh once took kafka-local.sh's
// refusal to start a second broker for its own failure, exited, and its cleanup stopped
// the broker it had not started.
func TestKafkaStartOrReuseLeavesARunningBroker(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	// kafka-local.sh knows a running broker by the live PID in its state directory, so any
	// live process stands in for one here.
	broker := exec.Command("sleep", "60")
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = broker.Process.Kill()
		_ = broker.Wait()
	})
	const addr = "127.0.0.1:19092"
	for name, content := range map[string]string{
		"kafka.pid": strconv.Itoa(broker.Process.Pid) + "\n",
		"brokers":   addr + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	script := `set -euo pipefail; . scripts/lib.sh; kafka_started=""; kafka_start_or_reuse; echo "brokers=$KAFKA_BROKERS started=$kafka_started"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "KAFKA_LOCAL_DIR="+dir)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("kafka_start_or_reuse with a broker running: %v\n%s%s", err, out, stderr)
	}
	if got, want := strings.TrimSpace(string(out)), "brokers="+addr+" started="; got != want {
		t.Errorf("got %q, want %q: the running broker used, and not the caller's to stop", got, want)
	}
	if err := broker.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the running broker was stopped: %v", err)
	}
}
