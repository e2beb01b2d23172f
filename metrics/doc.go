// Package metrics is herd's Prometheus instrumentation for pre-forked processes: every worker
// records counters, gauges, histograms and summaries into its own memory-mapped files, and
// the master merges all workers' files into one /metrics.
//
// # The model
//
// A Registry is one process's writer. It is an explicit value, created with NewRegistry and
// handed to whatever instruments code: there is no default registry, no init(), and no
// environment variable is ever read, so nothing depends on when a variable is set or which
// package was imported first (the first trap of client_python's multiprocess mode).
//
//	reg, err := metrics.NewRegistry(metrics.Options{Dir: runDir, ID: "3a"})
//	requests := reg.MustNewCounterVec(metrics.CounterOpts{
//		Name: "http_requests_total", Help: "Requests served.",
//	}, "method", "route", "code")
//	requests.With("GET", "/hello", "200").Inc()
//
// Each Registry writes the files of client_python's multiprocess mode (counter_<id>.db,
// gauge_<mode>_<id>.db, histogram_<id>.db, summary_<id>.db) into Options.Dir, byte for byte as
// Python does (package mmapstore), so Python's MultiProcessCollector can read herd's
// directory and herd can read Python's.
//
// The master reads with a DirGatherer and serves with Handler:
//
//	g := metrics.NewDirGatherer(runDir, metrics.GathererOpts{})
//	mux.Handle("/metrics", metrics.Handler(g, metrics.HandlerOpts{}))
//
// Handler renders a DirGatherer, alone or in Gatherers beside other gatherers (the master
// serves its own families that way), straight from the merged files in the text and
// OpenMetrics formats: each family's and series' names and labels are rendered once and
// kept, a scrape reads every value, merges and formats the numbers into a reused buffer,
// and writes it once with a Content-Length (gzipped at gzip.BestSpeed when asked). The bytes
// are those expfmt writes for the gathered families. A first scrape maps and parses every
// file and makes every series; DirGatherer.Warm does that work ahead of it, as the master
// and herd-exporter do when they start. Gatherers never fails a scrape over a
// conflict between gatherers: a differing help keeps the first, a family of another type or
// repeating a series is left out, logged once and counted in herd_metrics_families_dropped.
//
// A worker can also record its own resources (CPU, memory, file descriptors, goroutines,
// heap) with Registry.NewProcessMetrics, shown per worker by the master.
//
// Registry.Gather reads back the Registry's own directory through the same merge, so the
// writer and the reader of a directory are one object: a test that creates a Registry on a
// fresh directory reads exactly what it wrote (the second trap). Package metricstest builds
// on that.
//
// # Merging
//
// The merge is client_python's: counters and summaries (count and sum; no quantiles) are
// summed over all files, those of dead workers included, so counters never go backwards;
// histogram buckets are summed by bound; gauges are merged by their GaugeMode (one series per
// worker labelled pid, min, max, sum, most recent), and the live* modes forget a worker once
// the master has called RemoveLiveFiles for it. The output is sorted, families by name and
// series by labels, so the exposition is stable.
//
// # Hot path and failures
//
// With looks a series up (and creates its file entry the first time); keep the returned
// handle where it matters. Counter.Inc, Gauge.Set, Histogram.Observe on a handle are atomic
// operations on the shared mapping: no lock, no allocation, no system call. Nothing on that
// path panics: a series that cannot be created (full filesystem, wrong label count) yields a
// handle that does nothing, and the error is logged and counted in
// herd_metrics_write_errors_total. Setup mistakes (invalid names, a family registered twice
// with different types, help or labels) are returned as errors prefixed "metrics: ", or
// panic in the Must* forms.
//
// A file removed under a live Registry (a test fixture cleaning the directory: the third
// trap) is noticed by Registry.Check, which Registry.Gather calls first, and recreated with
// its values; later writes are not lost.
//
// Registry.Close leaves the files mapped until the process exits, so a handler still running
// when a process closes its Registry (an HTTP server's Shutdown returns at its deadline with
// handlers running) counts into the files and never faults; Registry.Unmap releases them for
// a process that goes on, once no handle is in use.
//
// # Gauges across processes
//
// A gauge has one value per process; GaugeOpts.Mode says what the master shows. Use
// GaugeLiveSum for things that add up over live workers (in-flight requests, open
// connections), GaugeAll or GaugeLiveAll to see each worker (a "pid" label carries the
// worker's file id), GaugeMostRecent for a value any worker may set (a configuration
// version). The mostrecent modes store a timestamp with each value and need the Current
// file layout.
//
// The mode of a family is that of its first file in name order; file names start with the
// mode (gauge_<mode>_<id>.db), so when processes disagree (a reload to a binary that changed
// a gauge's mode) the mode first in alphabetical order among the files present wins
// (all < liveall < livemax < livemin < livemostrecent < livesum < max < min < mostrecent <
// sum), whichever worker wrote it, and the other files' values are merged in that mode. Once
// that file is gone (a dead worker's live* files), the next one decides. The same holds for
// a name written as two types: the type of the first file wins and the others' samples are
// left out. Client_python lets the last gauge file it reads (in directory order) decide.
//
// # Operational notes
//
//   - Files live in a tmpfs (/dev/shm) when the server is configured that way. Docker gives a
//     container a 64 MiB /dev/shm by default; each file takes at least 64 KiB and doubles as
//     series are added. A full tmpfs is no crash (space is reserved with fallocate): new
//     series are dropped and counted in herd_metrics_write_errors_total. Watch that counter.
//   - A Registry with a zero Options.Dir makes a private directory (herd-metrics-*) under
//     /dev/shm and removes it in Close; a process killed before Close (Ctrl-C on go run, for
//     example) leaves it behind.
//   - Label values become series: never use unbounded values (raw paths, ids) as labels.
//   - client_python 0.4-0.17 (Debian 12 ships 0.16) reads only the Legacy layout:
//     Options.Layout = mmapstore.Legacy when Python tools must read herd's directory.
//
// Everything in the package is safe for concurrent use unless stated otherwise.
package metrics
