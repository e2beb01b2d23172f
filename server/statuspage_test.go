package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

// getPage fetches url with basic credentials (none when user is "") and
// returns the response and its body.
func getPage(t *testing.T, url, user, pass string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, string(b)
}

// The page shows one row per live worker (a slot being replaced has two,
// sharing the slot's chart), a chart per slot and one of them all, the
// exits and the last reload, escapes what it shows, loads nothing from
// anywhere, and needs the admin credentials.
func TestStatusPageShowsWorkersChartsExitsAndReload(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ago := func(s int) time.Time { return now.Add(-time.Duration(s) * time.Second) }
	old := prefork.WorkerInfo{Slot: 0, ID: "0a", PID: 4100, State: prefork.StateStopping, Started: ago(300), Requests: 900}
	successor := prefork.WorkerInfo{Slot: 0, ID: "0b", PID: 4102, State: prefork.StateReady, Started: ago(5), Requests: 40, RSS: 18 << 20,
		InFlight: 17, CPUSeconds: 1.25, QueueLength: 23, QueueLimit: 4096}
	other := prefork.WorkerInfo{Slot: 1, ID: "1a", PID: 4101, State: prefork.StateReady, Started: ago(300), Requests: 1234567}
	ws := []prefork.WorkerInfo{old, successor, other}

	h := newHistory()
	h.record(ago(10), []prefork.WorkerInfo{{Slot: 0, PID: 4100, Requests: 700}, {Slot: 1, PID: 4101, Requests: 1234000}})
	h.record(ago(6), []prefork.WorkerInfo{{Slot: 0, PID: 4100, Requests: 800}, {Slot: 1, PID: 4101, Requests: 1234300}})
	h.record(ago(2), []prefork.WorkerInfo{{Slot: 0, PID: 4100, Requests: 900}, {Slot: 0, PID: 4102, Requests: 40}, {Slot: 1, PID: 4101, Requests: 1234567}})
	h.exited(ago(30), prefork.WorkerExit{Slot: 1, ID: "1b", PID: 3999, Reason: prefork.ExitTimeout, Status: -1, Signal: syscall.SIGKILL, Killed: true, Ran: time.Minute})
	h.exited(ago(20), prefork.WorkerExit{Slot: 0, ID: "0b", PID: 3998, Reason: prefork.ExitReloaded, Ran: time.Hour})
	h.reloadStarted(ago(15))
	h.reloadEnded(ago(1), "rolled_back", `<script>alert("canary")</script>`)

	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	hash, _ := hashPassword("s3cret", minRounds)
	os.WriteFile(users, []byte("ops:"+hash+"\n"), 0o600)
	cfg := Config{Workers: 2, MetricsBind: "off", AdminBasicAuthFile: users}
	sec, err := newAdminSecurity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := startStatusPage(cfg, dir, func() []prefork.WorkerInfo { return ws }, "127.0.0.1:8080", h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	g := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, nil })
	srv := httptest.NewServer(adminMux(g, st.workers, dir, sec, st.routes))
	defer srv.Close()

	if resp, _ := getPage(t, srv.URL+"/", "", ""); resp.StatusCode != 401 {
		t.Errorf("GET / without credentials: %s, want 401", resp.Status)
	}
	resp, page := getPage(t, srv.URL+"/", "ops", "s3cret")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q: the page must be allowed to load nothing", csp)
	}
	count := func(s string) int { return strings.Count(page, s) }
	for _, c := range []struct {
		what string
		got  int
		want int
	}{
		{`worker rows`, count(`<tr class="worker"`), 3},
		{`a chart spanning slot 0's two rows`, count(`rowspan="2"`), 1},
		{`slot charts`, count(`<svg class="spark"`), 2},
		{`drawn rate lines (all workers, slot 0, slot 1)`, count(`<polyline class="rate"`), 3},
		{`exit rows`, count(`<tr class="exit"`), 2},
		{`scripts`, count(`<script`), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
	for _, want := range []string{
		`data-pid="4102"`, `data-pid="4100"`, `data-pid="4101"`,
		`<span class="pill stopping"`, `1,234,567`, `18.0 MiB`, // successor's memory
		`<td class="num">17</td>`, `<td class="num">1.25 s</td>`, // successor's in-flight requests and CPU time
		`title="23 connections waiting to be accepted; backlog 4096">23</td>`, // and its slot's queue
		`signal: killed (SIGKILL from the master)`, `timeout`, `reloaded`,
		`rolled_back`, `&lt;script&gt;alert(&#34;canary&#34;)&lt;/script&gt;`,
		`<meta http-equiv="refresh" content="5">`,
		`>66.8<`, // slot 1's last rate: 267 requests in 4 s
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Self-contained: no address of anything outside the page.
	if m := regexp.MustCompile(`(?i)(src=|<link|@import|url\(|https?://)`).FindString(page); m != "" {
		t.Errorf("the page refers to something outside itself: %q", m)
	}
}

// In one process (-workers 0) the page shows that process as slot 0, and
// the master's sampling draws its chart as requests arrive.
func TestStatusPageInOneProcess(t *testing.T) {
	t.Parallel()
	srv := startQuiet(t, Config{MetricsBind: "127.0.0.1:0"}, testApp(nil, nil), nil)
	app, admin := srv.Addrs()[0].String(), srv.AdminAddr().String()
	var page string
	testutil.EventuallyTrue(t, 30*time.Second, "a drawn chart of the process's requests", func() bool {
		if resp, _ := getPage(t, "http://"+app+"/hello", "", ""); resp.StatusCode != 200 {
			t.Fatalf("GET /hello: %s", resp.Status)
		}
		_, page = getPage(t, "http://"+admin+"/", "", "")
		return strings.Count(page, `<polyline class="rate"`) == 2
	})
	if n := strings.Count(page, `<tr class="worker"`); n != 1 {
		t.Errorf("%d worker rows, want 1", n)
	}
	for _, want := range []string{fmt.Sprintf(`data-pid="%d"`, os.Getpid()), `one process (-workers 0)`, `no reload (one process`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestStatusPageFormats(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ got, want string }{
		{fmtAge(0), "0s"}, {fmtAge(59 * time.Second), "59s"}, {fmtAge(65 * time.Second), "1m 05s"},
		{fmtAge(2*time.Hour + 7*time.Minute), "2h 07m"}, {fmtAge(76 * time.Hour), "3d 04h"}, {fmtAge(-time.Second), "0s"},
		{fmtBytes(512), "512 B"}, {fmtBytes(1536), "1.5 KiB"}, {fmtBytes(18 << 20), "18.0 MiB"}, {fmtBytes(3 << 30), "3.0 GiB"},
		{fmtCPU(0.42), "0.42 s"}, {fmtCPU(12.34), "12.3 s"}, {fmtCPU(185), "3m 05s"},
		{fmtCount(0), "0"}, {fmtCount(999), "999"}, {fmtCount(1000), "1,000"}, {fmtCount(1234567), "1,234,567"},
		{fmtRate(0), "0"}, {fmtRate(0.5), "0.50"}, {fmtRate(12.34), "12.3"}, {fmtRate(2784.4), "2784"}, {fmtRate(50), "50"},
		{fmt.Sprint(niceCeil(0)), "1"}, {fmt.Sprint(niceCeil(1.5)), "2"}, {fmt.Sprint(niceCeil(3)), "5"},
		{fmt.Sprint(niceCeil(7)), "10"}, {fmt.Sprint(niceCeil(10)), "10"}, {fmt.Sprint(niceCeil(23456)), "50000"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// A chart places the newest point at the right edge and the peak at the
// top, and draws nothing from fewer than two points.
func TestChartGeometry(t *testing.T) {
	t.Parallel()
	now := time.Now()
	c := newChart([]ratePoint{{now.Add(-sampleEvery), 5}}, now, 100, 40, 10)
	if c.Line != "" {
		t.Errorf("one point drawn: %q", c.Line)
	}
	window := time.Duration(sampleKeep) * sampleEvery
	c = newChart([]ratePoint{{now.Add(-2 * window), 1}, {now.Add(-window / 2), 10}, {now, 0}}, now, 100, 40, 10)
	if c.Line != "50.0,2.0 100.0,38.0" {
		t.Errorf("line %q, want the peak half way at the top and the last point at the right edge", c.Line)
	}
	if c.Area != "50.0,40 50.0,2.0 100.0,38.0 100.0,40" || c.Max != "10" || c.Half != "5" {
		t.Errorf("area %q, labels %q %q", c.Area, c.Max, c.Half)
	}
}
