package integration

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helloChildren lists the processes running helloBin whose parent is this
// test process. The test process is made a child subreaper, so a worker
// orphaned by a master that exited is re-parented here and found.
func helloChildren(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	me := os.Getpid()
	for _, e := range ents {
		pid := 0
		for _, c := range e.Name() {
			if c < '0' || c > '9' {
				pid = -1
				break
			}
			pid = pid*10 + int(c-'0')
		}
		if pid <= 0 || parentPID(pid) != me || !alive(pid) {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == helloBin {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestBadInputExits2WithOneLine is not parallel: it makes the test process a
// child subreaper and counts every bin/hello that is its child.
func TestBadInputExits2WithOneLine(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, []byte("x"), 0o600)

	cases := []struct {
		name string
		args []string
		want string // a word the one line must contain
	}{
		{"negative workers", []string{"-workers", "-1"}, "workers"},
		{"non-numeric workers", []string{"-workers", "two"}, "workers"},
		{"unparsable bind", []string{"-bind", "nonsense"}, "bind"},
		{"bad port", []string{"-bind", "127.0.0.1:99999"}, "bind"},
		{"port in use", []string{"-bind", busy.Addr().String()}, "address already in use"},
		{"admin port in use", []string{"-metrics-bind", busy.Addr().String()}, "address already in use"},
		{"port in use single", []string{"-workers", "0", "-bind", busy.Addr().String()}, "address already in use"},
		{"missing metrics dir", []string{"-metrics-dir", "/nonexistent/herd"}, "metrics-dir"},
		{"metrics dir is a file", []string{"-metrics-dir", notDir}, "metrics-dir"},
		{"bad listener mode", []string{"-listener-mode", "magic"}, "listener-mode"},
		{"unknown flag", []string{"-frobnicate"}, "frobnicate"},
		{"stray argument", []string{"serve"}, "serve"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			args := append([]string{"-workers", "2", "-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0", "-metrics-dir", parent}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, helloBin, args...)
			var stderr, stdout bytes.Buffer
			cmd.Stderr, cmd.Stdout = &stderr, &stdout
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after 10 s: %s", stderr.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Errorf("exit status %d, want 2 (err %v)\nstderr: %s", code, err, stderr.String())
			}
			msg := strings.TrimRight(stderr.String(), "\n")
			if msg == "" || strings.Contains(msg, "\n") {
				t.Errorf("stderr is not one line:\n%s", stderr.String())
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q does not name the problem (%q)", msg, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty: %q", stdout.String())
			}
			if pids := helloChildren(t); len(pids) != 0 {
				t.Errorf("processes left running: %v", pids)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("metrics dir not left empty: %d entries", len(ents))
			}
		})
	}
}
