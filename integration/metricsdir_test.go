package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// refused runs hello with args and checks that it exits with status 2 and
// one line of stderr containing want, having created nothing in dir.
func refused(t *testing.T, dir, want string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before, _ := os.ReadDir(dir)
	cmd := exec.CommandContext(ctx, helloBin, append([]string{"-workers", "2", "-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("exit status %d, want 2; stderr: %s", code, stderr.String())
	}
	msg := strings.TrimRight(stderr.String(), "\n")
	if strings.Contains(msg, "\n") || !strings.Contains(msg, want) {
		t.Errorf("stderr %q: want one line containing %q", msg, want)
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Errorf("%s had %d entries, now %d", dir, len(before), len(after))
	}
}

func TestUnsafeMetricsDirIsRefused(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	real := mk("real", 0o700)
	link := filepath.Join(base, "link")
	os.Symlink(real, link)
	t.Run("symlink", func(t *testing.T) { refused(t, real, "symbolic link", "-metrics-dir", link) })
	ww := mk("world-writable", 0o777)
	t.Run("world-writable", func(t *testing.T) { refused(t, ww, "sticky bit", "-metrics-dir", ww) })
	gw := mk("group-writable", 0o770)
	t.Run("group-writable", func(t *testing.T) { refused(t, gw, "sticky bit", "-metrics-dir", gw) })
	if os.Geteuid() == 0 {
		other := mk("other", 0o700)
		os.Chown(other, 65534, 65534)
		t.Run("other owner", func(t *testing.T) { refused(t, other, "owned by uid 65534", "-metrics-dir", other) })
	}
	for _, mode := range []string{"-workers=2", "-workers=0"} {
		t.Run("sticky world-writable is fine "+mode, func(t *testing.T) {
			sticky := mk("sticky"+mode, 0o777|os.ModeSticky)
			p := startHello(t, mode, "-metrics-dir", sticky)
			if mode == "-workers=2" {
				p.waitReady(2)
			} else {
				p.waitReady(1)
			}
			if !strings.HasPrefix(p.runDir(), sticky+"/herd-run-") {
				t.Errorf("run directory %s not in %s", p.runDir(), sticky)
			}
		})
	}
}

// checkPrivate checks that dir is a 0700 directory of ours whose entries
// are all 0600 regular files of ours.
func checkPrivate(t *testing.T, dir string) int {
	t.Helper()
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 || int(fi.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
		t.Errorf("run directory %s: %v uid %d, want a 0700 directory of uid %d", dir, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, os.Geteuid())
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // a file replaced while we look
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || int(fi.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
			t.Errorf("%s: %v uid %d, want a 0600 file of uid %d", e.Name(), fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, os.Geteuid())
		}
	}
	return len(ents)
}

// TestRunDirectoryIsPrivateAndOnlyItIsRemoved is not parallel: it sets the
// test process's umask to 0 while it starts two runs.
func TestRunDirectoryIsPrivateAndOnlyItIsRemoved(t *testing.T) {
	parent := t.TempDir()
	os.Chmod(parent, 0o777|os.ModeSticky) // as /dev/shm
	// What other runs left: a killed master's run directory, and a file.
	stale := filepath.Join(parent, "herd-run-stale")
	os.Mkdir(stale, 0o700)
	os.WriteFile(filepath.Join(stale, "counter_0a.db"), []byte("theirs"), 0o600)
	os.WriteFile(filepath.Join(parent, "notes"), []byte("theirs"), 0o644)

	for _, mode := range []string{"-workers=2", "-workers=0"} {
		t.Run(mode, func(t *testing.T) {
			// Two runs at once in the same directory, started with a
			// umask that would make files world-readable.
			old := syscall.Umask(0)
			a := startHello(t, mode, "-metrics-dir", parent)
			b := startHello(t, mode, "-metrics-dir", parent)
			syscall.Umask(old)
			n := 1
			if mode == "-workers=2" {
				n = 2
			}
			a.waitReady(n)
			b.waitReady(n)
			if a.runDir() == b.runDir() {
				t.Fatalf("two runs share %s", a.runDir())
			}
			sendN(t, keepAliveClient(), a.app, 100, 4, func(int) string { return "/hello" })
			sendN(t, keepAliveClient(), b.app, 100, 4, func(int) string { return "/hello" })
			if files := checkPrivate(t, a.runDir()); files < n*3 {
				t.Errorf("only %d files in %s", files, a.runDir())
			}
			checkPrivate(t, b.runDir())

			if code := a.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Errorf("exit status %d after SIGTERM", code)
			}
			if _, err := os.Lstat(a.runDir()); err == nil {
				t.Errorf("%s still exists after its master exited", a.runDir())
			}
			// The other run, and what others left, are untouched.
			checkPrivate(t, b.runDir())
			sendN(t, keepAliveClient(), b.app, 100, 4, func(int) string { return "/hello" })
			b.checkCountEquals(t, 200)
			if got, _ := os.ReadFile(filepath.Join(stale, "counter_0a.db")); string(got) != "theirs" {
				t.Error("a stale run directory was modified")
			}
			if _, err := os.Stat(filepath.Join(parent, "notes")); err != nil {
				t.Errorf("a file of someone else's was removed: %v", err)
			}
			// QUIT (immediate stop) also removes the run directory.
			if code := b.stop(syscall.SIGQUIT, 30*time.Second); code != 0 {
				t.Logf("exit status %d after SIGQUIT", code)
			}
			if _, err := os.Lstat(b.runDir()); err == nil {
				t.Errorf("%s still exists after SIGQUIT", b.runDir())
			}
		})
	}
	ents, _ := os.ReadDir(parent)
	if len(ents) != 2 {
		t.Errorf("%s holds %d entries, want the 2 others left", parent, len(ents))
	}
}
