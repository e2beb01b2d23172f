package server

import (
	"fmt"
	"math"
	"syscall"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
)

// Space in the metrics directory. Every metric file is a reservation made
// with fallocate (package mmapstore), never a sparse file, so a full
// filesystem is an error at the moment a file is created or grows, never a
// SIGBUS later. Before anything is forked the master checks that the
// filesystem has room for its workers; at run time a full filesystem costs
// new series (dropped, counted in herd_metrics_write_errors_total), never a
// worker, and /healthz and herd_metrics_dir_free_bytes say so.
const (
	// metricFileBytes is what mmapstore reserves for a new metric file.
	metricFileBytes = 64 << 10
	// workerFiles is how many metric files a worker instrumented by herd's
	// middleware creates by its first requests: counters, histograms, and
	// the live-sum and live-all gauges.
	workerFiles = 4
	// workerBytes is what one worker needs in the metrics directory.
	workerBytes = workerFiles * metricFileBytes
)

// spaceNeeded is what the workers of a run need in the metrics directory:
// every worker's files, and one worker more for the successor that a rolling
// restart starts beside each worker. The single process (workers == 0)
// needs one worker's files.
func spaceNeeded(workers int) uint64 {
	if workers == 0 {
		return workerBytes
	}
	return uint64(workers+1) * workerBytes
}

// freeBytes is the space that dir's filesystem has left for this user. A
// filesystem of no fixed size (ramfs: statfs reports no blocks at all) has
// no limit to check: math.MaxUint64.
func freeBytes(dir string) (uint64, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, err
	}
	if fs.Blocks == 0 {
		return math.MaxUint64, nil
	}
	return fs.Bavail * uint64(fs.Bsize), nil
}

// checkSpace refuses a metrics directory whose filesystem cannot hold the
// workers' files. A filesystem it cannot ask passes: the workers will say.
func checkSpace(dir string, workers int) error {
	free, err := freeBytes(dir)
	need := spaceNeeded(workers)
	if err != nil || free >= need {
		return nil
	}
	who := fmt.Sprintf("%d workers need", workers)
	switch workers {
	case 0:
		who = "the process needs"
	case 1:
		who = "1 worker needs"
	}
	return fmt.Errorf("-metrics-dir: %s has %d bytes free; %s %d (%d KiB of metric files each, one more during a rolling restart); free space there or choose another directory with -metrics-dir",
		dir, free, who, need, workerBytes>>10)
}

// spaceNote is what /healthz adds when the run directory dir has no room
// for a new metric file, or "".
func spaceNote(dir string) string {
	free, err := freeBytes(dir)
	if err != nil || free >= metricFileBytes {
		return ""
	}
	return fmt.Sprintf("metrics directory %s is full (%d bytes free): new series are dropped (herd_metrics_write_errors_total) and new workers cannot start", dir, free)
}

// explainFailure adds to the error that stopped a run what the run
// directory dir tells about it: a worker that could not create its metric
// files on a full filesystem says so only in its own log.
func explainFailure(err error, dir string) error {
	free, ferr := freeBytes(dir)
	if ferr != nil || free >= workerBytes {
		return err
	}
	return fmt.Errorf("%w; the metrics directory %s has %d bytes free, a worker needs %d", err, dir, free, workerBytes)
}

// spaceGatherer reports the free space of the run directory dir at every
// scrape: the one figure that tells, before workers fail, that the files
// will not fit.
func spaceGatherer(dir string) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		free, err := freeBytes(dir)
		if err != nil || free == math.MaxUint64 { // unknown, or no limit (ramfs)
			return nil, nil
		}
		f := metrics.NewConstFamily("herd_metrics_dir_free_bytes",
			"Space left on the filesystem of the metrics run directory, in bytes. At zero, new metric series are dropped (herd_metrics_write_errors_total) and workers of new slots cannot start.",
			dto.MetricType_GAUGE)
		return []*dto.MetricFamily{f.Add(float64(free)).Family()}, nil
	})
}
