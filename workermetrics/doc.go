// Package workermetrics carries metrics that live in each worker's memory
// (anything with a Gather method: a client_golang prometheus.Registry or
// prometheus.DefaultGatherer, a metrics.Gatherer) to the master's /metrics,
// merged. It does not import client_golang; package promclient is the
// bridge that does.
//
// # The two sides
//
// A worker runs a Publisher over its gatherers. The Publisher writes a
// snapshot of everything they gather into a file of a shared directory
// (inside herd's private run directory) every interval (1s by default),
// atomically (a temporary file renamed over the last one), so that the
// master can still read it after the worker died (a snapshot whose families
// are those already in the file, only its sequence number newer, is not
// written again: the file says the same); and it listens on a unix
// socket (mode 0600) in that directory, answering every connection with a
// fresh snapshot at once, then with another for every byte the master
// sends on it. Each snapshot carries a sequence number, so the newer of
// two is known.
//
// The master serves a Gatherer. At each scrape it asks every live worker
// at once (on the connection kept from the last scrape, or a new one: a
// broken connection is replaced once) and waits for the fresh snapshots for
// a short time (GathererOpts.Timeout, 250ms by default, counted from the start of
// the scrape); a worker that has not answered by then is served from its
// snapshot file (or from its last answer, if that is newer). A worker whose
// socket refuses connections or is gone is dead: its last snapshot is folded
// into the dead workers' totals, once, and its files are removed.
//
// A worker's files are named after its file id, pid and start time
// ("0a_4242_lx3k9ab.snap", ".sock"); the directory holds nothing else, and
// herd's metric file reader, which only looks at *.db names, passes over it.
//
// # How the workers' families are merged
//
//   - Counters are summed over the live workers and the dead workers'
//     totals, per label set, with no worker label. A dead worker's last
//     snapshot stays in the sum, so a counter never goes backwards when a
//     worker dies or is replaced; what is lost is what the worker counted
//     after its last snapshot: at most one interval of increments when it
//     is killed, nothing when it stops cleanly (Close writes a last
//     snapshot).
//   - Histograms are summed the same way: count, sum and the cumulative
//     count of each classic bucket (at the upper bounds every contributor
//     has). Native histograms are merged when every contributor of the
//     series is native: at the coarsest schema among them (finer buckets
//     are joined), with the widest zero bucket. Native buckets reach a
//     scraper only in the protobuf format; the text formats carry the
//     classic buckets, count and sum.
//   - Gauges, untyped metrics, summaries (quantiles, sum and count) and
//     gauge histograms, and every family of the per-process collectors
//     (names starting with go_ or process_, see GathererOpts.PerWorker),
//     whatever its type, are served as one series per live worker with a
//     worker label whose value is the worker's file id ("0a": slot 0,
//     lane a; a worker that replaces a dead one takes over its id). There
//     is no sum: adding up per-process values would fake a number no
//     process has. They disappear with the worker.
//   - A family is left out of the scrape, never a broken exposition, and
//     counted in herd_export_families_dropped{reason} when its name clashes
//     with one of herd's families in any exposition form (names starting
//     with herd_ are always reserved) (reason herd_name), when two workers
//     (or a worker and the dead workers' totals) give it different types
//     (type_conflict), when a per-worker family already has a worker label
//     (worker_label), or when it is malformed (invalid: a series without a
//     value of the family's type, bad or duplicate label names, a series
//     twice from one worker, a native histogram that cannot be read, a
//     histogram with float counts, which OpenMetrics 1.0 cannot carry).
//
// Exemplars and created timestamps are not carried over, nor are the
// timestamps of summed series (those of per-worker series are); a unit that
// does not end the family's name is left out, as OpenMetrics requires.
// Series come in the workers' order (client_golang sorts them by label),
// summed ones in the order they first appear, per-worker ones worker by
// worker.
//
// # The snapshot format
//
// A snapshot is a 24-byte header (magic number, sequence number, length)
// and the families in Prometheus' delimited protobuf format (client_model's
// MetricFamily messages). Both sides encode and decode it by hand, without
// reflection, and the master interns each worker's label sets: at every
// scrape it reads every worker's snapshot, and generic protobuf decoding
// would cost more than the merge. A family whose message did not change
// since the worker's last snapshot is not decoded again; one whose values
// alone changed (the same series with the same labels in the same order)
// has only its values read, at their places in the last message, and
// keeps that decode's label sets; any other change decodes it in full.
//
// # Rendering
//
// Gather returns dto families, as protobuf scrapes need. A Gatherer is also
// a metrics.Renderer: metrics.Handler serves text and OpenMetrics scrapes
// by rendering herd's families as without export (straight from the metric
// files) and appending the workers' families, which the Gatherer writes
// straight from the merge (counters, gauges and classic histograms whose
// names and labels are of the legacy character set, each label set rendered
// once) or encodes with expfmt (any other). Both give the same bytes.
//
// # Self metrics
//
//	herd_export_workers{source}            gauge: live workers served fresh or from their snapshot file
//	herd_export_folded_workers_total       counter: dead workers folded into the totals
//	herd_export_families_dropped{reason}   gauge: families left out of the last scrape
//	herd_export_snapshots_skipped          gauge: unreadable or foreign files in the last scrape
//	herd_export_scrape_duration_seconds    gauge: time the last scrape spent on the workers
//
// # Limits
//
// Removing a worker's files from under it (a cleanup script) makes the
// master take it for dead: its counters are kept, but nothing it exports
// reaches /metrics again until it is replaced. The master keeps the dead
// workers' totals in memory for the life of the run directory. A snapshot
// is at most 64 MiB.
//
// Everything in the package is safe for concurrent use.
package workermetrics
