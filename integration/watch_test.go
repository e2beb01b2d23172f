package integration

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// counterWatch scrapes the master at a fixed interval until stop and
// records whether a counter ever went down or a scrape failed.
type counterWatch struct {
	name        string
	stopc, done chan struct{}
	scrapes     atomic.Int64
	problems    []string // read after stop
}

// watchCounter watches the counter that read takes from a scrape.
func watchCounter(admin string, every time.Duration, name string, read func(map[string]*dto.MetricFamily) float64) *counterWatch {
	w := &counterWatch{name: name, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := 0.0
		for {
			select {
			case <-w.stopc:
				return
			case <-time.After(every):
			}
			mfs, err := scrapeErr(admin)
			if err != nil {
				if len(w.problems) < 10 {
					w.problems = append(w.problems, "scrape: "+err.Error())
				}
				continue
			}
			w.scrapes.Add(1)
			v := read(mfs)
			if v < last && len(w.problems) < 10 {
				w.problems = append(w.problems, fmt.Sprintf("%s went down from %v to %v", name, last, v))
			}
			last = max(last, v)
		}
	}()
	return w
}

// watchHello watches bin/hello's /hello counter every 20 ms.
func watchHello(admin string) *counterWatch {
	return watchCounter(admin, 20*time.Millisecond, "http_requests_total", func(mfs map[string]*dto.MetricFamily) float64 {
		v, _ := value(mfs, "http_requests_total", helloLabels)
		return v
	})
}

// stop ends the watch and fails t with what it saw.
func (w *counterWatch) stop(t *testing.T) {
	t.Helper()
	close(w.stopc)
	<-w.done
	for _, p := range w.problems {
		t.Error(p)
	}
	if w.scrapes.Load() == 0 {
		t.Errorf("%s: no scrape succeeded", w.name)
	}
}
