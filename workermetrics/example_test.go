package workermetrics_test

import (
	"fmt"
	"os"
	"path/filepath"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
	"github.com/herdhttp/herd/workermetrics"
)

// fixed is a worker's gatherer for the example: in a program it is a
// client_golang registry (see package promclient).
func fixed(jobs, queue float64) metrics.Gatherer {
	counter, gauge := dto.MetricType_COUNTER, dto.MetricType_GAUGE
	jn, jh, qn, qh := "jobs_total", "Jobs run.", "queue_length", "Jobs waiting."
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return []*dto.MetricFamily{
			{Name: &jn, Help: &jh, Type: &counter, Metric: []*dto.Metric{{Counter: &dto.Counter{Value: &jobs}}}},
			{Name: &qn, Help: &qh, Type: &gauge, Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &queue}}}},
		}, nil
	})
}

func Example() {
	run, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(run)
	dir := filepath.Join(run, "export")

	// In each worker (two here, in one process for the example):
	w0, _ := workermetrics.NewPublisher(dir, "0a", fixed(3, 1), workermetrics.PublisherOpts{})
	defer w0.Close()
	w1, _ := workermetrics.NewPublisher(dir, "1a", fixed(4, 2), workermetrics.PublisherOpts{})
	defer w1.Close()

	// In the master, around herd's own gatherer (nil here):
	g := workermetrics.NewGatherer(dir, nil, workermetrics.GathererOpts{})
	text, _ := metricstest.Text(g, "jobs_total", "queue_length")
	fmt.Print(text)
	// Output:
	// # HELP jobs_total Jobs run.
	// # TYPE jobs_total counter
	// jobs_total 7
	// # HELP queue_length Jobs waiting.
	// # TYPE queue_length gauge
	// queue_length{worker="0a"} 1
	// queue_length{worker="1a"} 2
}
