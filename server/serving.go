package server

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/herdhttp/herd/metrics"
)

// serving is what a process that takes requests (a worker, or the single
// process) sets up before it serves: its metrics registry and resource
// gauges, the check of its metric files, the application's handler, and the
// access log around it.
type serving struct {
	handler http.Handler
	alog    *logFile // nil without -access-log
	undo    []func() // run in reverse order by close
}

// startServing builds the serving state of the process with file id id in
// the run directory dir.
func startServing(cfg Config, dir, id string, app App, log *slog.Logger) (_ *serving, err error) {
	s := &serving{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	reg, err := metrics.NewRegistry(metrics.Options{Dir: dir, ID: id, Logger: log})
	if err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { reg.Close() })
	// The resource gauges are a convenience: a process whose metrics
	// filesystem is full serves without them.
	if stopStats, err := sampleProcStats(reg); err != nil {
		log.Error("no resource gauges", "err", err)
	} else {
		s.undo = append(s.undo, stopStats)
	}
	s.undo = append(s.undo, checkFiles(reg, log))
	h, err := app(reg)
	if err != nil {
		return nil, fmt.Errorf("building the app: %w", err)
	}
	s.handler, s.alog, err = withAccessLog(h, cfg.AccessLog)
	if err != nil {
		return nil, err
	}
	if s.alog != nil {
		s.undo = append(s.undo, func() { s.alog.Close() })
	}
	s.undo = append(s.undo, startExport(cfg, dir, id, log))
	return s, nil
}

// close undoes startServing, last step first (the registry is closed after
// everything that writes to it has stopped).
func (s *serving) close() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
}
