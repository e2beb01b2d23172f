package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sendN sends n GET requests for the paths path(i) with c concurrent
// clients and fails the test on any error or non-200 response.
func sendN(t *testing.T, client *http.Client, base string, n, c int, path func(i int) string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				resp, err := client.Get(base + path(i))
				if err != nil {
					errs <- err
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("%s: %s", path(i), resp.Status)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed < 5 {
			t.Error(err)
		}
		failed++
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests failed", failed, n)
	}
}

func keepAliveClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}

func freshConnClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// checkExactCounts sends exactly n requests to /hello over keep-alive and n
// to /users/{id} over a fresh connection each, then checks that /metrics
// counts exactly n for each route pattern, in the counter and in the
// duration histogram.
func checkExactCounts(t *testing.T, p *proc, n int) {
	t.Helper()
	sendN(t, keepAliveClient(), p.app, n, 8, func(int) string { return "/hello" })
	sendN(t, freshConnClient(), p.app, n, 8, func(i int) string { return fmt.Sprintf("/users/%d", i) })
	mfs := p.scrape()
	for _, route := range []string{"/hello", "/users/{id}"} {
		got, ok := value(mfs, "http_requests_total", map[string]string{"method": "GET", "route": route, "code": "200"})
		if !ok || got != float64(n) {
			t.Errorf("http_requests_total{route=%q} = %v (present %v), want %d", route, got, ok, n)
		}
		got, ok = value(mfs, "http_request_duration_seconds", map[string]string{"method": "GET", "route": route})
		if !ok || got != float64(n) {
			t.Errorf("http_request_duration_seconds_count{route=%q} = %v (present %v), want %d", route, got, ok, n)
		}
	}
	// Raw paths never become labels.
	for _, m := range mfs["http_requests_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "route" && strings.HasPrefix(lp.GetValue(), "/users/") && lp.GetValue() != "/users/{id}" {
				t.Errorf("raw path %q became a route label", lp.GetValue())
			}
		}
	}
}

func TestTwoWorkersExactCountsAndCleanStop(t *testing.T) {
	t.Parallel()
	p := startHello(t, "-workers", "2")
	ws := p.waitReady(2)
	master := p.cmd.Process.Pid
	if ws[0].PID == ws[1].PID {
		t.Fatalf("both workers have pid %d", ws[0].PID)
	}
	for _, w := range ws {
		if w.PID == master {
			t.Errorf("worker %d runs in the master's process", w.Slot)
		}
		if pp := parentPID(w.PID); pp != master {
			t.Errorf("worker %d (pid %d) has parent %d, want the master %d", w.Slot, w.PID, pp, master)
		}
	}

	checkExactCounts(t, p, 1000)

	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0\n%s", code, p.log.String())
	}
	for _, w := range ws {
		if alive(w.PID) {
			t.Errorf("worker %d (pid %d) still running after the master exited", w.Slot, w.PID)
		}
	}
}

func TestSingleProcessServesTheSameMetrics(t *testing.T) {
	t.Parallel()
	p := startHello(t, "-workers", "0")
	p.waitReady(1)
	checkExactCounts(t, p, 300)
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}
