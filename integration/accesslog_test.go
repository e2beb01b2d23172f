package integration

// The access log (-access-log): one combined-format line per request from
// every worker, rotated as logrotate does (rename, then SIGUSR1 to the master).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// combinedLineRE is Apache's combined format as log collectors split it.
var combinedLineRE = regexp.MustCompile(`^(\S+) - (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$`)

// accessLines reads an access log file, failing on any line that is not in
// the combined format; a missing file has no lines.
func accessLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		if !combinedLineRE.MatchString(l) {
			t.Errorf("%s: not a combined-format line: %q", filepath.Base(path), l)
		}
		out = append(out, l)
	}
	return out
}

// TestAccessLogFileAndRotation runs two workers writing one -access-log
// file: one whole combined-format line per request, none lost or torn.
// Then it rotates the file as logrotate does (rename, SIGUSR1 to the
// master) and checks that the workers move to the new file and that every
// request is still logged exactly once across the two files.
func TestAccessLogFileAndRotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "access.log")
	p := startHello(t, "-workers", "2", "-access-log", path)
	p.waitReady(2)
	client := keepAliveClient()
	sent := 0
	send := func(n int) {
		sendN(t, client, p.app, n, 4, func(i int) string { return fmt.Sprintf("/users/%d", i) })
		sent += n
	}
	waitLines := func(paths []string, want int) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() error {
			n := 0
			for _, p := range paths {
				n += len(accessLines(t, p))
			}
			if n > want {
				t.Fatalf("%d access log lines, want %d", n, want)
			}
			if n < want {
				return fmt.Errorf("%d access log lines, want %d", n, want)
			}
			return nil
		})
	}

	send(200)
	waitLines([]string{path}, 200)
	seen := map[string]bool{}
	for _, l := range accessLines(t, path) {
		m := combinedLineRE.FindStringSubmatch(l)
		if m[1] != "127.0.0.1" || m[5] != "200" || m[8] != "Go-http-client/1.1" {
			t.Errorf("unexpected fields in %q", l)
		}
		seen[m[4]] = true
	}
	if len(seen) != 200 {
		t.Errorf("%d distinct request lines, want 200 (raw paths /users/0../users/199)", len(seen))
	}

	// Rotate: rename, then SIGUSR1 to the master, which forwards it.
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	// The workers reopen asynchronously: send small batches until one
	// batch lands entirely in the new file (both workers moved).
	testutil.Eventually(t, 10*time.Second, func() error {
		before := len(accessLines(t, rotated))
		send(20)
		waitLines([]string{path, rotated}, sent)
		if len(accessLines(t, rotated)) != before {
			return errors.New("the workers still write to the rotated file after SIGUSR1")
		}
		return nil
	})
	send(100)
	waitLines([]string{path, rotated}, sent)
	if n := len(accessLines(t, path)); n < 120 {
		t.Errorf("the new file has %d lines, want at least 120", n)
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

// lines returns the lines of a file.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestAccessLogIsReopenedOnUSR1AndPIDFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logPath, pidPath := filepath.Join(dir, "access.log"), filepath.Join(dir, "hello.pid")
	p := startHello(t, "-workers", "2", "-access-log", logPath, "-pidfile", pidPath)
	p.waitReady(2)
	if b, _ := os.ReadFile(pidPath); strings.TrimSpace(string(b)) != strconv.Itoa(p.cmd.Process.Pid) {
		t.Errorf("pidfile holds %q, want the master's pid %d", b, p.cmd.Process.Pid)
	}
	// Fresh connections, so that both workers log.
	sendN(t, freshConnClient(), p.app, 100, 4, func(int) string { return "/hello" })
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	// Both workers reopen, and no more than both (checked below).
	testutil.WaitUntil(10*time.Second, func() error {
		if n := strings.Count(p.log.String(), "access log reopened"); n < 2 {
			return fmt.Errorf("%d reopened", n)
		}
		return nil
	})
	if n := strings.Count(p.log.String(), "access log reopened"); n != 2 {
		t.Fatalf("%d workers reopened the access log after SIGUSR1, want 2", n)
	}
	sendN(t, freshConnClient(), p.app, 100, 4, func(int) string { return "/users/7" })
	old, cur := lines(t, logPath+".1"), lines(t, logPath)
	if len(old) != 100 || len(cur) != 100 {
		t.Errorf("rotated log has %d lines, new log %d: want 100 and 100", len(old), len(cur))
	}
	for _, l := range old {
		if !strings.Contains(l, `"GET /hello HTTP/1.1" 200 `) {
			t.Errorf("rotated log line %q", l)
			break
		}
	}
	for _, l := range cur {
		if !strings.Contains(l, `"GET /users/7 HTTP/1.1" 200 `) {
			t.Errorf("new log line %q", l)
			break
		}
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d", code)
	}
	if _, err := os.Stat(pidPath); err == nil {
		t.Error("pidfile left behind after a clean stop")
	}
}
