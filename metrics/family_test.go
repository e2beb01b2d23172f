package metrics_test

import (
	"os"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

func ExampleConstFamily() {
	// Inside a GathererFunc: samples computed at scrape time.
	g := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		queued := metrics.NewConstFamily("jobs_queued", "Jobs waiting, by queue.", dto.MetricType_GAUGE, "queue")
		queued.Add(3, "mail").Add(0, "resize")
		done := metrics.NewConstFamily("jobs_done_total", "Jobs done.", dto.MetricType_COUNTER)
		done.Add(42)
		return []*dto.MetricFamily{queued.Family(), done.Family()}, nil
	})
	fams, _ := g.Gather()
	for _, mf := range fams {
		expfmt.MetricFamilyToText(os.Stdout, mf)
	}
	// Output:
	// # HELP jobs_queued Jobs waiting, by queue.
	// # TYPE jobs_queued gauge
	// jobs_queued{queue="mail"} 3
	// jobs_queued{queue="resize"} 0
	// # HELP jobs_done_total Jobs done.
	// # TYPE jobs_done_total counter
	// jobs_done_total 42
}

func TestConstFamilyMergesWithFileFamilies(t *testing.T) {
	t.Parallel()
	// A constant family joins the same family from the metric files when type and help
	// agree, as the master's own process gauges join its workers'.
	w := metricstest.NewRegistry(t)
	w.MustNewGauge(metrics.GaugeOpts{Name: "temp", Help: "Temperature.", Mode: metrics.GaugeLiveAll}).Set(20)
	master := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return []*dto.MetricFamily{metrics.NewConstFamily("temp", "Temperature.", dto.MetricType_GAUGE, "pid").Add(30, "master").Family()}, nil
	})
	fams, err := metrics.Gatherers{w, master}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range fams {
		if mf.GetName() == "temp" {
			expfmt.MetricFamilyToText(&b, mf)
		}
	}
	want := "# HELP temp Temperature.\n# TYPE temp gauge\ntemp{pid=\"0a\"} 20\ntemp{pid=\"master\"} 30\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestConstFamilyRefusesMistakes(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"histogram":       func() { metrics.NewConstFamily("h", "h", dto.MetricType_HISTOGRAM) },
		"too few values":  func() { metrics.NewConstFamily("g", "g", dto.MetricType_GAUGE, "a", "b").Add(1, "x") },
		"too many values": func() { metrics.NewConstFamily("g", "g", dto.MetricType_GAUGE).Add(1, "x") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
