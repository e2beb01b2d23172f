package workermetrics

import (
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/herdhttp/herd/metrics"
)

// jobsFamily is one counter, jobs_total, of value v.
func jobsFamily(v float64) []*dto.MetricFamily {
	return []*dto.MetricFamily{{Name: proto.String("jobs_total"), Help: proto.String("Jobs."), Type: dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(v)}}}}}
}

// The master keeps its connection to a worker from one scrape to the
// next, and every scrape on it is fresh.
func TestScrapesReuseTheWorkersConnection(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "export")
	var jobs atomic.Int64
	gatherJobs := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return jobsFamily(float64(jobs.Load())), nil })
	p, err := NewPublisher(dir, "0a", gatherJobs, PublisherOpts{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	g := NewGatherer(dir, nil, GathererOpts{Timeout: 10 * time.Second})
	var first net.Conn
	for i := range 3 {
		jobs.Store(int64(i + 1)) // the gatherer is called by the answer, after this
		fams := scrape(t, g)
		if v := mustSample(t, fams, "jobs_total"); v != float64(i+1) {
			t.Errorf("scrape %d: jobs_total = %v, want the fresh %v", i, v, i+1)
		}
		if v := mustSample(t, fams, workersName, "source", "fresh"); v != 1 {
			t.Errorf("scrape %d: %s{source=fresh} = %v, want 1", i, workersName, v)
		}
		g.mu.Lock()
		if len(g.conns) != 1 {
			t.Fatalf("scrape %d: %d connections kept, want 1", i, len(g.conns))
		}
		for _, c := range g.conns {
			if first == nil {
				first = c
			} else if c != first {
				t.Errorf("scrape %d: a new connection", i)
			}
		}
		g.mu.Unlock()
	}
	// Close ends the kept connection: the worker is then gone.
	p.Close()
	fams := scrape(t, g)
	if v := mustSample(t, fams, foldedName); v != 1 {
		t.Errorf("after Close: %s = %v, want 1", foldedName, v)
	}
	if v := mustSample(t, fams, "jobs_total"); v != 3 {
		t.Errorf("after Close: jobs_total = %v, want the last snapshot's 3", v)
	}
}

// A worker that answers once per connection and closes it (a worker of an
// older binary) is asked on a new connection at every scrape, fresh.
func TestWorkerAnsweringOncePerConnection(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "export")
	if err := makeDir(dir); err != nil {
		t.Fatal(err)
	}
	inst := "0a_" + strconv.Itoa(1<<30) + "_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var ln net.Listener
	err := withSockPath(dir, inst+sockSuffix, func(path string) error {
		var err error
		ln, err = net.Listen("unix", path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answers := make(chan float64, 10)
	go func() {
		for seq := uint64(1); ; seq++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			v := float64(seq * 10)
			c.Write(appendSnapshot(nil, seq, jobsFamily(v)))
			c.Close()
			answers <- v
		}
	}()
	g := NewGatherer(dir, nil, GathererOpts{Timeout: 10 * time.Second})
	for i := range 3 {
		fams := scrape(t, g)
		var want float64
		select {
		case want = <-answers:
		case <-time.After(time.Minute):
			t.Fatalf("scrape %d: the worker was not asked", i)
		}
		if v := mustSample(t, fams, "jobs_total"); v != want {
			t.Errorf("scrape %d: jobs_total = %v, want the fresh %v", i, v, want)
		}
		if v := mustSample(t, fams, workersName, "source", "fresh"); v != 1 {
			t.Errorf("scrape %d: %s{source=fresh} = %v, want 1", i, workersName, v)
		}
	}
}
