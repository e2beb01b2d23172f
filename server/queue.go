package server

import (
	"strconv"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// The listen queues of the master's sockets, read from the kernel at scrape time
// (prefork.Master.ListenQueues):
//
//	herd_listen_queue_length{worker}  gauge: connections waiting to be accepted
//	herd_listen_queue_limit{worker}   gauge: the backlog those queues are limited to
//
// worker is the slot ("0", "1", ...) in reuseport mode, where each slot has its own
// queue, and "shared" in shared mode. A worker that stops accepting (stopped, stuck)
// shows as a growing queue in its slot alone.
const (
	queueLengthName = "herd_listen_queue_length"
	queueLengthHelp = "Connections waiting in the kernel to be accepted, per worker slot (\"shared\": the one queue of shared mode)."
	queueLimitName  = "herd_listen_queue_limit"
	queueLimitHelp  = "The backlog the listen queue of each worker slot is limited to (\"shared\": the one queue of shared mode)."
)

// listenQueueMetrics gathers the two families above from queues (a master's
// ListenQueues). A master that stopped reports no queue, and the families are then
// left out.
func listenQueueMetrics(queues func() []prefork.ListenQueue) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		qs := queues()
		if len(qs) == 0 {
			return nil, nil
		}
		length := queueFamily(queueLengthName, queueLengthHelp)
		limit := queueFamily(queueLimitName, queueLimitHelp)
		for _, q := range qs {
			worker := strconv.Itoa(q.Slot)
			if q.Shared {
				worker = "shared"
			}
			length.Metric = append(length.Metric, queueGauge(worker, float64(q.Length)))
			limit.Metric = append(limit.Metric, queueGauge(worker, float64(q.Limit)))
		}
		return []*dto.MetricFamily{length, limit}, nil
	})
}

func queueFamily(name, help string) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum()}
}

func queueGauge(worker string, v float64) *dto.Metric {
	label := "worker"
	return &dto.Metric{
		Label: []*dto.LabelPair{{Name: &label, Value: &worker}},
		Gauge: &dto.Gauge{Value: &v},
	}
}
