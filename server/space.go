package server

import (
	"syscall"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
)

// freeBytes is the space that dir's filesystem has left for this user.
func freeBytes(dir string) (uint64, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, err
	}
	return fs.Bavail * uint64(fs.Bsize), nil
}

// spaceGatherer reports the free space of the run directory dir at every
// scrape: the one figure that tells, before workers fail, that the files
// will not fit.
func spaceGatherer(dir string) metrics.Gatherer {
	return metrics.GathererFunc(func() ([]*dto.MetricFamily, error) {
		free, err := freeBytes(dir)
		if err != nil {
			return nil, nil
		}
		f := metrics.NewConstFamily("herd_metrics_dir_free_bytes",
			"Space left on the filesystem of the metrics run directory, in bytes. At zero, new metric series are dropped (herd_metrics_write_errors_total) and workers of new slots cannot start.",
			dto.MetricType_GAUGE)
		return []*dto.MetricFamily{f.Add(float64(free)).Family()}, nil
	})
}
