package prefork_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/prefork"
)

func TestWritePIDFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hello.pid")
	pf, err := prefork.WritePIDFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pidfile holds %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("pidfile mode %v, want 0644", fi.Mode())
	}
	// While it is held, nobody else takes it, whatever it says.
	if _, err := prefork.WritePIDFile(p); err == nil || !strings.Contains(err.Error(), "already running as pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("a held pidfile: %v", err)
	}
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0) // same file, lock kept
	f.WriteString("garbage\n")
	f.Close()
	if _, err := prefork.WritePIDFile(p); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a held pidfile holding garbage: %v", err)
	}
	pf.Remove()
	if _, err := os.Stat(p); err == nil {
		t.Error("our pidfile was not removed")
	}

	// Another live process's (unlocked) pidfile is refused...
	os.WriteFile(p, []byte(strconv.Itoa(os.Getppid())+"\n"), 0o644)
	if _, err := prefork.WritePIDFile(p); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a live process's pidfile: %v", err)
	}
	// ... and not removed as ours.
	(*prefork.PIDFile)(nil).Remove()
	if _, err := os.Stat(p); err != nil {
		t.Error("the other process's pidfile is gone")
	}
	// A stale one (no such process) or garbage is replaced.
	for _, stale := range []string{"2147483646\n", "garbage"} {
		os.WriteFile(p, []byte(stale), 0o644)
		pf, err := prefork.WritePIDFile(p)
		if err != nil {
			t.Errorf("stale pidfile %q: %v", stale, err)
			continue
		}
		pf.Remove()
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 0 {
		t.Errorf("files left behind: %v", ents)
	}
}

// writeWithin runs WritePIDFile in the background and fails the test if it
// does not return within a generous deadline (a FIFO would block an open
// or read forever).
func writeWithin(t *testing.T, path string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		pf, err := prefork.WritePIDFile(path)
		pf.Remove()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("WritePIDFile(%s) hangs", filepath.Base(path))
		return nil
	}
}

// asNobody runs a shell command as the user nobody (the test runs as root).
func asNobody(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %s: %v\n%s", script, err, out)
	}
}

// What another user can plant at the pidfile path in a shared (sticky,
// world-writable) directory is refused at once and left alone: never
// waited on, written through or replaced.
func TestPIDFilePlantedByAnotherUserIsRefused(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // let nobody reach it
	os.Chmod(dir, 0o777|os.ModeSticky)
	target := filepath.Join(dir, "root-only")
	os.WriteFile(target, []byte("precious\n"), 0o600)
	plant := map[string]string{ // name -> shell command run in dir
		"fifo.pid":    "mkfifo fifo.pid",
		"link.pid":    "ln -s root-only link.pid",
		"dir.pid":     "mkdir dir.pid",
		"theirs.pid":  "echo 2147483646 > theirs.pid",
		"devnull.pid": "ln -s /dev/null devnull.pid",
	}
	want := map[string]string{
		"fifo.pid":    "not a regular file (a FIFO)",
		"link.pid":    "symbolic link",
		"dir.pid":     "not a regular file (a directory)",
		"theirs.pid":  "owned by uid",
		"devnull.pid": "symbolic link",
	}
	root := os.Geteuid() == 0
	for name, script := range plant {
		if root {
			asNobody(t, dir, script)
		} else if name != "theirs.pid" { // only root can play another user
			cmd := exec.Command("/bin/sh", "-c", script)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", script, err, out)
			}
		} else {
			continue
		}
		p := filepath.Join(dir, name)
		before, _ := os.Lstat(p)
		err := writeWithin(t, p)
		if err == nil || !strings.Contains(err.Error(), want[name]) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", name, err, want[name])
		}
		if after, err := os.Lstat(p); err != nil || after.Mode() != before.Mode() || after.ModTime() != before.ModTime() {
			t.Errorf("%s was changed or removed", name)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("the file a planted link points to now holds %q", b)
	}
	// A master refuses the FIFO when it is created, before anything starts.
	done := make(chan error, 1)
	go func() {
		_, err := prefork.NewMaster(prefork.Config{Workers: 1, Addrs: []string{"127.0.0.1:0"}, PIDFile: filepath.Join(dir, "fifo.pid")})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("NewMaster with a FIFO pidfile: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NewMaster with a FIFO pidfile hangs")
	}
}

func TestPIDFileDirectoryMustNotBeWritableByOthers(t *testing.T) {
	base := t.TempDir()
	for name, mode := range map[string]os.FileMode{"ww": 0o777, "gw": 0o770, "sticky": 0o777 | os.ModeSticky, "private": 0o755} {
		d := filepath.Join(base, name)
		os.Mkdir(d, 0o700)
		os.Chmod(d, mode)
		err := writeWithin(t, filepath.Join(d, "x.pid"))
		if refuse := name == "ww" || name == "gw"; refuse != (err != nil) || (refuse && !strings.Contains(err.Error(), "writable by other users")) {
			t.Errorf("pidfile directory of mode %v: %v", mode, err)
		}
	}
	if os.Geteuid() == 0 {
		d := filepath.Join(base, "nobodys")
		os.Mkdir(d, 0o755)
		os.Chown(d, 65534, 65534)
		if err := writeWithin(t, filepath.Join(d, "x.pid")); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("pidfile directory owned by nobody: %v", err)
		}
	}
}

func ExampleWritePIDFile() {
	pf, err := prefork.WritePIDFile(filepath.Join(os.TempDir(), "example.pid"))
	if err != nil {
		// Already running, or the path is unsafe: one line saying which.
		return
	}
	defer pf.Remove()
	// ... serve ...
}
