package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"

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

// rawProc is a process started by a test whose stderr lines are kept.
type rawProc struct {
	cmd  *exec.Cmd
	log  *testutil.SyncBuffer
	done chan struct{}
	err  error // from Wait, valid once done is closed
}

// startRaw starts cmd, collects its stderr and stops it (SIGQUIT, then
// SIGKILL) at cleanup if it is still running.
func startRaw(t *testing.T, cmd *exec.Cmd) *rawProc {
	t.Helper()
	p := &rawProc{cmd: cmd, log: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", filepath.Base(cmd.Path), p.log.String())
		}
	})
	return p
}

// waitLine waits until the process logs a line containing one of subs and
// returns it; it fails the test if the process exits first or after within.
func (p *rawProc) waitLine(t *testing.T, within time.Duration, subs ...string) string {
	t.Helper()
	find := func() string {
		for _, line := range strings.Split(p.log.String(), "\n") {
			for _, sub := range subs {
				if strings.Contains(line, sub) {
					return line
				}
			}
		}
		return ""
	}
	var found string
	if err := testutil.WaitUntil(within, func() error {
		if found = find(); found != "" {
			return nil
		}
		select {
		case <-p.done:
			if found = find(); found != "" { // logged just before exiting
				return nil
			}
			t.Fatalf("%s exited (%v) before logging %q:\n%s", filepath.Base(p.cmd.Path), p.err, subs, p.log.String())
		default:
		}
		return errors.New("not yet")
	}); err != nil {
		t.Fatalf("%s did not log %q in %s:\n%s", filepath.Base(p.cmd.Path), subs, within, p.log.String())
	}
	return found
}

// waitLog waits until a stderr line contains substr and returns that line.
func (p *rawProc) waitLog(t *testing.T, substr string, within time.Duration) string {
	t.Helper()
	return p.waitLine(t, within, substr)
}

// stop sends sig and returns the exit status, failing if the process does
// not exit within the given time.
func (p *rawProc) stop(t *testing.T, sig syscall.Signal, within time.Duration) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of %v", filepath.Base(p.cmd.Path), within, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// logField finds key's value in a text (key=value) or JSON ("key":"value")
// log line.
func logField(line, key string) string {
	re := regexp.MustCompile(`(?:^|[\s{,])"?` + regexp.QuoteMeta(key) + `"?[=:]"?([^\s",}]+)`)
	if m := re.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	return ""
}

// proc is one running bin/hello.
type proc struct {
	*rawProc
	t     *testing.T
	app   string // http://host:port of the application
	admin string // http://host:port of the admin listener
	dir   string // the run directory of the metric files
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
	var ws []workerInfo
	if err := testutil.WaitUntil(20*time.Second, func() error {
		var err error
		if ws, err = p.workers(); err != nil {
			return err
		}
		ready := 0
		for _, w := range ws {
			if w.State == "ready" {
				ready++
			}
		}
		if ready != n || len(ws) != n {
			return fmt.Errorf("workers %+v", ws)
		}
		return nil
	}); err != nil {
		p.t.Fatalf("%d workers not ready in 20 s (%v):\n%s", n, err, p.log.String())
	}
	return ws
}

// workerPIDs returns the pids of the workers listed by the admin listener
// at admin, once there is at least one and all are ready.
func workerPIDs(t *testing.T, admin string) map[int]bool {
	t.Helper()
	pids := map[int]bool{}
	testutil.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get(admin + "/workers")
		if err != nil {
			return err
		}
		var ws []workerInfo
		err = json.NewDecoder(resp.Body).Decode(&ws)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("/workers: %v", err)
		}
		clear(pids)
		for _, w := range ws {
			pids[w.PID] = true
			if w.State != "ready" {
				return fmt.Errorf("not all workers ready: %+v", ws)
			}
		}
		if len(ws) == 0 {
			return errors.New("/workers lists no worker")
		}
		return nil
	})
	return pids
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
