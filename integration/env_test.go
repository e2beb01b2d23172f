package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runToExit runs hello with environ added to the test's environment and
// args, on loopback ports chosen by the kernel, and returns its exit status
// and stderr. It fails the test if hello still runs after 20 s, or left
// processes or files behind in metricsDir.
func runToExit(t *testing.T, environ []string, metricsDir string, args ...string) (int, string) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args = append([]string{"-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0", "-metrics-dir", metricsDir}, args...)
	cmd := exec.CommandContext(ctx, helloBin, args...)
	cmd.Env = append(os.Environ(), environ...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("still running after 20 s: %s", stderr.String())
	}
	if pids := helloChildren(t); len(pids) != 0 {
		t.Errorf("processes left running: %v", pids)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// checkOneLine checks that a refused start exited 2 with one line of stderr
// containing every string of want, and created nothing in dir.
func checkOneLine(t *testing.T, code int, stderr, dir string, want ...string) {
	t.Helper()
	if code != 2 {
		t.Errorf("exit status %d, want 2\nstderr: %s", code, stderr)
	}
	msg := strings.TrimRight(stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("stderr is not one line:\n%s", stderr)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("stderr %q does not say %q", msg, w)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%s not left empty: %d entries", dir, len(ents))
	}
}

// The worker count comes from -workers, else HERD_WORKERS, else
// WEB_CONCURRENCY, else GOMAXPROCS (which follows a container's CPU limit).
func TestWorkerCountFromTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		args    []string
		want    int
		fromEnv string // the from_env attribute of the configuration line
	}{
		{"WEB_CONCURRENCY", []string{"WEB_CONCURRENCY=3"}, nil, 3, "[WEB_CONCURRENCY]"},
		{"HERD_WORKERS", []string{"HERD_WORKERS=3"}, nil, 3, "[HERD_WORKERS]"},
		{"HERD_WORKERS over WEB_CONCURRENCY", []string{"WEB_CONCURRENCY=2", "HERD_WORKERS=3"}, nil, 3, "[HERD_WORKERS]"},
		{"-workers over HERD_WORKERS", []string{"HERD_WORKERS=3"}, []string{"-workers", "2"}, 2, ""},
		{"GOMAXPROCS", []string{"GOMAXPROCS=3", "HERD_WORKERS=", "WEB_CONCURRENCY="}, nil, 3, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startHelloEnv(t, tc.environ, tc.args...)
			p.waitReady(tc.want)
			line := p.waitLine(t, time.Second, "msg=configuration")
			if got := logField(line, "workers"); got != strconv.Itoa(tc.want) {
				t.Errorf("configuration line says workers=%s, want %d: %s", got, tc.want, line)
			}
			if got := logField(line, "from_env"); got != tc.fromEnv {
				t.Errorf("configuration line says from_env=%s, want %s: %s", got, tc.fromEnv, line)
			}
			if code := p.stop(unix.SIGTERM, 30*time.Second); code != 0 {
				t.Errorf("exit status %d after SIGTERM", code)
			}
		})
	}
}

func TestBadVariableExits2NamingIt(t *testing.T) {
	for _, tc := range []struct {
		environ, args []string
		want          string
	}{
		{[]string{"HERD_WORKERS=x"}, nil, "HERD_WORKERS"},
		{[]string{"WEB_CONCURRENCY=many"}, nil, "WEB_CONCURRENCY"},
		{[]string{"HERD_LISTENER_MODE=magic"}, []string{"-workers", "2"}, "HERD_LISTENER_MODE"},
		{[]string{"HERD_LOG_FORMAT=xml"}, []string{"-workers", "2"}, "HERD_LOG_FORMAT"},
		{[]string{"HERD_READ_TIMEOUT=soon"}, []string{"-workers", "2"}, "HERD_READ_TIMEOUT"},
		// The command line wins: the variable is never looked at.
		{[]string{"HERD_MAX_HEADER_BYTES=100"}, []string{"-max-header-bytes", "0"}, "invalid value \"0\" for flag -max-header-bytes"},
	} {
		t.Run(tc.environ[0], func(t *testing.T) {
			dir := t.TempDir()
			code, stderr := runToExit(t, tc.environ, dir, tc.args...)
			checkOneLine(t, code, stderr, dir, tc.want)
		})
	}
}
