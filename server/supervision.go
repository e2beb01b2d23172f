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
//	herd_worker_exits_total{reason}         counter: worker exits by reason (crashed, boot-failed,
//	                                        timeout, shutdown, reloaded, retired, scaled-down)
const (
	workersName  = "herd_workers"
	restartsName = "herd_worker_restarts_total"
	requestsName = "herd_worker_requests_total"
	exitsName    = "herd_worker_exits_total"
)

var (
	workerStates = []prefork.WorkerState{prefork.StateStarting, prefork.StateReady, prefork.StateStopping, prefork.StateKilled}
	exitReasons  = []prefork.ExitReason{prefork.ExitCrashed, prefork.ExitBootFailed, prefork.ExitTimeout,
		prefork.ExitShutdown, prefork.ExitReloaded, prefork.ExitRetired, prefork.ExitScaledDown}
)

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
func supervisionMetrics(workers func() []prefork.WorkerInfo, exits *exitCounts) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		ws := workers()
		perState := map[prefork.WorkerState]float64{}
		restarts := map[int]float64{}
		requests := map[int]float64{}
		for _, w := range ws {
			perState[w.State]++
			restarts[w.Slot] = max(restarts[w.Slot], float64(w.Restarts))
			requests[w.Slot] += float64(w.Requests)
		}
		byState := family(workersName, "Worker processes of this master, by state.", dto.MetricType_GAUGE)
		for _, s := range workerStates {
			byState.Metric = append(byState.Metric, sample("state", string(s), perState[s], false))
		}
		exitsFam := family(exitsName, "Worker process exits, by reason.", dto.MetricType_COUNTER)
		for _, r := range exitReasons {
			exitsFam.Metric = append(exitsFam.Metric, sample("reason", string(r), float64(exits.get(r)), true))
		}
		slots := make([]int, 0, len(restarts))
		for s := range restarts {
			slots = append(slots, s)
		}
		slices.Sort(slots)
		restartsFam := family(restartsName, "Workers each slot started before its current one.", dto.MetricType_COUNTER)
		requestsFam := family(requestsName, "Requests served by each slot's current worker, as of its last heartbeat.", dto.MetricType_COUNTER)
		for _, s := range slots {
			slot := strconv.Itoa(s)
			restartsFam.Metric = append(restartsFam.Metric, sample("worker", slot, restarts[s], true))
			requestsFam.Metric = append(requestsFam.Metric, sample("worker", slot, requests[s], true))
		}
		fams := []*dto.MetricFamily{byState, exitsFam}
		if len(slots) > 0 { // a family without samples cannot be encoded: it would cut the scrape short
			fams = append(fams, restartsFam, requestsFam)
		}
		return fams, nil
	})
}

func family(name, help string, t dto.MetricType) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &name, Help: &help, Type: t.Enum()}
}

func sample(label, value string, v float64, counter bool) *dto.Metric {
	m := &dto.Metric{Label: []*dto.LabelPair{{Name: &label, Value: &value}}}
	if counter {
		m.Counter = &dto.Counter{Value: &v}
	} else {
		m.Gauge = &dto.Gauge{Value: &v}
	}
	return m
}
