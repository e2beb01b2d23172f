package integration

// A real Prometheus server (Debian's prometheus package) scraping two herd
// masters as two hosts, over loopback.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// promServer is a Prometheus server started by a test.
type promServer struct {
	url string
	p   *rawProc
}

// freeLoopbackPort returns a port that was free a moment ago.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// startPrometheus starts /usr/bin/prometheus scraping the given admin
// listeners (host:port) every second as job "herd", with its storage in a
// temporary directory, and waits until it is ready.
func startPrometheus(t *testing.T, targets []string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: install Debian's prometheus package (make deps)")
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: herd
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool(t), "check", "config", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("the generated config does not check: %v\n%s", err, out)
	}
	// The port is chosen before Prometheus binds it; another process may
	// take it in between, so try a few.
	for attempt := 0; attempt < 3; attempt++ {
		addr := "127.0.0.1:" + freeLoopbackPort(t)
		p := startRaw(t, exec.Command(bin,
			"--config.file="+cfgPath,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprint("data", attempt)),
			"--web.listen-address="+addr,
			"--web.console.templates="+filepath.Join(dir, "none"),
			"--web.console.libraries="+filepath.Join(dir, "none"),
			"--log.level=warn",
		))
		s := &promServer{url: "http://" + addr, p: p}
		ready := false
		testutil.WaitUntil(20*time.Second, func() error {
			select {
			case <-p.done:
				return nil // it will not get ready: see why below
			default:
			}
			resp, err := http.Get(s.url + "/-/ready")
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("/-/ready: %s", resp.Status)
			}
			ready = true
			return nil
		})
		if ready {
			t.Cleanup(func() { s.p.stop(t, syscall.SIGTERM, 15*time.Second) })
			return s
		}
		if !strings.Contains(p.log.String(), "address already in use") {
			t.Fatalf("prometheus did not become ready in 20 s:\n%s", p.log.String())
		}
	}
	t.Fatal("prometheus found no free port in 3 attempts")
	return nil
}

// promResult is one element of an instant vector.
type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (r promResult) float(t *testing.T) float64 {
	t.Helper()
	s, _ := r.Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("sample value %v: %v", r.Value[1], err)
	}
	return v
}

// query evaluates expr now through the HTTP API. A PromQL error is
// returned as err; transport failures fail the test.
func (s *promServer) query(t *testing.T, expr string) ([]promResult, error) {
	t.Helper()
	resp, err := http.Get(s.url + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Warnings  []string
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("query %q: %s: %v", expr, resp.Status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	if len(r.Warnings) > 0 {
		return nil, fmt.Errorf("warnings: %v", r.Warnings)
	}
	switch r.Data.ResultType {
	case "vector":
		var v []promResult
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			t.Fatal(err)
		}
		return v, nil
	case "scalar":
		var sc [2]any
		if err := json.Unmarshal(r.Data.Result, &sc); err != nil {
			t.Fatal(err)
		}
		return []promResult{{Metric: map[string]string{}, Value: sc}}, nil
	}
	return nil, fmt.Errorf("result type %s", r.Data.ResultType)
}

// waitValue polls expr (one sample) until it equals want, failing after within.
func (s *promServer) waitValue(t *testing.T, expr string, want float64, within time.Duration) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		res, err := s.query(t, expr)
		switch {
		case err != nil:
			t.Fatalf("query %q: %v", expr, err)
		case len(res) > 1:
			t.Fatalf("query %q: %d samples, want one", expr, len(res))
		case len(res) == 0:
			return fmt.Errorf("%s has no result, want %v", expr, want)
		}
		if v := res[0].float(t); v != want {
			return fmt.Errorf("%s = %s, want %v", expr, strconv.FormatFloat(v, 'g', -1, 64), want)
		}
		return nil
	})
}

// hostPort strips the scheme of a proc's URL.
func hostPort(u string) string { return strings.TrimPrefix(u, "http://") }

// TestPrometheusScrapesTwoMasters runs two herd masters with two workers
// each, as two hosts, scraped by a real Prometheus every second. After
// exactly N requests, sum(http_requests_total) in PromQL must be N; then
// every expression of the Grafana dashboard must evaluate without error and
// with data, and the dashboard's variables must resolve.
func TestPrometheusScrapesTwoMasters(t *testing.T) {
	a := startHello(t, "-workers", "2")
	b := startHello(t, "-workers", "2")
	a.waitReady(2)
	b.waitReady(2)
	prom := startPrometheus(t, []string{hostPort(a.admin), hostPort(b.admin)})
	prom.waitValue(t, `count(up{job="herd"} == 1)`, 2, 20*time.Second)

	// Exactly N requests: 300 to host a, 200 to host b, over several routes.
	const nA, nB = 300, 200
	sendN(t, keepAliveClient(), a.app, 200, 4, func(int) string { return "/hello" })
	sendN(t, freshConnClient(), a.app, 100, 4, func(i int) string { return fmt.Sprintf("/users/%d", i) })
	sendN(t, keepAliveClient(), b.app, 150, 4, func(i int) string { return fmt.Sprintf("/users/%d", i) })
	sendN(t, keepAliveClient(), b.app, 50, 4, func(int) string { return "/sleep/1" })

	prom.waitValue(t, `sum(http_requests_total)`, nA+nB, 30*time.Second)
	prom.waitValue(t, `sum(http_request_duration_seconds_count)`, nA+nB, 10*time.Second)
	byInstance, err := prom.query(t, `sum by (instance) (http_requests_total)`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{hostPort(a.admin): nA, hostPort(b.admin): nB}
	for _, r := range byInstance {
		if got := r.float(t); got != want[r.Metric["instance"]] {
			t.Errorf("instance %s: %v requests, want %v", r.Metric["instance"], got, want[r.Metric["instance"]])
		}
	}
	if len(byInstance) != 2 {
		t.Errorf("%d instances, want 2", len(byInstance))
	}
	routes, err := prom.query(t, `sum by (route) (http_requests_total)`)
	if err != nil {
		t.Fatal(err)
	}
	gotRoutes := map[string]float64{}
	for _, r := range routes {
		gotRoutes[r.Metric["route"]] = r.float(t)
	}
	wantRoutes := map[string]float64{"/hello": 200, "/users/{id}": 250, "/sleep/{ms}": 50}
	for r, n := range wantRoutes {
		if gotRoutes[r] != n {
			t.Errorf("route %s: %v, want %v (all: %v)", r, gotRoutes[r], n, gotRoutes)
		}
	}

	t.Run("dashboard expressions", func(t *testing.T) {
		exprs := dashboardExprs(t)
		names := make([]string, 0, len(exprs))
		for k := range exprs {
			names = append(names, k)
		}
		sort.Strings(names)
		// Every expression must evaluate without error. rate() needs two
		// scrapes inside its window after the traffic, so the expressions
		// without data yet are polled for a little while (one deadline
		// for all of them); then every one must have data, which proves
		// that its metric names are ones herd exports.
		pending := names
		testutil.WaitUntil(10*time.Second, func() error {
			var next []string
			for _, name := range pending {
				res, err := prom.query(t, exprs[name])
				switch {
				case err != nil:
					t.Errorf("panel %s: %v\n%s", name, err, exprs[name])
				case len(res) == 0:
					next = append(next, name)
				}
			}
			pending = next
			if len(pending) > 0 {
				return fmt.Errorf("%d panels without data", len(pending))
			}
			return nil
		})
		for _, name := range pending {
			t.Errorf("panel %s: no data in 10 s (a metric name that herd does not export?)\n%s", name, exprs[name])
		}
	})

	t.Run("dashboard variables", func(t *testing.T) {
		// label_values(http_requests_total, job) and
		// label_values(http_requests_total{job=~"$job"}, instance), as
		// Grafana asks Prometheus for them.
		for _, c := range []struct{ label, match, want string }{
			{"job", "http_requests_total", "herd"},
			{"instance", `http_requests_total{job=~".*"}`, hostPort(a.admin)},
		} {
			resp, err := http.Get(prom.url + "/api/v1/label/" + c.label + "/values?match[]=" + url.QueryEscape(c.match))
			if err != nil {
				t.Fatal(err)
			}
			var r struct {
				Status string   `json:"status"`
				Data   []string `json:"data"`
			}
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			found := false
			for _, v := range r.Data {
				found = found || v == c.want
			}
			if r.Status != "success" || !found {
				t.Errorf("label values of %s for %s: %s %v, want %q among them", c.label, c.match, r.Status, r.Data, c.want)
			}
		}
	})
}
