package promclient_test

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herdhttp/herd/promclient"
	"github.com/herdhttp/herd/server"
)

func ExampleExport() {
	cfg := server.DefaultConfig()
	promclient.Export(&cfg) // the default registry: Go and process collectors

	reg := prometheus.NewRegistry() // a driver's own registry, say
	promclient.Export(&cfg, reg)
	fmt.Println(len(cfg.Export), cfg.Export[0] == prometheus.DefaultGatherer)
	// Output: 2 true
}

func ExampleGatherers() {
	cfg := server.DefaultConfig()
	drivers := prometheus.NewRegistry()
	cfg.Export = promclient.Gatherers(prometheus.DefaultGatherer, drivers)
	fmt.Println(len(cfg.Export))
	// Output: 2
}
