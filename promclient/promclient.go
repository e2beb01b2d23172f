package promclient

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/server"
)

// Export makes every worker of a herd program export what gs gather
// (default: prometheus.DefaultGatherer, which holds client_golang's Go and
// process collectors and whatever was registered with
// prometheus.DefaultRegisterer) to the master's /metrics. Call it in main,
// before server.Main or server.Run: main runs in the master and in every
// worker. Calling it again adds gatherers.
func Export(cfg *server.Config, gs ...prometheus.Gatherer) {
	cfg.Export = append(cfg.Export, Gatherers(gs...)...)
}

// Gatherers converts client_golang gatherers into herd's
// (prometheus.DefaultGatherer when gs is empty), for server.Config.Export.
func Gatherers(gs ...prometheus.Gatherer) []metrics.Gatherer {
	if len(gs) == 0 {
		gs = []prometheus.Gatherer{prometheus.DefaultGatherer}
	}
	out := make([]metrics.Gatherer, len(gs))
	for i, g := range gs {
		out[i] = g
	}
	return out
}
