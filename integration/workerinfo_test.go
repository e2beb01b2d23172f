package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// /workers through the real binary: per worker, the requests in flight (from
// the worker's heartbeat), CPU seconds, age and the slot's listen queue.

// workerStats is the part of a /workers element this file checks; keys
// lists every key the element has.
type workerStats struct {
	PID         int     `json:"pid"`
	State       string  `json:"state"`
	Started     string  `json:"started"`
	InFlight    int     `json:"in_flight"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	AgeSeconds  float64 `json:"age_seconds"`
	QueueLength int     `json:"queue_length"`
	QueueLimit  int     `json:"queue_limit"`
	keys        map[string]bool
}

func (p *proc) workerStats() ([]workerStats, error) {
	resp, err := http.Get(p.admin + "/workers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var raw []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return nil, err
	}
	ws := make([]workerStats, len(raw))
	for i, r := range raw {
		var keys map[string]any
		if err := json.Unmarshal(r, &ws[i]); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(r, &keys); err != nil {
			return nil, err
		}
		ws[i].keys = map[string]bool{}
		for k := range keys {
			ws[i].keys[k] = true
		}
	}
	return ws, nil
}

// holdSleeps keeps n requests to /sleep/10000 in flight (each client asks
// again when its request ends) until stop is called; stop returns the
// failures other than the cancellation itself.
func holdSleeps(app string, n int) (stop func() []error) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", app+"/sleep/10000", nil)
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("GET /sleep/10000: %s", resp.Status)
					}
				}
				if err != nil && !errors.Is(err, context.Canceled) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	return func() []error {
		cancel()
		wg.Wait()
		return errs
	}
}

func TestWorkersShowInFlightCPUAndAge(t *testing.T) {
	t.Parallel()
	const workers, held = 2, 6
	p := startHello(t, "-workers", "2")
	p.waitReady(workers)
	stop := holdSleeps(p.app, held)
	defer stop()

	var ws []workerStats
	testutil.Eventually(t, 30*time.Second, func() error {
		var err error
		if ws, err = p.workerStats(); err != nil {
			return err
		}
		sum := 0
		for _, w := range ws {
			sum += w.InFlight
		}
		if len(ws) != workers || sum != held {
			return fmt.Errorf("/workers shows %d in flight over %d workers, want %d over %d: %+v", sum, len(ws), held, workers, ws)
		}
		return nil
	})
	for _, w := range ws {
		for _, k := range []string{"in_flight", "cpu_seconds", "age_seconds", "rss_bytes", "queue_length", "queue_limit", "started"} {
			if !w.keys[k] {
				t.Errorf("worker %d: /workers has no %q", w.PID, k)
			}
		}
		if w.State != "ready" || w.CPUSeconds <= 0 || w.QueueLimit <= 0 {
			t.Errorf("worker %+v: want ready, with CPU time and its slot's queue", w)
		}
		begun, err := time.Parse(time.RFC3339Nano, w.Started)
		if err != nil {
			t.Fatal(err)
		}
		if limit := time.Since(begun).Seconds(); w.AgeSeconds <= 0 || w.AgeSeconds > limit {
			t.Errorf("worker %d: age %.3f s, started %s (%.3f s ago)", w.PID, w.AgeSeconds, w.Started, limit)
		}
	}
	if errs := stop(); len(errs) > 0 {
		t.Errorf("held requests failed: %v", errs)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		ws, err := p.workerStats()
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.InFlight != 0 {
				return fmt.Errorf("worker %d still shows %d in flight after the clients left", w.PID, w.InFlight)
			}
		}
		return nil
	})
}
