package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdhttp/herd/internal/testutil"
)

func TestTooLittleSpaceIsRefusedBeforeAnythingStarts(t *testing.T) {
	t.Parallel()
	small := testutil.MountTmpfs(t, "16k", 0o755)
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
	enough := testutil.MountTmpfs(t, fmt.Sprint(spaceNeeded(2)), 0o755)
	if err := (Config{Workers: 2, MetricsDir: enough, Bind: []string{"127.0.0.1:0"}, MetricsBind: "off"}).Validate(); err != nil {
		t.Errorf("a metrics directory with room for 2 workers: %v", err)
	}
}

func TestFullRunDirectoryIsNamedInHealthzAndFailures(t *testing.T) {
	t.Parallel()
	dir := testutil.MountTmpfs(t, "256k", 0o755)
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
