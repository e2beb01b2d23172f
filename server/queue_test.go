package server

import (
	"net"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// queueValues returns the samples of family name by worker label.
func queueValues(t *testing.T, fams []*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	for _, mf := range fams {
		if mf.GetName() != name {
			continue
		}
		if mf.GetType() != dto.MetricType_GAUGE || mf.GetHelp() == "" {
			t.Errorf("%s: type %v, help %q, want a gauge with help", name, mf.GetType(), mf.GetHelp())
		}
		out := map[string]float64{}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "worker" {
				t.Errorf("%s: labels %v, want worker only", name, m.GetLabel())
				continue
			}
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
		return out
	}
	return nil
}

// A master that was not run yet already listens: connections to its port wait in the
// kernel's queues, which the families report.
func TestListenQueueMetrics(t *testing.T) {
	t.Parallel()
	const conns = 5
	for _, mode := range []prefork.ListenerMode{prefork.ModeReusePort, prefork.ModeShared} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			m, err := prefork.NewMaster(prefork.Config{Workers: 3, Mode: mode, Addrs: []string{"127.0.0.1:0"}, Backlog: 50})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for range conns {
				c, err := net.Dial("tcp", m.Addrs()[0].String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			g := listenQueueMetrics(m.ListenQueues)
			wantWorkers := []string{"0", "1", "2"}
			if mode == prefork.ModeShared {
				wantWorkers = []string{"shared"}
			}
			var length, limit map[string]float64
			// The handshakes complete in the kernel: wait until every
			// connection is counted (the checks below say what is not).
			testutil.Until(10*time.Second, func() bool {
				fams, err := g.Gather()
				if err != nil {
					t.Fatal(err)
				}
				length, limit = queueValues(t, fams, queueLengthName), queueValues(t, fams, queueLimitName)
				total := 0.0
				for _, v := range length {
					total += v
				}
				return total == conns
			})
			if len(length) != len(wantWorkers) || len(limit) != len(wantWorkers) {
				t.Fatalf("length %v, limit %v, want one sample per %v", length, limit, wantWorkers)
			}
			total := 0.0
			for _, w := range wantWorkers {
				total += length[w]
				if limit[w] != 50 {
					t.Errorf("limit of worker %q: %v, want 50", w, limit[w])
				}
			}
			if total != conns {
				t.Errorf("queued connections over %v: %v, want %d", length, total, conns)
			}
		})
	}
}

func TestListenQueueMetricsOfAStoppedMaster(t *testing.T) {
	t.Parallel()
	m, err := prefork.NewMaster(prefork.Config{Workers: 1, Addrs: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	fams, err := listenQueueMetrics(m.ListenQueues).Gather()
	if err != nil || len(fams) != 0 {
		t.Errorf("closed master: %v, %v; want no family and no error", fams, err)
	}
}
