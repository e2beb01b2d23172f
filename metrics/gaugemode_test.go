package metrics_test

import (
	"testing"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/metrics/metricstest"
)

// Two processes may write one gauge in different modes (a reload to a binary that changed
// the mode). The mode of the first file in name order wins, and as file names start with
// the mode (gauge_<mode>_<id>.db), that is the mode first in alphabetical order among the
// files present, whichever worker wrote it; the other files' values are merged in that
// mode. When the winning file goes, the next one decides: a long-lived gatherer follows.
func TestGaugeModesDisagree(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		mode0a   metrics.GaugeMode
		mode1a   metrics.GaugeMode
		v0a, v1a float64
		alive    string // samples of g
		dead0a   string // after 0a died (its live* files removed)
	}{
		// gauge_all_1a.db < gauge_livesum_0a.db: all, one series per worker.
		{"all-over-livesum", metrics.GaugeLiveSum, metrics.GaugeAll, 1, 2,
			"g{pid=\"0a\"} 1\ng{pid=\"1a\"} 2\n", "g{pid=\"1a\"} 2\n"},
		// gauge_max_0a.db < gauge_min_1a.db: max.
		{"max-over-min", metrics.GaugeMax, metrics.GaugeMin, 5, 3, "g 5\n", "g 5\n"},
		// gauge_max_1a.db < gauge_min_0a.db: still max, though 0a sorts first by id.
		{"max-over-min-by-mode-not-id", metrics.GaugeMin, metrics.GaugeMax, 3, 5, "g 5\n", "g 5\n"},
		// gauge_liveall_0a.db < gauge_max_1a.db: liveall; once 0a's file is gone, max.
		{"liveall-then-max", metrics.GaugeLiveAll, metrics.GaugeMax, 7, 4,
			"g{pid=\"0a\"} 7\ng{pid=\"1a\"} 4\n", "g 4\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := metricstest.NewWorkers(t, 2)
			w[0].MustNewGauge(metrics.GaugeOpts{Name: "g", Help: "h", Mode: c.mode0a}).Set(c.v0a)
			w[1].MustNewGauge(metrics.GaugeOpts{Name: "g", Help: "h", Mode: c.mode1a}).Set(c.v1a)
			master := metrics.NewDirGatherer(w[0].Dir(), metrics.GathererOpts{})
			defer master.Close()
			head := "# HELP g h\n# TYPE g gauge\n"
			metricstest.ExpectText(t, master, head+c.alive, "g")
			metricstest.Kill(t, w[0])
			metricstest.ExpectText(t, master, head+c.dead0a, "g")
		})
	}
}
