package server

import (
	"slices"
	"strconv"
	"sync"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// The master's supervision metrics, computed from prefork's view of the
// workers at scrape time (nothing of them lives in the metric files):
//
//	herd_workers{state}                     gauge: worker processes per state
//	herd_worker_restarts_total{worker}      counter: workers the slot started before its current one
//	herd_worker_requests_total{worker}      counter: requests served by the slot's current worker(s),
//	                                        as of their last heartbeat (resets when the worker is replaced)
//	herd_worker_exits_total{reason}         counter: worker exits by reason (prefork.ExitReasons)
//	herd_worker_start_fd_exhausted_total    counter: worker starts retried for want of a file descriptor

// exitCounts counts worker exits by reason; fed by prefork's OnWorkerExit hook.
type exitCounts struct {
	mu sync.Mutex // guards n
	n  map[prefork.ExitReason]uint64
}

func (c *exitCounts) add(r prefork.ExitReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[prefork.ExitReason]uint64{}
	}
	c.n[r]++
}

func (c *exitCounts) get(r prefork.ExitReason) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[r]
}

// supervisionMetrics gathers the families above from workers() and exits.
func supervisionMetrics(workers func() []prefork.WorkerInfo, counters func() prefork.Counters, exits *exitCounts) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		perState := map[prefork.WorkerState]float64{}
		restarts := map[int]float64{}
		requests := map[int]float64{}
		for _, w := range workers() {
			perState[w.State]++
			restarts[w.Slot] = max(restarts[w.Slot], float64(w.Restarts))
			requests[w.Slot] += float64(w.Requests)
		}
		byState := metrics.NewConstFamily("herd_workers", "Worker processes of this master, by state.", dto.MetricType_GAUGE, "state")
		for _, s := range prefork.WorkerStates() {
			byState.Add(perState[s], string(s))
		}
		byReason := metrics.NewConstFamily("herd_worker_exits_total", "Worker process exits, by reason.", dto.MetricType_COUNTER, "reason")
		for _, r := range prefork.ExitReasons() {
			byReason.Add(float64(exits.get(r)), string(r))
		}
		restartsFam := metrics.NewConstFamily("herd_worker_restarts_total", "Workers each slot started before its current one.", dto.MetricType_COUNTER, "worker")
		requestsFam := metrics.NewConstFamily("herd_worker_requests_total", "Requests served by each slot's current worker, as of its last heartbeat.", dto.MetricType_COUNTER, "worker")
		slots := make([]int, 0, len(restarts))
		for s := range restarts {
			slots = append(slots, s)
		}
		slices.Sort(slots)
		for _, s := range slots {
			slot := strconv.Itoa(s)
			restartsFam.Add(restarts[s], slot)
			requestsFam.Add(requests[s], slot)
		}
		fdFam := metrics.NewConstFamily("herd_worker_start_fd_exhausted_total", "Worker starts that found no free file descriptor (EMFILE, ENFILE) and were retried.", dto.MetricType_COUNTER)
		fdFam.Add(float64(counters().FDExhausted))
		fams := []*dto.MetricFamily{byState.Family(), byReason.Family(), fdFam.Family()}
		if len(slots) > 0 { // a family without samples cannot be encoded: it would cut the scrape short
			fams = append(fams, restartsFam.Family(), requestsFam.Family())
		}
		return fams, nil
	})
}
