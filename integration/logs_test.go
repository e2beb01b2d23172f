package integration

// What herd writes on stderr, as log collectors read it.

import (
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJSONLogs runs a master with -log-format json: every line on stderr,
// the master's and the workers', must be one JSON object as log collectors
// expect, with time, level and msg.
func TestJSONLogs(t *testing.T) {
	t.Parallel()
	p := startRaw(t, exec.Command(helloBin, "-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0",
		"-metrics-dir", t.TempDir(), "-workers", "2", "-log-format", "json"))
	line := p.waitLog(t, "master started", 20*time.Second)
	admin := "http://" + logField(line, "admin")
	app := "http://" + logField(line, "bind")
	workerPIDs(t, admin)
	sendN(t, keepAliveClient(), app, 10, 2, func(int) string { return "/hello" })
	if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	lines := strings.Split(strings.TrimRight(p.log.String(), "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("only %d log lines", len(lines))
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("not a JSON line: %q", l)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("line without %q: %s", k, l)
			}
		}
	}
}
