package prefork_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/herdhttp/herd/prefork"
)

func TestWritePIDFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hello.pid")
	if err := prefork.WritePIDFile(p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pidfile holds %q", b)
	}
	// Another live process's pidfile is refused...
	os.WriteFile(p, []byte(strconv.Itoa(os.Getppid())+"\n"), 0o644)
	if err := prefork.WritePIDFile(p); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a live process's pidfile: %v", err)
	}
	// ... and not removed as ours.
	prefork.RemovePIDFile(p)
	if _, err := os.Stat(p); err != nil {
		t.Error("RemovePIDFile removed another process's pidfile")
	}
	// A stale one (no such process) or garbage is replaced.
	for _, stale := range []string{"2147483646\n", "garbage"} {
		os.WriteFile(p, []byte(stale), 0o644)
		if err := prefork.WritePIDFile(p); err != nil {
			t.Errorf("stale pidfile %q: %v", stale, err)
		}
	}
	prefork.RemovePIDFile(p)
	if _, err := os.Stat(p); err == nil {
		t.Error("our pidfile was not removed")
	}
}
