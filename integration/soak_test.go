package integration

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// soakFor is set by `make soak` (SOAK=10m by default; CI uses 60s). The
// soak is not part of the normal suite.
var soakFor = flag.Duration("soak", 0, "run TestSoak for this long (make soak); 0 skips it")

// soakSample is one look at a running hello.
type soakSample struct {
	at     time.Duration
	procs  map[string][3]float64 // pid label -> goroutines, open fds, RSS bytes
	files  int                   // entries of the run directory
	series int
}

var soakMetrics = [3]string{"herd_process_goroutines", "herd_process_open_fds", "herd_process_resident_memory_bytes"}

func (p *proc) soakSample(t *testing.T, at time.Duration) soakSample {
	t.Helper()
	mfs := p.scrape()
	s := soakSample{at: at, procs: map[string][3]float64{}, series: seriesCount(mfs)}
	for i, name := range soakMetrics {
		for _, m := range mfs[name].GetMetric() {
			pid := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "pid" {
					pid = lp.GetValue()
				}
			}
			v := s.procs[pid]
			v[i] = m.GetGauge().GetValue()
			s.procs[pid] = v
		}
	}
	ents, err := os.ReadDir(p.runDir())
	if err != nil {
		t.Fatal(err)
	}
	s.files = len(ents)
	return s
}

// median of metric i of process pid over samples.
func soakMedian(samples []soakSample, pid string, i int) float64 {
	var vs []float64
	for _, s := range samples {
		if v, ok := s.procs[pid]; ok {
			vs = append(vs, v[i])
		}
	}
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// TestSoak runs bin/hello with 2 workers under steady load (keep-alive and
// fresh connections; /hello, /users/{id} and a 1 ms /sleep; scrapes) for -soak, and checks that
// nothing grows: goroutines, open descriptors and RSS of the master and of
// every worker, the number of metric files and of series. After a warm-up
// (a tenth of the time, at least 5 s), the median of the last third of the
// samples is compared with the median of the first third.
func TestSoak(t *testing.T) {
	if *soakFor == 0 {
		t.Skip("the soak runs with -soak DURATION (make soak)")
	}
	dur := *soakFor
	warm := max(dur/10, 5*time.Second)
	every := max(dur/60, time.Second)
	p := startHello(t, "-workers", "2")
	p.waitReady(2)
	hello := startLoad(t, p.app, "/hello", 4, dur+warm+time.Minute)
	users := startLoad(t, p.app, "/users/soak", 2, dur+warm+time.Minute)
	sleepy := startLoad(t, p.app, "/sleep/1", 2, dur+warm+time.Minute)
	start := time.Now()
	time.Sleep(warm)
	var samples []soakSample
	for time.Since(start) < warm+dur {
		samples = append(samples, p.soakSample(t, time.Since(start)))
		time.Sleep(every)
	}
	okHello := hello.check(t)
	okOther := users.check(t) + sleepy.check(t)
	p.checkCountEquals(t, okHello)

	third := max(len(samples)/3, 1)
	first, last := samples[:third], samples[len(samples)-third:]
	var pids []string
	for pid := range samples[0].procs {
		pids = append(pids, pid)
	}
	sort.Strings(pids)
	var report strings.Builder
	fmt.Fprintf(&report, "soak %s (+%s warm-up), %d samples, %d requests (%.0f/s), %d failed:\n",
		dur, warm, len(samples), okHello+okOther, float64(okHello+okOther)/time.Since(start).Seconds(),
		hello.failed.Load()+users.failed.Load()+sleepy.failed.Load())
	for _, pid := range pids {
		b := [3]float64{soakMedian(first, pid, 0), soakMedian(first, pid, 1), soakMedian(first, pid, 2)}
		e := [3]float64{soakMedian(last, pid, 0), soakMedian(last, pid, 1), soakMedian(last, pid, 2)}
		fmt.Fprintf(&report, "  %-6s goroutines %4.0f -> %4.0f   open fds %4.0f -> %4.0f   RSS %6.1f -> %6.1f MiB\n",
			pid, b[0], e[0], b[1], e[1], b[2]/(1<<20), e[2]/(1<<20))
		if e[0] > b[0]+10 {
			t.Errorf("%s: goroutines grew from %v to %v", pid, b[0], e[0])
		}
		if e[1] > b[1]+10 {
			t.Errorf("%s: open descriptors grew from %v to %v", pid, b[1], e[1])
		}
		if e[2] > b[2]*1.2+4<<20 {
			t.Errorf("%s: RSS grew from %.1f to %.1f MiB", pid, b[2]/(1<<20), e[2]/(1<<20))
		}
	}
	for _, s := range samples {
		if s.files != samples[0].files || s.series != samples[0].series {
			t.Errorf("at %s: %d files and %d series, %d and %d at the start", s.at.Round(time.Second), s.files, s.series, samples[0].files, samples[0].series)
			break
		}
	}
	fmt.Fprintf(&report, "  run directory: %d files, %d series throughout", samples[0].files, samples[0].series)
	t.Log(report.String())
}
