package integration

// herd-exporter reading the run directory of a live herd master.

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// flattenFamilies turns families into name{labels} -> value, with
// histograms as their _bucket, _sum and _count samples.
func flattenFamilies(mfs map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	key := func(name string, ls []*dto.LabelPair, extra ...string) string {
		var parts []string
		for _, l := range ls {
			parts = append(parts, l.GetName()+"="+strconv.Quote(l.GetValue()))
		}
		parts = append(parts, extra...)
		sort.Strings(parts)
		return name + "{" + strings.Join(parts, ",") + "}"
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[key(name, m.GetLabel())] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key(name, m.GetLabel())] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[key(name, m.GetLabel())] = m.GetUntyped().GetValue()
			case m.Summary != nil:
				out[key(name+"_count", m.GetLabel())] = float64(m.GetSummary().GetSampleCount())
				out[key(name+"_sum", m.GetLabel())] = m.GetSummary().GetSampleSum()
			case m.Histogram != nil:
				h := m.GetHistogram()
				out[key(name+"_count", m.GetLabel())] = float64(h.GetSampleCount())
				out[key(name+"_sum", m.GetLabel())] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[key(name+"_bucket", m.GetLabel(), "le="+strconv.Quote(fmt.Sprint(b.GetUpperBound())))] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

func scrapeURL(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s does not parse: %v", url, err)
	}
	return mfs
}

// TestExporterReadsHerdRunDirectory points herd-exporter at the run
// directory of a live herd master: what it serves must equal the master's
// own /metrics, value for value (herd's own herd_* families aside).
func TestExporterReadsHerdRunDirectory(t *testing.T) {
	t.Parallel()
	exporter := filepath.Join(t.TempDir(), "herd-exporter")
	if out, err := exec.Command("go", "build", "-o", exporter, "github.com/herdhttp/herd/cmd/herd-exporter").CombinedOutput(); err != nil {
		t.Fatalf("building herd-exporter: %v\n%s", err, out)
	}
	p := startHello(t, "-workers", "2")
	p.waitReady(2)
	sendN(t, keepAliveClient(), p.app, 200, 4, func(i int) string { return fmt.Sprintf("/users/%d", i) })
	sendN(t, freshConnClient(), p.app, 100, 4, func(int) string { return "/hello" })

	runDir := ""
	for _, l := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(l, "master started") {
			runDir = logField(l, "metrics_dir")
		}
	}
	if runDir == "" {
		t.Fatalf("the master's start line names no metrics_dir:\n%s", p.log.String())
	}
	e := startRaw(t, exec.Command(exporter, "-dir", runDir, "-bind", "127.0.0.1:0"))
	addr := logField(e.waitLog(t, "herd-exporter started", 10*time.Second), "bind")

	want := flattenFamilies(p.scrape())
	got := flattenFamilies(scrapeURL(t, "http://"+addr+"/metrics"))
	n := 0
	for k, v := range want {
		if strings.HasPrefix(k, "herd_") {
			continue
		}
		n++
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: exporter %v (present %v), master %v", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !strings.HasPrefix(k, "herd_") {
			t.Errorf("%s: served by the exporter only", k)
		}
	}
	if n < 10 {
		t.Errorf("only %d samples compared", n)
	}
	if v := got[`http_requests_total{code="200",method="GET",route="/users/{id}"}`]; v != 200 {
		t.Errorf("exporter: /users/{id} count %v, want 200", v)
	}
	if code := e.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Errorf("herd-exporter exit status %d after SIGTERM", code)
	}
}
