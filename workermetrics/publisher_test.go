package workermetrics

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/herdhttp/herd/internal/testutil"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
)

// counterGatherer gathers one counter whose value *v is, and err.
func counterGatherer(v *float64, err *error) metrics.Gatherer {
	name, help, t := "jobs_total", "Jobs.", dto.MetricType_COUNTER
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		x := *v
		return []*dto.MetricFamily{{Name: &name, Help: &help, Type: &t, Metric: []*dto.Metric{{Counter: &dto.Counter{Value: &x}}}}}, *err
	})
}

// A full filesystem is an error of the snapshot file only: the previous
// file stays whole, fresh answers go on, and writing resumes once there
// is room.
func TestFullFilesystemKeepsTheLastSnapshot(t *testing.T) {
	mnt := testutil.MountTmpfs(t, "64k", 0o700)
	dir := filepath.Join(mnt, "export")
	v, gerr := 1.0, error(nil)
	var logs bytes.Buffer
	p, err := NewPublisher(dir, "0a", counterGatherer(&v, &gerr), PublisherOpts{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	filler := filepath.Join(mnt, "filler")
	f, _ := os.Create(filler)
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	v = 2
	if err := p.Flush(); err == nil {
		t.Fatal("Flush on a full filesystem: no error")
	}
	g := NewGatherer(dir, nil, GathererOpts{})
	if got := value(t, g, "jobs_total"); got != 2 {
		t.Errorf("fresh answer on a full filesystem: jobs_total = %v, want 2", got)
	}
	d := testDecoder()
	if _, fams, err := readSnapshotFile(filepath.Join(dir, p.inst+snapSuffix), d); err != nil || fams[0].vals[0] != 1 {
		t.Errorf("the previous snapshot file: %v, %v; want it whole, jobs_total 1", fams, err)
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, "*"+tmpSuffix)); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
	os.Remove(filler)
	if err := p.Flush(); err != nil {
		t.Fatalf("Flush with room again: %v", err)
	}
	if _, fams, err := readSnapshotFile(filepath.Join(dir, p.inst+snapSuffix), d); err != nil || fams[0].vals[0] != 2 {
		t.Errorf("the snapshot file once there is room: %v, %v; want jobs_total 2", fams, err)
	}
}

// A gatherer that fails with what it could gather (as client_golang's
// registries do) is published with that, and the error is logged once.
func TestGatherErrorsPublishWhatWasGathered(t *testing.T) {
	dir := t.TempDir()
	v, gerr := 5.0, errors.New("collector X failed")
	var logs bytes.Buffer
	p, err := NewPublisher(dir, "0a", counterGatherer(&v, &gerr), PublisherOpts{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	g := NewGatherer(dir, nil, GathererOpts{})
	for range 3 {
		if got := value(t, g, "jobs_total"); got != 5 {
			t.Errorf("jobs_total = %v, want 5", got)
		}
	}
	if n := strings.Count(logs.String(), "collector X failed"); n != 1 {
		t.Errorf("the error was logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestUnitMustEndTheName(t *testing.T) {
	v := 1.0
	for _, tc := range []struct {
		name, unit string
		typ        dto.MetricType
		kept       bool
	}{
		{"req_seconds", "seconds", dto.MetricType_GAUGE, true},
		{"sent_bytes_total", "bytes", dto.MetricType_COUNTER, true},
		{"req_seconds", "bytes", dto.MetricType_GAUGE, false},
		{"sent_total", "total", dto.MetricType_COUNTER, false},
	} {
		mf := &dto.MetricFamily{Name: new(tc.name), Help: new("H."), Type: tc.typ.Enum(), Unit: new(tc.unit),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}, Counter: &dto.Counter{Value: &v}}}}
		if tc.typ == dto.MetricType_GAUGE {
			mf.Metric[0].Counter = nil
		} else {
			mf.Metric[0].Gauge = nil
		}
		m := &merger{perWorker: DefaultPerWorker}
		fams := decoded(t, m, "0a", []*dto.MetricFamily{mf})
		if got := fams[0].mf.Unit != nil; got != tc.kept || fams[0].drop != noDrop {
			t.Errorf("%s with unit %s: unit kept %v, drop %v; want kept %v", tc.name, tc.unit, got, fams[0].drop, tc.kept)
		}
	}
}

// A snapshot whose families did not change since the file was written is
// not written again; one that did replaces the file.
func TestUnchangedSnapshotIsNotRewritten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "export")
	v, gerr := 1.0, error(nil)
	p, err := NewPublisher(dir, "0a", counterGatherer(&v, &gerr), PublisherOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	path := filepath.Join(dir, p.inst+snapSuffix)
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	before := inode()
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if inode() != before {
		t.Error("an unchanged snapshot replaced the file")
	}
	v = 2
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if inode() == before {
		t.Error("a changed snapshot did not replace the file")
	}
	_, fams, err := readSnapshotFile(path, testDecoder())
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 1 || fams[0].vals[0] != 2 {
		t.Errorf("file holds %+v, want jobs_total 2", fams)
	}
}
