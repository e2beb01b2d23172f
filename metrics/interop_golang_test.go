package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// The merged view satisfies client_golang's prometheus.Gatherer, so it combines with an
// existing client_golang registry through prometheus.Gatherers (and the other way round).
func TestClientGolangGatherers(t *testing.T) {
	t.Parallel()
	workers := metricstest.NewWorkers(t, 2)
	for _, w := range workers {
		w.MustNewCounterVec(metrics.CounterOpts{Name: "http_requests_total", Help: "Requests."}, "code").With("200").Inc()
	}
	master := metrics.NewDirGatherer(workers[0].Dir(), metrics.GathererOpts{OmitSelfMetrics: true})

	promReg := prometheus.NewPedanticRegistry()
	jobs := prometheus.NewCounter(prometheus.CounterOpts{Name: "jobs_total", Help: "Jobs."})
	promReg.MustRegister(jobs)
	jobs.Add(5)

	var _ prometheus.Gatherer = master
	var _ prometheus.Gatherer = workers[0]
	var _ metrics.Gatherer = promReg
	want := `# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200"} 2
# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total 5
`
	both := prometheus.Gatherers{promReg, master}
	fams, err := both.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if err := metricstest.CompareText(static(fams), want, "http_requests_total", "jobs_total"); err != nil {
		t.Error("prometheus.Gatherers:", err)
	}
	metricstest.ExpectText(t, metrics.Gatherers{master, promReg}, want, "http_requests_total", "jobs_total")

	// A family on both sides with different types, or one series twice: the later
	// gatherer's family is left out and counted, the rest served.
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "http_requests_total", Help: "Requests."}))
	for i, gs := range []metrics.Gatherers{{master, clash}, {master, master}} {
		metricstest.ExpectText(t, gs, `# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200"} 2
`, "http_requests_total")
		// The second master repeats herd_metrics_write_errors_total too.
		if v, want := metricstest.Value(t, gs, "herd_metrics_families_dropped"), float64(i+1); v != want {
			t.Errorf("herd_metrics_families_dropped = %v, want %v", v, want)
		}
	}
}
