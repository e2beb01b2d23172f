package integration

// promtool, Prometheus's own checker, on what herd ships and serves: the
// Prometheus configuration of examples/deploy and a master's /metrics.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
)

// promtool returns Debian's promtool, failing when it is missing.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (make deps)")
	}
	return p
}

func TestDeployPrometheusConfig(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(promtool(t), "check", "config", filepath.Join(deployDir, "prometheus", "prometheus.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

// TestPromtoolCheckMetrics lints a master's /metrics after traffic, with
// every metric family present, using promtool: it must have nothing to say.
func TestPromtoolCheckMetrics(t *testing.T) {
	t.Parallel()
	tool := promtool(t)
	p := startHello(t, "-workers", "2")
	p.waitReady(2)
	sendN(t, keepAliveClient(), p.app, 50, 2, func(i int) string { return fmt.Sprintf("/users/%d", i) })
	sendN(t, keepAliveClient(), p.app, 50, 2, func(int) string { return "/hello" })
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s %v", resp.Status, err)
	}
	if !bytes.Contains(body, []byte("http_request_duration_seconds_bucket")) {
		t.Fatalf("/metrics has no histogram yet:\n%s", body)
	}
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\n--- /metrics:\n%s", err, out, body)
	}
}
