package metrics_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/mmapstore"
)

// A file that cannot grow (here: MaxFileSize reached; on a full tmpfs: ENOSPC from fallocate)
// costs the new series, never the process: With returns a no-op handle, the error is logged
// and counted, existing series keep counting, and the scrape still works.
func TestFullFileDropsSeriesNotProcess(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	reg := metricstest.NewRegistryWith(t, metrics.Options{
		MaxFileSize: 64 << 10,
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	v := reg.MustNewCounterVec(metrics.CounterOpts{Name: "c", Help: "h"}, "k")
	first := v.With("first")
	long := strings.Repeat("x", 500)
	var err error
	n := 0
	for ; n < 1000; n++ {
		if _, err = v.Get(fmt.Sprintf("%s-%d", long, n)); err != nil {
			break
		}
	}
	if !errors.Is(err, mmapstore.ErrFileFull) || !strings.HasPrefix(err.Error(), "metrics: c: ") {
		t.Fatalf("after %d series: err = %v, want ErrFileFull", n, err)
	}
	dropped := v.With("one-too-many-" + long)
	dropped.Inc() // a no-op, no panic
	dropped.Add(2)
	first.Inc()

	if got := metricstest.Value(t, reg, "herd_metrics_write_errors_total"); got != 1 {
		t.Errorf("write errors = %v, want 1 (Get returns its error instead of counting it)", got)
	}
	if got := metricstest.Value(t, reg, "c_total", "k", "first"); got != 1 {
		t.Errorf("existing series = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "metrics: series dropped") || !strings.Contains(logs.String(), "reached its MaxSize") {
		t.Errorf("log: %q", logs.String())
	}
	// Other files (other types) are unaffected.
	reg.MustNewGauge(metrics.GaugeOpts{Name: "g", Help: "h", Mode: metrics.GaugeSum}).Set(3)
	if got := metricstest.Value(t, reg, "g"); got != 3 {
		t.Errorf("g = %v", got)
	}
}
