package server

import (
	"log/slog"
	"path/filepath"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/workermetrics"
)

// exportDir is the subdirectory of the run directory in which the processes
// that serve publish the metrics of Config.Export (package workermetrics).
// The metric file reader only looks at *.db names, so it passes over it.
const exportDir = "export"

// startExport publishes cfg.Export for the serving process with file id id
// (a worker, or the single process) and returns the function that stops it
// with a last snapshot; call that after the drain, so that what the last
// requests counted is in it. A process that cannot publish (a full
// filesystem) logs why and serves without.
func startExport(cfg Config, runDir, id string, log *slog.Logger) (stop func()) {
	if cfg.Export == nil {
		return func() {}
	}
	var g metrics.Gatherer = metrics.Gatherers(cfg.Export)
	if len(cfg.Export) == 1 {
		g = cfg.Export[0]
	}
	p, err := workermetrics.NewPublisher(filepath.Join(runDir, exportDir), id, g, workermetrics.PublisherOpts{Logger: log})
	if err != nil {
		log.Error("not exporting Config.Export metrics", "err", err)
		return func() {}
	}
	return func() {
		if err := p.Close(); err != nil {
			log.Error("exporting the last snapshot of Config.Export metrics", "err", err)
		}
	}
}

// withExport returns what the admin listener serves: g, plus the merge of
// what the serving processes publish when cfg.Export is set.
func withExport(cfg Config, runDir string, g metrics.Gatherer, log *slog.Logger) metrics.Gatherer {
	if cfg.Export == nil {
		return g
	}
	return workermetrics.NewGatherer(filepath.Join(runDir, exportDir), g, workermetrics.GathererOpts{Logger: log})
}
