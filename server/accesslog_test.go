package server

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLogFileReopensAfterRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	l, err := openLogFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte("one\n"))
	if reopened, err := l.Reopen(); reopened || err != nil {
		t.Fatalf("Reopen before any rotation: %v, %v; want no-op", reopened, err)
	}
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("two\n")) // still the rotated file, as with any logger before the signal
	if reopened, err := l.Reopen(); !reopened || err != nil {
		t.Fatalf("Reopen after rotation: %v, %v", reopened, err)
	}
	l.Write([]byte("three\n"))
	for file, want := range map[string]string{p + ".1": "one\ntwo\n", p: "three\n"} {
		b, _ := os.ReadFile(file)
		if string(b) != want {
			t.Errorf("%s = %q, want %q", filepath.Base(file), b, want)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != accessLogMode {
		t.Errorf("new log mode %v, want %v", fi.Mode().Perm(), os.FileMode(accessLogMode))
	}
}

// openWithin opens the access log in the background and fails the test if
// that does not return within a generous deadline (a FIFO blocks an open
// for writing).
func openWithin(t *testing.T, path string) (*logFile, error) {
	t.Helper()
	type result struct {
		l   *logFile
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := openLogFile(path)
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.l, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("opening %s hangs", filepath.Base(path))
		return nil, nil
	}
}

// A link, FIFO or hard link planted at the access log's path (by nobody,
// in a shared log directory) is refused, at start and on reopening after a
// rotation, and the file it points to gains nothing.
func TestAccessLogRefusesPlantedFiles(t *testing.T) {
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755) // let nobody reach it
	os.Chmod(base, 0o755)
	logs := filepath.Join(base, "logs")
	os.Mkdir(logs, 0o755)
	os.Chmod(logs, 0o777|os.ModeSticky)
	secret := filepath.Join(base, "secret")
	os.WriteFile(secret, []byte("root only\n"), 0o600)
	plant := func(script string) {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Dir = logs
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	plant("ln -s ../secret link.log && mkfifo fifo.log")
	if err := os.Link(secret, filepath.Join(logs, "hard.log")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"link.log": "symbolic link", "fifo.log": "fifo.log", "hard.log": "2 hard links"} {
		l, err := openWithin(t, filepath.Join(logs, name))
		if err == nil {
			l.Write([]byte("forged line\n"))
			l.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), "-access-log: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error about %q", name, err, want)
		}
	}
	// After a rotation, a link planted before the reopen is not followed.
	p := filepath.Join(logs, "access.log")
	l, err := openLogFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Rename(p, p+".1")
	plant("ln -s ../secret access.log")
	if reopened, err := l.Reopen(); reopened || err == nil {
		t.Errorf("Reopen onto a planted link: %v, %v; want an error", reopened, err)
	}
	l.Write([]byte("still the old file\n"))
	if b, _ := os.ReadFile(p + ".1"); string(b) != "still the old file\n" {
		t.Errorf("the rotated file holds %q", b)
	}
	if b, _ := os.ReadFile(secret); string(b) != "root only\n" {
		t.Errorf("the root-only file now holds %q", b)
	}
}
