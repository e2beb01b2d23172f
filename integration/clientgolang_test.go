package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// examples/clientgolang, built next to helloBin (TestMain removes that
// directory) by the first test that needs it.
var (
	clientGolangOnce sync.Once
	clientGolangBin  string
	clientGolangErr  error
)

func buildClientGolang(t *testing.T) string {
	t.Helper()
	clientGolangOnce.Do(func() {
		bin := filepath.Join(filepath.Dir(helloBin), "clientgolang")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/herdhttp/herd/examples/clientgolang").CombinedOutput()
		if err != nil {
			clientGolangErr = fmt.Errorf("building examples/clientgolang: %v\n%s", err, out)
			return
		}
		clientGolangBin = bin
	})
	if clientGolangErr != nil {
		t.Fatal(clientGolangErr)
	}
	return clientGolangBin
}

// startClientGolang is startHello for examples/clientgolang (same flags).
func startClientGolang(t *testing.T, args ...string) *proc {
	t.Helper()
	bin := buildClientGolang(t)
	args = append([]string{"-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0", "-metrics-dir", t.TempDir()}, args...)
	p := &proc{t: t, rawProc: startRaw(t, exec.Command(bin, args...))}
	line := p.waitLine(t, 20*time.Second, "master started", "serving in one process")
	p.app = "http://" + bindRE.FindStringSubmatch(line)[1]
	p.admin = "http://" + adminRE.FindStringSubmatch(line)[1]
	p.dir = dirRE.FindStringSubmatch(line)[1]
	if d, err := strconv.Unquote(p.dir); err == nil {
		p.dir = d
	}
	return p
}

// jobsTotal is example_jobs_total summed over kinds.
func jobsTotal(mfs map[string]*dto.MetricFamily) float64 {
	sum := 0.0
	for _, m := range mfs["example_jobs_total"].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// workerLabels returns the worker label of each series of a family, sorted.
func workerLabels(mf *dto.MetricFamily) []string {
	var out []string
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "worker" {
				out = append(out, lp.GetValue())
			}
		}
	}
	sort.Strings(out)
	return out
}

// jobLoad sends GET /job?kind=K (K cycling over three kinds) from several
// keep-alive clients until target requests succeeded (a few more when
// clients finish together), keeping the time at which each success
// completed. Failed requests (their worker was killed) are counted and not
// retried.
type jobLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	done       []time.Time // completion times of the successes
	errs       []string
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startJobLoad(t *testing.T, base string, clients int, target int64) *jobLoad {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	l := &jobLoad{cancel: cancel}
	t.Cleanup(l.stop)
	var next atomic.Int64
	for range clients {
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			for ctx.Err() == nil && l.ok.Load() < target && l.failed.Load() < 1000 {
				kind := []string{"resize", "email", "report"}[next.Add(1)%3]
				req, _ := http.NewRequestWithContext(ctx, "GET", base+"/job?kind="+kind, nil)
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
				} else {
					l.ok.Add(1)
					l.done = append(l.done, time.Now())
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// stop cancels the requests in flight and waits for the clients.
func (l *jobLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// wait waits until the clients have stopped by themselves: the target is
// reached and every request in flight has completed, so that the clients'
// counts are final.
func (l *jobLoad) wait() {
	l.wg.Wait()
}

// waitOK waits until at least n requests succeeded.
func (l *jobLoad) waitOK(t *testing.T, n int64) {
	t.Helper()
	if !testutil.Until(60*time.Second, func() bool { return l.ok.Load() >= n }) {
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Fatalf("load stalled at %d ok, %d failed: %v", l.ok.Load(), l.failed.Load(), l.errs)
	}
}

// doneBetween counts the successes that completed in [from, to].
func (l *jobLoad) doneBetween(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, d := range l.done {
		if !d.Before(from) && !d.After(to) {
			n++
		}
	}
	return n
}

// scrapeBody fetches /metrics with the given Accept header.
func scrapeBody(t *testing.T, admin, accept string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", admin+"/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s %v", resp.Status, err)
	}
	return body
}

// TestClientGolangMetricsMergedAcrossWorkers: 2 workers of
// examples/clientgolang serve 3,000 /job requests; one is killed with
// SIGKILL (under load) and replaced; 3,000 more are served. The master's
// example_jobs_total (client_golang, in the workers' memory) must count
// every successful request but those of the last snapshot interval before
// the kill, never go down, and go_goroutines must appear once per live
// worker.
func TestClientGolangMetricsMergedAcrossWorkers(t *testing.T) {
	tool := promtool(t)
	p := startClientGolang(t, "-workers", "2")
	ws := p.waitReady(2)

	// 3,000 requests, then a scrape: the fresh snapshots hold every one.
	first := startJobLoad(t, p.app, 8, 3000)
	first.waitOK(t, 3000)
	first.wait()
	if first.failed.Load() > 0 {
		t.Fatalf("%d requests failed before any kill: %v", first.failed.Load(), first.errs)
	}
	mfs := p.scrape()
	if got := jobsTotal(mfs); got != float64(first.ok.Load()) {
		t.Fatalf("example_jobs_total = %v after %d requests", got, first.ok.Load())
	}
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	sort.Strings(ids)
	if got := workerLabels(mfs["go_goroutines"]); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("go_goroutines workers %v, want one series per worker %v", got, ids)
	}
	var victim workerInfo
	for _, w := range ws {
		if w.Slot == 0 {
			victim = w
		}
	}
	startBefore, _ := value(mfs, "process_start_time_seconds", map[string]string{"worker": victim.ID})

	// 3,000 more; the victim dies under load, after a scrape and 1,500
	// more requests. Two clients: the second before the kill must not
	// hold every request since the last scrape, or the bound below would
	// hold even if the victim's counts were all lost.
	second := startJobLoad(t, p.app, 2, 3000)
	watch := watchCounter(p.admin, 100*time.Millisecond, "example_jobs_total", jobsTotal)
	second.waitOK(t, 500)
	before := jobsTotal(p.scrape())
	second.waitOK(t, 2000)
	killed := time.Now()
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.waitWorkers(30*time.Second, "the killed worker replaced", func(ws []workerInfo) bool {
		ready := 0
		for _, w := range ws {
			if w.State == "ready" && w.PID != victim.PID {
				ready++
			}
		}
		return ready == 2 && len(ws) == 2
	})
	second.waitOK(t, 3000)
	second.wait()
	watch.stop(t)

	mfs = p.scrape()
	got := jobsTotal(mfs)
	ok := first.ok.Load() + second.ok.Load()
	failed := second.failed.Load()
	// What the victim counted after its last snapshot is lost: at most the
	// requests of the snapshot interval (1s) before the kill, with 250ms
	// for a loaded machine's scheduling.
	lastSecond := second.doneBetween(killed.Add(-time.Second), killed)
	bound := second.doneBetween(killed.Add(-1250*time.Millisecond), killed)
	t.Logf("example_jobs_total %v; %d requests succeeded, %d failed; %d lost; %d succeeded in the second before the kill",
		got, ok, failed, int64(ok)-int64(got), lastSecond)
	if got < before {
		t.Errorf("example_jobs_total went down from %v before the kill to %v", before, got)
	}
	if got > float64(ok+failed) {
		t.Errorf("example_jobs_total = %v, more than the %d requests sent", got, ok+failed)
	}
	if got < float64(ok)-float64(bound) {
		t.Errorf("example_jobs_total = %v: lost %v of %d successful requests, more than the %d of the last snapshot interval before the kill",
			got, float64(ok)-got, ok, bound)
	}

	// Per-worker series: one per live worker, the replacement's own.
	now, err := p.workers()
	if err != nil {
		t.Fatal(err)
	}
	ids = ids[:0]
	for _, w := range now {
		ids = append(ids, w.ID)
	}
	sort.Strings(ids)
	if got := workerLabels(mfs["go_goroutines"]); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("go_goroutines workers %v after the replacement, want %v", got, ids)
	}
	if start, _ := value(mfs, "process_start_time_seconds", map[string]string{"worker": victim.ID}); start <= startBefore {
		t.Errorf("process_start_time_seconds{worker=%q} = %v, not the replacement's (the victim's was %v)", victim.ID, start, startBefore)
	}
	for name, want := range map[string]float64{
		"herd_export_folded_workers_total": 1,
		"herd_export_snapshots_skipped":    0,
		"herd_metrics_files_skipped":       0, // the export directory is no metric file
	} {
		if v, found := value(mfs, name, nil); !found || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, found, want)
		}
	}
	for _, m := range mfs["herd_export_families_dropped"].GetMetric() {
		if m.GetGauge().GetValue() != 0 {
			t.Errorf("families dropped: %v", m)
		}
	}

	// Every exposition format: promtool has nothing to say about the text,
	// and the protobuf one (which carries native histograms) decodes.
	body := scrapeBody(t, p.admin, "")
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\n--- /metrics:\n%s", err, out, body)
	}
	pb := scrapeBody(t, p.admin, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	dec := expfmt.NewDecoder(bytes.NewReader(pb), expfmt.NewFormat(expfmt.TypeProtoDelim))
	n := 0
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("protobuf /metrics, family %d: %v", n, err)
		}
		n++
	}
	if n < len(mfs) {
		t.Errorf("protobuf /metrics has %d families, the text one %d", n, len(mfs))
	}

	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}

// In one process (-workers 0) the exported metrics are served too, with
// the process's file id as its worker label.
func TestClientGolangSingleProcess(t *testing.T) {
	p := startClientGolang(t, "-workers", "0")
	p.waitReady(1)
	sendN(t, keepAliveClient(), p.app, 300, 4, func(i int) string { return fmt.Sprintf("/job?kind=k%d", i%3) })
	mfs := p.scrape()
	if got := jobsTotal(mfs); got != 300 {
		t.Errorf("example_jobs_total = %v, want 300", got)
	}
	if got := workerLabels(mfs["go_goroutines"]); fmt.Sprint(got) != "[0a]" {
		t.Errorf("go_goroutines workers %v, want [0a]", got)
	}
	if v, _ := value(mfs, "http_requests_total", map[string]string{"route": "/job", "code": "200"}); v != 300 {
		t.Errorf("herd's http_requests_total{route=/job} = %v, want 300", v)
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}
