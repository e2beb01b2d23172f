package metrics_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/mmapstore"
)

func TestRegistrationErrors(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	reg.MustNewCounterVec(metrics.CounterOpts{Name: "requests_total", Help: "Requests."}, "code")
	reg.MustNewHistogramVec(metrics.HistogramOpts{Name: "lat", Help: "Latency."}, "route")
	legacy := metricstest.NewRegistryWith(t, metrics.Options{Layout: mmapstore.Legacy})

	cases := []struct {
		name string
		reg  func() error
		want string
	}{
		{"empty name", func() error { _, err := reg.NewCounterVec(metrics.CounterOpts{}); return err }, "empty metric name"},
		{"invalid name", func() error { _, err := reg.NewGaugeVec(metrics.GaugeOpts{Name: "a-b"}); return err }, `invalid metric name "a-b"`},
		{"utf-8 name", func() error { _, err := reg.NewGaugeVec(metrics.GaugeOpts{Name: "café"}); return err }, `invalid metric name "café"`},
		{"invalid label", func() error { _, err := reg.NewCounterVec(metrics.CounterOpts{Name: "x"}, "a:b"); return err }, `invalid label name "a:b"`},
		{"reserved __", func() error { _, err := reg.NewCounterVec(metrics.CounterOpts{Name: "x"}, "__x"); return err }, `"__x" is reserved`},
		{"duplicate label", func() error { _, err := reg.NewCounterVec(metrics.CounterOpts{Name: "x"}, "a", "a"); return err }, `duplicate label name "a"`},
		{"const label clash", func() error {
			_, err := reg.NewCounterVec(metrics.CounterOpts{Name: "x", ConstLabels: map[string]string{"a": "1"}}, "a")
			return err
		}, `duplicate label name "a"`},
		{"histogram le", func() error { _, err := reg.NewHistogramVec(metrics.HistogramOpts{Name: "x"}, "le"); return err }, `"le" is reserved`},
		{"summary quantile", func() error { _, err := reg.NewSummaryVec(metrics.SummaryOpts{Name: "x"}, "quantile"); return err }, `"quantile" is reserved`},
		{"gauge pid", func() error { _, err := reg.NewGaugeVec(metrics.GaugeOpts{Name: "x"}, "pid"); return err }, `"pid" is reserved`},
		{"gauge mode", func() error { _, err := reg.NewGaugeVec(metrics.GaugeOpts{Name: "x", Mode: "median"}); return err }, `unknown gauge mode "median"`},
		{"mostrecent on legacy", func() error {
			_, err := legacy.NewGaugeVec(metrics.GaugeOpts{Name: "x", Mode: metrics.GaugeLiveMostRecent})
			return err
		}, "needs timestamps"},
		{"buckets unsorted", func() error {
			_, err := reg.NewHistogramVec(metrics.HistogramOpts{Name: "x", Buckets: []float64{1, 0.5}})
			return err
		}, "strictly increasing"},
		{"bucket NaN", func() error {
			_, err := reg.NewHistogramVec(metrics.HistogramOpts{Name: "x", Buckets: []float64{math.NaN()}})
			return err
		}, "invalid bucket bound"},
		{"other type", func() error {
			_, err := reg.NewGaugeVec(metrics.GaugeOpts{Name: "requests", Help: "Requests."}, "code")
			return err
		},
			`"requests" is already registered as counter "requests_total"`},
		{"other help", func() error {
			_, err := reg.NewCounterVec(metrics.CounterOpts{Name: "requests_total", Help: "Other."}, "code")
			return err
		}, `with help "Requests."`},
		{"other labels", func() error {
			_, err := reg.NewCounterVec(metrics.CounterOpts{Name: "requests", Help: "Requests."}, "code", "method")
			return err
		}, `labels ["code"]`},
		{"collides with histogram sample", func() error { _, err := reg.NewGaugeVec(metrics.GaugeOpts{Name: "lat_count"}); return err },
			`name "lat_count" collides with the already registered histogram "lat"`},
		{"collides with counter sample", func() error { _, err := reg.NewGaugeVec(metrics.GaugeOpts{Name: "requests_total"}); return err },
			`name "requests_total" collides`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.reg()
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.HasPrefix(err.Error(), "metrics: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want the prefix \"metrics: \" and %q", err, c.want)
			}
		})
	}
}

func TestDuplicateRegistration(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	opts := metrics.CounterOpts{Name: "requests_total", Help: "Requests."}
	first := reg.MustNewCounterVec(opts, "code")
	_, err := reg.NewCounterVec(opts, "code")
	var are *metrics.AlreadyRegisteredError
	if !errors.As(err, &are) || are.Existing != first {
		t.Fatalf("err = %v, want *AlreadyRegisteredError with the first vector", err)
	}
	are.Existing.(*metrics.CounterVec).With("200").Inc()
	if got := metricstest.Value(t, reg, "requests_total", "code", "200"); got != 1 {
		t.Errorf("got %v", got)
	}
	defer func() {
		if p := recover(); p == nil || !strings.HasPrefix(p.(error).Error(), "metrics: duplicate registration") {
			t.Errorf("Must* panic = %v", p)
		}
	}()
	reg.MustNewCounterVec(opts, "code")
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	for _, o := range []metrics.Options{
		{ID: "1_a"}, {ID: "../x"}, {Dir: filepath.Join(t.TempDir(), "missing")}, {Layout: 7},
	} {
		if r, err := metrics.NewRegistry(o); err == nil || !strings.HasPrefix(err.Error(), "metrics: ") {
			t.Errorf("%+v: err = %v", o, err)
			if r != nil {
				r.Close()
			}
		}
	}
	// The zero value works: a private directory, removed by Close.
	r, err := metrics.NewRegistry(metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := r.Dir()
	if r.ID() != metrics.DefaultID {
		t.Errorf("id %q", r.ID())
	}
	r.MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"}).Inc()
	if got := metricstest.Value(t, r, "c_total"); got != 1 {
		t.Errorf("c_total = %v", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("private dir %s still there: %v", dir, err)
	}
}

// Handles never panic: a wrong label count or a closed registry gives a no-op handle, the
// error is counted, and Get returns it.
func TestHandlesNeverPanic(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	v := reg.MustNewCounterVec(metrics.CounterOpts{Name: "c", Help: "h"}, "a", "b")
	v.With("only-one").Inc()
	if _, err := v.Get("x", "y", "z"); err == nil || !strings.Contains(err.Error(), "got 3 label values for 2 label names") {
		t.Errorf("Get: %v", err)
	}
	c := v.With("x", "y")
	c.Add(-1)
	c.Add(math.NaN())
	c.Add(math.Inf(1))
	c.Add(0.5)
	if got := metricstest.Value(t, reg, "c_total", "a", "x", "b", "y"); got != 0.5 {
		t.Errorf("c = %v, want 0.5 (negative, NaN and Inf ignored)", got)
	}
	if got := metricstest.Value(t, reg, "herd_metrics_write_errors_total"); got != 1 {
		t.Errorf("write errors = %v, want 1", got)
	}
	// Invalid UTF-8 is stored with U+FFFD, and the same handle comes back.
	bad := v.With("\xff", "ok")
	bad.Inc()
	if v.With("\xff", "ok") != bad {
		t.Error("invalid UTF-8 value: handle not cached")
	}
	if got := metricstest.Value(t, reg, "c_total", "a", "\uFFFD", "b", "ok"); got != 1 {
		t.Errorf("got %v", got)
	}

	other := metricstest.NewRegistry(t)
	ov := other.MustNewHistogramVec(metrics.HistogramOpts{Name: "h", Help: "h"}, "a")
	old := ov.With("x")
	other.Close()
	if _, err := other.NewGauge(metrics.GaugeOpts{Name: "g", Help: "h"}); !errors.Is(err, metrics.ErrClosed) {
		t.Errorf("gauge registered after Close (needs a new file): %v", err)
	}
	other.Unmap()
	old.Observe(1) // detached: harmless
	ov.With("y").Observe(1)
	if _, err := ov.Get("z"); !errors.Is(err, metrics.ErrClosed) {
		t.Errorf("after Unmap: %v", err)
	}
}

func TestBuckets(t *testing.T) {
	t.Parallel()
	lin, err := metrics.LinearBuckets(0.1, 0.1, 5)
	if err != nil || !slices.Equal(lin, []float64{0.1, 0.2, 0.3, 0.4, 0.5}) {
		t.Errorf("LinearBuckets = %v, %v", lin, err)
	}
	exp, err := metrics.ExponentialBuckets(0.001, 10, 4)
	if err != nil || !slices.Equal(exp, []float64{0.001, 0.01, 0.1, 1}) {
		t.Errorf("ExponentialBuckets = %v, %v", exp, err)
	}
	for _, bad := range []func() ([]float64, error){
		func() ([]float64, error) { return metrics.LinearBuckets(0, 1, 0) },
		func() ([]float64, error) { return metrics.LinearBuckets(0, 0, 3) },
		func() ([]float64, error) { return metrics.ExponentialBuckets(0, 2, 3) },
		func() ([]float64, error) { return metrics.ExponentialBuckets(1, 1, 3) },
	} {
		if _, err := bad(); err == nil || !strings.HasPrefix(err.Error(), "metrics: ") {
			t.Errorf("want an error, got %v", err)
		}
	}
	d := metrics.DefBuckets()
	d[0] = 42
	if metrics.DefBuckets()[0] != .005 {
		t.Error("DefBuckets shares its slice")
	}

	// Observations land in the smallest bucket >= v; a trailing +Inf is accepted.
	reg := metricstest.NewRegistry(t)
	h := reg.MustNewHistogram(metrics.HistogramOpts{Name: "h", Help: "h", Buckets: []float64{1, 2, math.Inf(1)}})
	for _, v := range []float64{0, 1, 1.5, 2, 3, math.NaN()} {
		h.Observe(v)
	}
	for le, want := range map[string]float64{"1": 2, "2": 4, "+Inf": 6} {
		if got := metricstest.Value(t, reg, "h_bucket", "le", le); got != want {
			t.Errorf("le=%s: %v, want %v", le, got, want)
		}
	}
}

// The keys herd writes are the ones client_python writes: le formatted like Python's
// floatToGoString, the sum first, then the buckets.
func TestHistogramKeysAsPython(t *testing.T) {
	t.Parallel()
	reg := metricstest.NewRegistry(t)
	reg.MustNewHistogramVec(metrics.HistogramOpts{Name: "h", Help: "x",
		Buckets: []float64{0.005, 1, 10, 1234567, 1e10, 1e22}}, "r").With("a")
	fs, err := mmapstore.ReadFile(filepath.Join(reg.Dir(), "histogram_0a.db"))
	if err != nil {
		t.Fatal(err)
	}
	var les []string
	for i, s := range fs.Samples {
		if i == 0 && s.Key.Sample != "h_sum" {
			t.Errorf("first entry %q, want h_sum", s.Key.Sample)
		}
		for _, lp := range s.Key.Labels {
			if lp.Name == "le" {
				les = append(les, lp.Value)
			}
		}
	}
	// Python: floatToGoString(0.005) '0.005', (1) '1.0', (10) '10.0', (1234567) '1.234567e+06',
	// (1e10) '1e+010', (1e22) '1e+22'.
	want := []string{"0.005", "1.0", "10.0", "1.234567e+06", "1e+010", "1e+22", "+Inf"}
	if !slices.Equal(les, want) {
		t.Errorf("le values %q, want %q", les, want)
	}
}

// Two live Registries on one Dir and ID would corrupt each other's files: the second fails.
func TestTwoRegistriesOneIDFail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r1 := metricstest.NewRegistryWith(t, metrics.Options{Dir: dir, ID: "3a"})
	if _, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: "3a"}); !errors.Is(err, mmapstore.ErrLocked) {
		t.Fatalf("second Registry on one Dir and ID: %v, want mmapstore.ErrLocked", err)
	}
	r2 := metricstest.NewRegistryWith(t, metrics.Options{Dir: dir, ID: "3b"}) // the other lane is fine
	r1.MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"}).Inc()
	r2.MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"}).Inc()
	metricstest.Kill(t, r1)
	r3 := metricstest.NewRegistryWith(t, metrics.Options{Dir: dir, ID: "3a"}) // a successor, once r1 is gone
	r3.MustNewCounter(metrics.CounterOpts{Name: "c", Help: "h"}).Inc()
	if v := metricstest.Value(t, r3, "c_total"); v != 3 {
		t.Errorf("c_total = %v, want 3", v)
	}
}
