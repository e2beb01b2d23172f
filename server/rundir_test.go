package server

import (
	"flag"
	"io"
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

func TestMetricsDirPolicy(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string { return testutil.Mkdir(t, base, name, mode) }
	private := mk("private", 0o700)
	shared := mk("shared", 0o755)
	sticky := mk("sticky", 0o777|os.ModeSticky)
	worldWritable := mk("ww", 0o777)
	groupWritable := mk("gw", 0o770)
	link := filepath.Join(base, "link")
	os.Symlink(private, link)
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)

	cases := []struct {
		dir  string
		want string // "" accepted, else a word of the error
	}{
		{private, ""},
		{shared, ""},
		{sticky, ""},
		{worldWritable, "sticky"},
		{groupWritable, "sticky"},
		{link, "symbolic link"},
		{file, "not a directory"},
		{filepath.Join(base, "missing"), "does not exist"},
	}
	if os.Geteuid() == 0 {
		other := mk("other", 0o755)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ dir, want string }{other, "owned by uid 65534"})
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.dir), func(t *testing.T) {
			t.Parallel()
			err := checkMetricsParent(tc.dir)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("accepted, want an error about %q", tc.want)
			case err != nil && (!strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "-metrics-dir: ")):
				t.Errorf("error %q does not start with -metrics-dir or mention %q", err, tc.want)
			}
		})
	}
}

func TestRunDirIsPrivate(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	os.Chmod(parent, 0o777|os.ModeSticky)
	dir, err := makeRunDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 || filepath.Dir(dir) != parent {
		t.Errorf("run dir %s: mode %v, want a 0700 directory in %s", dir, fi.Mode(), parent)
	}
	if _, err := makeRunDir(filepath.Join(parent, "nope")); err == nil {
		t.Error("a missing parent was accepted")
	}
}

// Every directory -metrics-dir is looked up through is checked, not only
// the last: whoever can rename entries of an ancestor can swap the whole
// tree below it.
func TestMetricsDirAncestorsAreChecked(t *testing.T) {
	base := t.TempDir()
	mk := func(path string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(base, path)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mk("ww/metrics", 0o755)
	os.Chmod(filepath.Join(base, "ww"), 0o777)
	mk("gw/a/b/metrics", 0o755)
	os.Chmod(filepath.Join(base, "gw"), 0o775)
	mk("sticky/metrics", 0o755)
	os.Chmod(filepath.Join(base, "sticky"), 0o777|os.ModeSticky)
	mk("safe/metrics", 0o700)
	os.Symlink(filepath.Join(base, "safe"), filepath.Join(base, "tosafe"))
	os.Symlink(filepath.Join(base, "ww"), filepath.Join(base, "toww"))
	os.Symlink("../safe", filepath.Join(base, "ww", "back")) // a link inside an unsafe directory
	os.Symlink("loop", filepath.Join(base, "loop"))

	cases := []struct {
		dir  string
		want string // "" accepted, else a word of the error
	}{
		{"sticky/metrics", ""},
		{"safe/metrics", ""},
		{"tosafe/metrics", ""},
		{"ww/metrics", "inside " + filepath.Join(base, "ww")},
		{"gw/a/b/metrics", "inside " + filepath.Join(base, "gw")},
		{"toww/metrics", "inside " + filepath.Join(base, "ww")},
		{"ww/back/metrics", "inside " + filepath.Join(base, "ww")},
		{"safe/../ww/metrics", "inside " + filepath.Join(base, "ww")},
		{"loop/metrics", "symbolic links"},
	}
	if os.Geteuid() == 0 {
		// A parent owned by nobody: nobody could rename -metrics-dir away
		// and put a directory of their own in its place.
		p := mk("theirs/metrics", 0o755)
		if err := os.Chown(filepath.Dir(p), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ dir, want string }{"theirs/metrics", "owned by uid 65534"})
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			err := checkMetricsParent(filepath.Join(base, tc.dir))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("accepted, want an error about %q", tc.want)
			case err != nil && (!strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "-metrics-dir: ")):
				t.Errorf("error %q does not start with -metrics-dir or mention %q", err, tc.want)
			}
		})
	}
	// A relative path is resolved from the working directory.
	t.Chdir(filepath.Join(base, "ww"))
	if err := checkMetricsParent("metrics"); err == nil {
		t.Error("relative path inside an unsafe directory accepted")
	}
}

// The attack the ancestor check stops, played by the user nobody: with a
// parent directory nobody owns, nobody can move -metrics-dir away and make
// a new one in its place, so the master must refuse it.
func TestMetricsDirWithAParentOwnedByNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to create a directory owned by nobody and act as nobody (make test runs as root)")
	}
	base, err := os.MkdirTemp("", "herd-ancestor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755) // nobody must be able to reach their directory
	parent := filepath.Join(base, "parent")
	dir := filepath.Join(parent, "metrics")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(parent, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := makeRunDir(dir); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("makeRunDir under a parent owned by nobody: %v, want a refusal", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("a refused -metrics-dir got entries: %v", entries)
	}
	// And the refusal matters: nobody can swap the directory.
	swap := exec.Command("/bin/sh", "-c", "mv metrics mine && mkdir metrics")
	swap.Dir = parent
	swap.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := swap.CombinedOutput(); err != nil {
		t.Fatalf("nobody could not swap the directory (so this test shows nothing): %v\n%s", err, out)
	}
}

// mainHelperEnv holds the tab-separated arguments with which
// TestHerdMainHelperProcess runs Main.
const mainHelperEnv = "HERD_TEST_MAIN_ARGS"

// TestHerdMainHelperProcess is not a test: started by herdMain with
// mainHelperEnv set, the test binary is a herd program (master, and
// re-executed by it, its workers) serving a trivial app.
func TestHerdMainHelperProcess(t *testing.T) {
	args, ok := os.LookupEnv(mainHelperEnv)
	if !ok {
		return // not run as the helper
	}
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("herd-test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	os.Exit(Main(&cfg, fs, strings.Split(args, "\t"), func(*Worker) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }), nil
	}))
}

// herdProc is a herd program started by herdMain.
type herdProc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan struct{}
}

// herdMain starts the test binary as a herd program with args; it is
// killed at the end of the test if still running.
func herdMain(t *testing.T, args ...string) *herdProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHerdMainHelperProcess$")
	cmd.Env = append(os.Environ(), mainHelperEnv+"="+strings.Join(args, "\t"))
	p := &herdProc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// exitCode waits up to d for the program to exit and returns its status,
// or -1 if it is still running.
func (p *herdProc) exitCode(d time.Duration) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return -1
	}
}

// A FIFO planted at the pidfile path (by nobody, in a shared directory)
// makes the master refuse at once with status 2 and one line, leaving no
// run directory behind; before, the master blocked opening it, admin port
// open and no worker started.
func TestMasterRefusesAFIFOPidfileAtOnce(t *testing.T) {
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755) // let nobody reach it
	shared := filepath.Join(base, "shared")
	os.Mkdir(shared, 0o755)
	os.Chmod(shared, 0o777|os.ModeSticky)
	fifo := filepath.Join(shared, "herd.pid")
	if os.Geteuid() == 0 {
		mkfifo := exec.Command("mkfifo", fifo)
		mkfifo.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := mkfifo.CombinedOutput(); err != nil {
			t.Fatalf("mkfifo as nobody: %v\n%s", err, out)
		}
	} else if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	metricsDir := filepath.Join(base, "metrics")
	os.Mkdir(metricsDir, 0o700)
	p := herdMain(t, "-workers", "1", "-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0",
		"-metrics-dir", metricsDir, "-pidfile", fifo)
	code := p.exitCode(30 * time.Second)
	stderr := strings.TrimSpace(p.stderr.String())
	if code != 2 || strings.Count(stderr, "\n") != 0 || !strings.Contains(stderr, "not a regular file") {
		t.Errorf("exit status %d (-1: still running after 30 s), stderr:\n%s\nwant 2 and one line about the FIFO", code, stderr)
	}
	if ents, _ := os.ReadDir(metricsDir); len(ents) != 0 {
		t.Errorf("left behind in -metrics-dir: %v", ents)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("the planted FIFO was changed: %v %v", fi, err)
	}
}

// The running master holds its pidfile locked: a second master with the
// same pidfile exits 2 at once, even when the file's content says nothing
// useful.
func TestSecondMasterWithTheSamePidfileExits2(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "herd.pid")
	args := []string{"-workers", "1", "-bind", "127.0.0.1:0", "-metrics-bind", "off", "-metrics-dir", dir, "-pidfile", pidfile}
	first := herdMain(t, args...)
	want := strconv.Itoa(first.cmd.Process.Pid) + "\n"
	if !testutil.Until(30*time.Second, func() bool { b, _ := os.ReadFile(pidfile); return string(b) == want }) {
		t.Fatalf("the first master never wrote its pidfile\n%s", first.stderr.String())
	}
	// Lose the content, keep the file (and its lock).
	f, err := os.OpenFile(pidfile, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n")
	f.Close()
	second := herdMain(t, args...)
	code := second.exitCode(30 * time.Second)
	if stderr := strings.TrimSpace(second.stderr.String()); code != 2 || !strings.Contains(stderr, "already running") {
		t.Errorf("second master: exit status %d (-1: still running after 30 s), stderr:\n%s", code, stderr)
	}
	first.cmd.Process.Signal(syscall.SIGTERM)
	if code := first.exitCode(30 * time.Second); code != 0 {
		t.Errorf("first master: exit status %d after SIGTERM\n%s", code, first.stderr.String())
	}
	if _, err := os.Stat(pidfile); err == nil {
		t.Error("pidfile left behind by the first master")
	}
}
