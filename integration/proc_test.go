package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// helloBin is the path of examples/hello built by TestMain.
var helloBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herd-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helloBin = filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-o", helloBin, "github.com/herdhttp/herd/examples/hello")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building examples/hello:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running bin/hello.
type proc struct {
	*rawProc
	t     *testing.T
	app   string // http://host:port of the application
	admin string // http://host:port of the admin listener
	dir   string // the run directory of the metric files
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	bindRE  = regexp.MustCompile(`bind=(\S+)`)
	adminRE = regexp.MustCompile(`admin=(\S+)`)
	dirRE   = regexp.MustCompile(`metrics_dir=("(?:[^"\\]|\\.)*"|\S+)`)
)

// startHello starts bin/hello with args plus loopback ports chosen by the
// kernel, waits until it logs its addresses, and kills it at cleanup.
func startHello(t *testing.T, args ...string) *proc {
	t.Helper()
	return startHelloEnv(t, nil, args...)
}

// startHelloEnv is startHello with environ added to the test's environment.
func startHelloEnv(t *testing.T, environ []string, args ...string) *proc {
	t.Helper()
	args = append([]string{"-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0", "-metrics-dir", t.TempDir()}, args...)
	cmd := exec.Command(helloBin, args...)
	if environ != nil {
		cmd.Env = append(os.Environ(), environ...)
	}
	p := &proc{t: t, rawProc: startRaw(t, cmd)}
	line := p.waitLine(t, 20*time.Second, "master started", "serving in one process")
	p.app = "http://" + bindRE.FindStringSubmatch(line)[1]
	p.admin = "http://" + adminRE.FindStringSubmatch(line)[1]
	p.dir = dirRE.FindStringSubmatch(line)[1]
	if d, err := strconv.Unquote(p.dir); err == nil {
		p.dir = d // slog quotes values with spaces or '='
	}
	return p
}

// waitLine waits until the process logs a line containing one of subs and
// returns it; it fails the test if the process exits first or after within.
func (p *rawProc) waitLine(t *testing.T, within time.Duration, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, line := range strings.Split(p.log.String(), "\n") {
			for _, sub := range subs {
				if strings.Contains(line, sub) {
					return line
				}
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before logging %q: %v\n%s", p.cmd.Path, subs, p.err, p.log.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q in %s:\n%s", p.cmd.Path, subs, within, p.log.String())
		}
	}
}

// workerInfo mirrors an element of GET /workers.
type workerInfo struct {
	Slot     int    `json:"slot"`
	ID       string `json:"id"`
	PID      int    `json:"pid"`
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
	Requests uint64 `json:"requests"`
}

func (p *proc) workers() ([]workerInfo, error) {
	resp, err := http.Get(p.admin + "/workers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ws []workerInfo
	if err := json.NewDecoder(resp.Body).Decode(&ws); err != nil {
		return nil, err
	}
	return ws, nil
}

// waitReady polls the admin listener (never the application, whose requests
// are counted) until n workers are ready.
func (p *proc) waitReady(n int) []workerInfo {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ws, err := p.workers()
		if err == nil {
			ready := 0
			for _, w := range ws {
				if w.State == "ready" {
					ready++
				}
			}
			if ready == n && len(ws) == n {
				return ws
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("%d workers not ready in 20 s:\n%s", n, p.log.String())
	return nil
}

// stop sends sig and waits for the exit status.
func (p *proc) stop(sig syscall.Signal, within time.Duration) int {
	p.t.Helper()
	p.cmd.Process.Signal(sig)
	return p.wait(within)
}

// wait waits for the exit status.
func (p *proc) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("hello did not exit within %s:\n%s", within, p.log.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// scrape fetches and parses the admin /metrics in the text format.
func (p *proc) scrape() map[string]*dto.MetricFamily {
	p.t.Helper()
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		p.t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		p.t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// value returns the value of the sample of family name whose labels
// include want (counter, gauge or untyped), or of the count of a histogram.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// procState returns the state letter of /proc/PID/stat ("" when the process
// is gone). PID 1 here reaps orphans lazily, so a dead process may still be
// a zombie ("Z") for a while: callers treat "Z" as gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// parentPID returns the parent of pid from /proc.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, _ := strconv.Atoi(f[1])
	return n
}

func alive(pid int) bool {
	st := procState(pid)
	return st != "" && st != "Z"
}
