package integration

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// chromium returns Debian's chromium, failing when it is missing.
func chromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install Debian's chromium package (make deps)")
	}
	return p
}

// renderDOM loads url in headless chromium and returns the DOM after the
// page has loaded. Chromium and every process it starts are killed if it
// takes longer than within, and when it is done.
func renderDOM(t *testing.T, url string, within time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium(t), "--headless", "--no-sandbox", "--disable-gpu",
		"--no-first-run", "--disable-extensions", "--user-data-dir="+t.TempDir(), "--dump-dom", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers left behind, if any
	}
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v (context: %v)\n%s", url, err, ctx.Err(), stderr.String())
	}
	return string(out)
}

// statusPage fetches the admin listener's status page.
func statusPage(t *testing.T, admin string) string {
	t.Helper()
	code, body := getBody(t, admin+"/")
	if code != 200 {
		t.Fatalf("GET %s/: %d\n%s", admin, code, body)
	}
	return body
}

var (
	workerRowRE = regexp.MustCompile(`<tr class="worker" data-slot="(\d+)" data-pid="(\d+)"`)
	sparkRE     = regexp.MustCompile(`(?s)<svg class="spark".*?</svg>`)
	totalRE     = regexp.MustCompile(`(?s)<svg class="total".*?</svg>`)
	pointsRE    = regexp.MustCompile(`<polyline class="rate" points="([^"]+)"`)
)

// drawnPoints returns how many points the rate line of the chart svg has.
func drawnPoints(svg string) int {
	m := pointsRE.FindStringSubmatch(svg)
	if m == nil {
		return 0
	}
	return len(strings.Fields(m[1]))
}

// The status page, as a real browser renders it: one row per live worker
// (the pids /workers lists) and, after some load, a drawn chart of
// requests per second for every slot and for all of them.
func TestStatusPageInHeadlessChromium(t *testing.T) {
	t.Parallel()
	chromium(t)
	p := startHello(t, "-workers", "2")
	ws := p.waitReady(2)
	l := startLoad(t, p.app, "/hello", 4, 2*time.Minute)
	l.waitFor(t, 200)
	// The master samples every few seconds: wait (over plain HTTP) until
	// every chart has a line of at least two points.
	testutil.Eventually(t, 60*time.Second, func() error {
		page := statusPage(t, p.admin)
		sparks := sparkRE.FindAllString(page, -1)
		if len(sparks) != 2 {
			return fmt.Errorf("%d slot charts, want 2", len(sparks))
		}
		for i, s := range append(sparks, totalRE.FindString(page)) {
			if n := drawnPoints(s); n < 2 {
				return fmt.Errorf("chart %d has %d points", i, n)
			}
		}
		return nil
	})

	dom := renderDOM(t, p.admin+"/", 90*time.Second)
	l.check(t)
	if !strings.Contains(dom, "<title>herd") {
		t.Fatalf("chromium rendered something else:\n%s", dom)
	}
	want := map[int]int{} // pid -> slot
	for _, w := range ws {
		want[w.PID] = w.Slot
	}
	rows := workerRowRE.FindAllStringSubmatch(dom, -1)
	if len(rows) != len(want) {
		t.Errorf("%d worker rows in the rendered page, want one per live worker (%d)", len(rows), len(want))
	}
	for _, r := range rows {
		slot, _ := strconv.Atoi(r[1])
		pid, _ := strconv.Atoi(r[2])
		if s, ok := want[pid]; !ok || s != slot {
			t.Errorf("row for slot %d pid %d; the live workers are %v (pid: slot)", slot, pid, want)
		}
	}
	sparks := sparkRE.FindAllString(dom, -1)
	if len(sparks) != 2 {
		t.Errorf("%d slot charts rendered, want 2", len(sparks))
	}
	for i, s := range append(sparks, totalRE.FindString(dom)) {
		if n := drawnPoints(s); n < 2 {
			t.Errorf("rendered chart %d has %d points, want a line:\n%s", i, n, s)
		}
	}
	if !strings.Contains(dom, "no reload yet") || !strings.Contains(dom, "No worker has exited yet.") {
		t.Errorf("the rendered page lacks its reload and exits sections:\n%s", dom)
	}
}

// With -workers 0 the page shows the one process.
func TestStatusPageOfOneProcess(t *testing.T) {
	t.Parallel()
	p := startHello(t, "-workers", "0")
	p.waitReady(1)
	page := statusPage(t, p.admin)
	rows := workerRowRE.FindAllStringSubmatch(page, -1)
	if len(rows) != 1 || rows[0][1] != "0" || rows[0][2] != strconv.Itoa(p.cmd.Process.Pid) {
		t.Errorf("worker rows %q, want one: slot 0, pid %d", rows, p.cmd.Process.Pid)
	}
	if !strings.Contains(page, "one process (-workers 0)") {
		t.Errorf("the page does not say it is one process:\n%s", page)
	}
}
