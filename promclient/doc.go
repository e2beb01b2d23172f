// Package promclient exports the metrics of existing client_golang
// instrumentation from every herd worker to the master's /metrics: the Go
// and process collectors, database drivers, gRPC and Kafka clients,
// anything registered with prometheus.DefaultRegisterer or a
// prometheus.Registry. Without it those metrics live in each worker's
// memory and no scrape of the master sees them.
//
// It is the only herd package that imports client_golang; the work is done
// by package workermetrics, which documents how the workers' families are
// merged (counters and histograms summed, a dead worker's last snapshot
// kept; gauges, summaries and the go_* and process_* families one series
// per worker with a worker label).
//
// Usage, in main (which runs in the master and in every worker):
//
//	cfg := server.DefaultConfig()
//	cfg.RegisterFlags(fs)
//	promclient.Export(&cfg) // prometheus.DefaultGatherer; or Export(&cfg, reg1, reg2)
//	os.Exit(server.Main(&cfg, fs, os.Args[1:], app))
//
// Register collectors in main or in the App function, never in init: each
// worker runs main again, and registers them in its own process.
package promclient
