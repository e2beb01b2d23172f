package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// The exporter does not trust its directory: these tests plant what a
// broken or hostile writer could, and run the real binary.

const nobody = 65534

// needRoot fails the test that cannot act as root (chown): make test runs
// as root.
func needRoot(t *testing.T, what string, err error) {
	t.Helper()
	t.Fatalf("%s (needs root, as make test runs; euid %d): %v", what, os.Geteuid(), err)
}

// scrape fetches /metrics of e and flattens it.
func (e *exporter) scrape(t *testing.T) map[string]sample {
	t.Helper()
	resp, err := http.Get("http://" + e.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s\n%s", resp.Status, body)
	}
	return flatten(t, string(body))
}

// rss is the resident memory of process pid, from /proc.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// copyGolden copies a golden counter file written by client_python (10
// requests to /hello) to dir/name.
func copyGolden(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "mpdir", "counter_123.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const helloSample = `http_requests_total{code="200",method="GET",route="/hello"}`

// TestSparseFileCostsNothing: a 2 GiB file made by truncate (no block on
// disk) is skipped as sparse and counted; the exporter's memory does not
// grow (it used to map the whole file and read it in: 2 GiB).
func TestSparseFileCostsNothing(t *testing.T) {
	dir := t.TempDir()
	copyGolden(t, dir, "counter_1.db")
	fd, err := os.Create(filepath.Join(dir, "counter_2.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := fd.Truncate(2<<30 - 1); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	e := startExporter(t, nil, "-dir", dir, "-bind", "127.0.0.1:0")
	before := rss(t, e.cmd.Process.Pid)
	start := time.Now()
	got := e.scrape(t)
	took := time.Since(start)
	grew := rss(t, e.cmd.Process.Pid) - before
	if v := got[`herd_exporter_files_skipped{reason="sparse"}`].value; v != 1 {
		t.Errorf(`herd_exporter_files_skipped{reason="sparse"} = %v, want 1`, v)
	}
	if v := got["herd_metrics_files{}"].value; v != 1 {
		t.Errorf("herd_metrics_files = %v, want 1", v)
	}
	if v := got[helloSample].value; v == 0 {
		t.Errorf("the good file was not served")
	}
	if grew > 64<<20 {
		t.Errorf("a scrape of a directory with a 2 GiB sparse file grew the exporter by %d MiB", grew>>20)
	}
	testutil.EventuallyTrue(t, 10*time.Second, "a log line for the sparse file", func() bool {
		return strings.Contains(e.log.String(), "reason=sparse")
	})
	t.Logf("scrape with a 2 GiB sparse file: %s, exporter RSS %+d KiB", took.Round(time.Millisecond), grew>>10)
}

// exitLine runs the binary, which must exit with status 2 and one line
// containing want.
func exitLine(t *testing.T, want string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exporterBin, append(args, "-bind", "127.0.0.1:0")...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("%v: %v, want exit status 2\n%s", args, err, stderr.String())
		return
	}
	out := stderr.String()
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "herd-exporter: -dir: ") || !strings.Contains(out, want) {
		t.Errorf("%v: stderr %q, want one line \"herd-exporter: -dir: ...%s...\"", args, out, want)
	}
}

// TestUnsafeDirectoryIsRefused applies herd's rules for its metrics
// directory: writable by others without the sticky bit, a symbolic link, or
// owned by another user (unless -files-owner names that user) is refused
// before anything is served.
func TestUnsafeDirectoryIsRefused(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string { return testutil.Mkdir(t, base, name, mode) }
	exitLine(t, "writable by users other than its owner (mode 0777) and has no sticky bit", "-dir", mk("world", 0o777))
	exitLine(t, "writable by users other than its owner (mode 0770)", "-dir", mk("group", 0o770))
	link := filepath.Join(base, "link")
	os.Symlink(mk("target", 0o755), link)
	exitLine(t, "is a symbolic link", "-dir", link)

	sticky := mk("sticky", 0o777|os.ModeSticky)
	copyGolden(t, sticky, "counter_1.db")
	e := startExporter(t, nil, "-dir", sticky, "-bind", "127.0.0.1:0")
	if v := e.scrape(t)[helloSample].value; v != 10 {
		t.Errorf("sticky world-writable directory: %s = %v, want 10", helloSample, v)
	}

	theirs := mk("theirs", 0o755)
	copyGolden(t, theirs, "counter_1.db")
	for _, p := range []string{theirs, filepath.Join(theirs, "counter_1.db")} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			needRoot(t, "chown", err)
		}
	}
	exitLine(t, fmt.Sprintf("is owned by uid %d, not by this user", nobody), "-dir", theirs)
	e = startExporter(t, nil, "-dir", theirs, "-bind", "127.0.0.1:0", "-files-owner", "nobody")
	if v := e.scrape(t)[helloSample].value; v != 10 {
		t.Errorf("-files-owner nobody: %s = %v, want 10", helloSample, v)
	}

	// A directory that becomes unsafe while served is refused too.
	other := startExporter(t, nil, "-dir", mk("later", 0o755), "-bind", "127.0.0.1:0")
	os.Chmod(filepath.Join(base, "later"), 0o777)
	for _, path := range []string{"/metrics", "/healthz"} {
		resp, err := http.Get("http://" + other.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("%s of a directory made world-writable: %s, want an error", path, resp.Status)
		}
	}
}

// TestFileOfAnotherUserIsRefused: in a directory that others may add files
// to (sticky, mode 1777), a file owned by another user is skipped and
// counted, unless -files-owner names that user (by name or uid).
func TestFileOfAnotherUserIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777|os.ModeSticky)
	copyGolden(t, dir, "counter_1.db")
	injected := copyGolden(t, dir, "counter_2.db")
	if err := os.Chown(injected, nobody, nobody); err != nil {
		needRoot(t, "chown", err)
	}
	e := startExporter(t, nil, "-dir", dir, "-bind", "127.0.0.1:0")
	got := e.scrape(t)
	if v := got[helloSample].value; v != 10 {
		t.Errorf("%s = %v, want 10 (the file of nobody refused)", helloSample, v)
	}
	if v := got[`herd_exporter_files_skipped{reason="foreign-owner"}`].value; v != 1 {
		t.Errorf(`herd_exporter_files_skipped{reason="foreign-owner"} = %v, want 1`, v)
	}
	// The line is written before the response, but reaches the test
	// through a pipe: wait for it.
	testutil.EventuallyTrue(t, 10*time.Second, "a log line naming the refused file", func() bool {
		return strings.Contains(e.log.String(), "reason=foreign-owner") && strings.Contains(e.log.String(), "counter_2.db")
	})
	for _, user := range []string{"nobody", strconv.Itoa(nobody)} {
		e := startExporter(t, nil, "-dir", dir, "-bind", "127.0.0.1:0", "-files-owner", user)
		got := e.scrape(t)
		if v := got[helloSample].value; v != 20 {
			t.Errorf("-files-owner %s: %s = %v, want 20", user, helloSample, v)
		}
		if v := got[`herd_exporter_files_skipped{reason="foreign-owner"}`].value; v != 0 {
			t.Errorf("-files-owner %s: %v files refused", user, v)
		}
	}
	exitLine2 := func(want string, args ...string) {
		t.Helper()
		out, err := exec.Command(exporterBin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), want) {
			t.Errorf("%v: %v %q, want exit status 2 and %q", args, err, out, want)
		}
	}
	exitLine2(`-files-owner: no user "no-such-user-here"`, "-dir", dir, "-files-owner", "no-such-user-here")
}

// dialIdle opens a connection to addr and makes one request on it, keeping
// it alive.
func dialIdle(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz: %s", resp.Status)
	}
	return c, br
}

// closedByServer waits up to d for the server to close c: a read must end
// in EOF (or a reset), not in the deadline.
func closedByServer(t *testing.T, c net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s", d)
	}
	if err == nil {
		t.Fatal("the server sent bytes on an idle connection")
	}
}

// TestIdleConnectionIsClosed: a keep-alive connection that stays idle is
// closed after -idle-timeout (default 120 s, as herd's admin listener).
func TestIdleConnectionIsClosed(t *testing.T) {
	e := startExporter(t, nil, "-dir", t.TempDir(), "-bind", "127.0.0.1:0", "-idle-timeout", "1s")
	c, br := dialIdle(t, e.addr)
	start := time.Now()
	closedByServer(t, c, br, 20*time.Second)
	t.Logf("idle connection closed %s after its response (-idle-timeout 1s)", time.Since(start).Round(time.Millisecond))
	if c := testConfig(t, t.TempDir()); c.idleTimeout != 120*time.Second {
		t.Errorf("default -idle-timeout %s, want 120s", c.idleTimeout)
	}
}

// TestConnectionCap: past -max-connections, a new connection is closed at
// once; when one closes, a new one is served again.
func TestConnectionCap(t *testing.T) {
	e := startExporter(t, nil, "-dir", t.TempDir(), "-bind", "127.0.0.1:0", "-max-connections", "2")
	first, _ := dialIdle(t, e.addr)
	dialIdle(t, e.addr)
	over, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	closedByServer(t, over, bufio.NewReader(over), 10*time.Second)
	first.Close()
	testutil.EventuallyTrue(t, 10*time.Second, "a connection is served again after one closed", func() bool {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + e.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestSkippedFilesLogIsBounded: 20,000 bad files cost one log line per
// reason on the scrape that first sees them, and none on the next.
func TestSkippedFilesLogIsBounded(t *testing.T) {
	dir := t.TempDir()
	for i := range 20000 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("counter_%05d.db", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := startExporter(t, nil, "-dir", dir, "-bind", "127.0.0.1:0")
	startLog := len(e.log.String())
	got := e.scrape(t)
	for reason, want := range map[string]float64{"empty": 10000, "too-many-files": 10000} {
		if v := got[fmt.Sprintf("herd_exporter_files_skipped{reason=%q}", reason)].value; v != want {
			t.Errorf("herd_exporter_files_skipped{reason=%q} = %v, want %v", reason, v, want)
		}
	}
	if v := got["herd_metrics_files_skipped{}"].value; v != 20000 {
		t.Errorf("herd_metrics_files_skipped = %v, want 20000", v)
	}
	e.scrape(t)
	e.scrape(t)
	// Stop it: once it has exited, its whole log has been read.
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		t.Fatal("herd-exporter did not stop")
	}
	all := e.log.String()[startLog:]
	var skipLines []string
	for _, l := range strings.Split(all, "\n") {
		if strings.Contains(l, "skipped") {
			skipLines = append(skipLines, l)
		}
	}
	first := strings.Join(skipLines, "\n")
	lines := len(skipLines)
	if lines != 2 || !strings.Contains(first, "reason=empty files=10000 new=10000") || !strings.Contains(first, "reason=too-many-files files=10000 new=10000") {
		t.Errorf("three scrapes of 20,000 bad files logged %d lines about them (%d bytes in all), want the 2 of the first scrape:\n%.2000s", lines, len(all), all)
	}
}
