package metrics_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// The merge cache keeps, per file and entry position, the series each entry adds to. A file
// replaced by another of the same size at the same path (the same worker slot's file id),
// whose entries sit at the same positions but hold other keys, must be merged by its own
// keys, by a gatherer that merged the old file before.
func TestMergeCacheFileReplacedSameSizeSameSlot(t *testing.T) {
	t.Parallel()
	dir, other := t.TempDir(), t.TempDir()
	write := func(dir string, first, second string, v1, v2 float64) string {
		r, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: "0a"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Unmap()
		c := r.MustNewCounterVec(metrics.CounterOpts{Name: "c", Help: "h"}, "route")
		c.With(first).Add(v1)
		c.With(second).Add(v2)
		g := r.MustNewGaugeVec(metrics.GaugeOpts{Name: "g", Help: "h", Mode: metrics.GaugeAll}, "route")
		g.With(first).Set(v1)
		g.With(second).Set(v2)
		return dir
	}
	write(dir, "/a", "/b", 1, 2)
	master := metrics.NewDirGatherer(dir, metrics.GathererOpts{})
	defer master.Close()
	const head = "# HELP c_total h\n# TYPE c_total counter\n"
	const ghead = "# HELP g h\n# TYPE g gauge\n"
	for range 2 {
		metricstest.ExpectText(t, master, head+"c_total{route=\"/a\"} 1\nc_total{route=\"/b\"} 2\n"+
			ghead+"g{pid=\"0a\",route=\"/a\"} 1\ng{pid=\"0a\",route=\"/b\"} 2\n", "c_total", "g")
	}
	// The successor's files: the same keys, swapped, so every position holds another key.
	write(other, "/b", "/a", 10, 20)
	for _, name := range []string{"counter_0a.db", "gauge_all_0a.db"} {
		oldSt, err1 := os.Stat(filepath.Join(dir, name))
		newSt, err2 := os.Stat(filepath.Join(other, name))
		if err1 != nil || err2 != nil || oldSt.Size() != newSt.Size() {
			t.Fatalf("%s: sizes %v, %v (%v, %v): the test needs equal sizes", name, oldSt, newSt, err1, err2)
		}
		if err := os.Rename(filepath.Join(other, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		metricstest.ExpectText(t, master, head+"c_total{route=\"/a\"} 20\nc_total{route=\"/b\"} 10\n"+
			ghead+"g{pid=\"0a\",route=\"/a\"} 20\ng{pid=\"0a\",route=\"/b\"} 10\n", "c_total", "g")
	}
}
