package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of size bytes (a "size=" value) on a fresh
// directory and unmounts it at cleanup. It needs root, as CI has: without,
// the test fails.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Fatalf("mount a %s tmpfs (needs root): %v", size, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func TestTooLittleSpaceIsRefusedBeforeAnythingStarts(t *testing.T) {
	t.Parallel()
	small := mountTmpfs(t, "16k")
	err := Config{Workers: 2, MetricsDir: small, Bind: []string{"127.0.0.1:0"}, MetricsBind: "off"}.Validate()
	if err == nil {
		t.Fatal("a metrics directory with 16 KiB free was accepted for 2 workers")
	}
	msg := err.Error()
	for _, want := range []string{"-metrics-dir: ", small, "16384 bytes free", "2 workers need 786432", "choose another directory with -metrics-dir"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	err = Config{Workers: 0, MetricsDir: small, Bind: []string{"127.0.0.1:0"}, MetricsBind: "off"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "the process needs 262144") {
		t.Errorf("single process on 16 KiB: %v", err)
	}
	// Room for exactly what is needed passes.
	enough := mountTmpfs(t, fmt.Sprint(spaceNeeded(2)))
	if err := (Config{Workers: 2, MetricsDir: enough, Bind: []string{"127.0.0.1:0"}, MetricsBind: "off"}).Validate(); err != nil {
		t.Errorf("a metrics directory with room for 2 workers: %v", err)
	}
}

func TestFullRunDirectoryIsNamedInHealthzAndFailures(t *testing.T) {
	t.Parallel()
	dir := mountTmpfs(t, "256k")
	if note := spaceNote(dir); note != "" {
		t.Errorf("empty filesystem noted as full: %q", note)
	}
	boot := errors.New("prefork: worker failed to boot")
	if err := explainFailure(boot, dir); err != boot {
		t.Errorf("explainFailure with room: %v", err)
	}
	fill(t, dir)
	if note := spaceNote(dir); !strings.Contains(note, "metrics directory "+dir+" is full (0 bytes free)") {
		t.Errorf("full filesystem: note %q", note)
	}
	err := explainFailure(boot, dir)
	if !errors.Is(err, boot) || !strings.Contains(err.Error(), dir+" has 0 bytes free, a worker needs 262144") {
		t.Errorf("explainFailure on a full filesystem: %v", err)
	}
}

// fill writes a file into dir until its filesystem is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			return
		}
	}
}
