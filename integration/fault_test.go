package integration

// The fault suite: each test injects one fault into a running
// bin/hello on loopback and checks that the service stays up and that
// nothing is lost or miscounted. docs/reliability.md lists what each test
// proves and the figures it last measured (the t.Logf lines).

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
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

// runDir returns the run directory the master logged (slog quotes it when
// it holds spaces, quotes or '=').
func (p *proc) runDir() string {
	p.t.Helper()
	m := dirRE.FindStringSubmatch(p.log.String())
	if m == nil {
		p.t.Fatalf("no metrics_dir in the log:\n%s", p.log.String())
	}
	if dir, err := strconv.Unquote(m[1]); err == nil {
		return dir
	}
	return m[1]
}

// scrapeErr is scrape for goroutines (which must not call t.Fatal).
func scrapeErr(admin string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

var helloLabels = map[string]string{"method": "GET", "route": "/hello", "code": "200"}

// checkNothingLost checks the invariant of a test in which requests may
// fail (their worker died): every request a client saw succeed is counted,
// and nothing is counted that was not at least attempted.
func (p *proc) checkNothingLost(t *testing.T, l *load) {
	t.Helper()
	ok, failed := l.ok.Load(), l.failed.Load()
	got := p.helloCount()
	if got < float64(ok) {
		t.Errorf("lost requests: http_requests_total = %v, clients saw %d succeed", got, ok)
	}
	if got > float64(ok+failed) {
		t.Errorf("http_requests_total = %v, more than the %d requests sent (%d ok, %d failed)", got, ok+failed, ok, failed)
	}
}

func TestRepeatedKill9OfRandomWorkersUnderLoad(t *testing.T) {
	const workers, clients, kills = 3, 8, 8 // 8 unplanned exits: under the master's crash limit (10 a minute)
	p := startHello(t, "-workers", fmt.Sprint(workers))
	p.waitReady(workers)
	l := startLoad(t, p.app, "/hello", clients, time.Minute)
	l.waitFor(t, 300)
	watch := watchHello(p.admin)
	var worst time.Duration
	for i := range kills {
		ws := p.waitReady(workers)
		victim := ws[rand.IntN(len(ws))]
		killed := time.Now()
		syscall.Kill(victim.PID, syscall.SIGKILL)
		p.waitWorkers(10*time.Second, fmt.Sprintf("kill %d: worker %d replaced", i+1, victim.Slot), func(ws []workerInfo) bool {
			now := readyPIDs(ws)
			return len(now) == workers && !now[victim.PID]
		})
		worst = max(worst, time.Since(killed))
		// The service is up: requests keep succeeding. A random number of
		// them spaces the kills unevenly.
		l.waitFor(t, 200+rand.Int64N(200))
	}
	l.stop()
	watch.stop(t)
	p.checkNothingLost(t, l)
	if f := l.failed.Load(); f > kills*clients {
		t.Errorf("%d requests failed over %d kills; at most the %d in flight per kill may", f, kills, clients)
	}
	restarts := 0
	for _, w := range p.waitReady(workers) {
		restarts += w.Restarts
	}
	if restarts != kills {
		t.Errorf("/workers shows %d restarts, want %d", restarts, kills)
	}
	t.Logf("%d kill -9 under load: %d requests ok, %d failed (in flight on a killed worker), slowest replacement %s, %d scrapes never saw the counter go down",
		kills, l.ok.Load(), l.failed.Load(), worst.Round(time.Millisecond), watch.scrapes.Load())
}

func TestStoppedWorkerUnderLoad(t *testing.T) {
	const clients = 8
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			p := startHello(t, "-workers", "2", "-timeout", "2s", "-listener-mode", mode)
			ws := p.waitReady(2)
			l := startLoad(t, p.app, "/hello", clients, time.Minute)
			l.waitFor(t, 300)
			watch := watchHello(p.admin)
			victim := ws[rand.IntN(2)].PID
			stopped := time.Now()
			syscall.Kill(victim, syscall.SIGSTOP)
			t.Cleanup(func() { syscall.Kill(victim, syscall.SIGKILL) })
			// The other worker keeps serving while this one is frozen.
			l.waitFor(t, 300)
			servedWhileStopped := time.Since(stopped)
			p.waitWorkers(15*time.Second, "the stopped worker is replaced", func(ws []workerInfo) bool {
				now := readyPIDs(ws)
				return len(now) == 2 && !now[victim]
			})
			replaced := time.Since(stopped)
			l.waitFor(t, 300)
			l.stop()
			watch.stop(t)
			p.checkNothingLost(t, l)
			// Only requests on the frozen worker's open connections may
			// fail (reset when it is killed): at most one per client.
			if f := l.failed.Load(); f > clients {
				t.Errorf("%d requests failed; at most %d (one per client) may: %v", f, clients, l.errs)
			}
			t.Logf("SIGSTOP (%s): 300 more requests served %s after the stop; replaced after %s (-timeout 2s); %d ok, %d failed",
				mode, servedWhileStopped.Round(time.Millisecond), replaced.Round(time.Millisecond), l.ok.Load(), l.failed.Load())
		})
	}
}

// copyWithMangle copies the metric file from to the path to, with mangle
// applied to the bytes.
func copyWithMangle(t *testing.T, from, to string, mangle func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, mangle(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBadFilesInTheRunDirectoryAreSkipped(t *testing.T) {
	p := startHello(t, "-workers", "2")
	p.waitReady(2)
	dir := p.runDir()
	l := startLoad(t, p.app, "/hello", 4, time.Minute)
	l.waitFor(t, 300)
	good := filepath.Join(dir, "counter_0a.db")
	bad := map[string]func(path string){
		"counter_9z.db": func(path string) { os.WriteFile(path, nil, 0o600) }, // zero length
		"counter_8z.db": func(path string) { // truncated inside the header
			copyWithMangle(t, good, path, func(b []byte) []byte { return b[:5] })
		},
		"counter_7z.db": func(path string) { // corrupt: the first entry's length is garbage
			copyWithMangle(t, good, path, func(b []byte) []byte {
				copy(b[8:12], []byte{0xff, 0xff, 0xff, 0x7f})
				return b
			})
		},
		"histogram_6z.db": func(path string) { // corrupt: the first key is not JSON
			copyWithMangle(t, good, path, func(b []byte) []byte {
				for i := 12; i < 40; i++ {
					b[i] = '{'
				}
				return b
			})
		},
		"gauge_all_5z.db": func(path string) { // foreign: a PNG
			os.WriteFile(path, append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 4096)...), 0o600)
		},
		"summary_4z.db": func(path string) { // foreign: random bytes
			b := make([]byte, 8192)
			for i := range b {
				b[i] = byte(rand.IntN(256))
			}
			os.WriteFile(path, b, 0o600)
		},
		"unknownkind_3z.db": func(path string) { copyWithMangle(t, good, path, func(b []byte) []byte { return b }) },
		"counter_2z.db":     func(path string) { os.Mkdir(path, 0o700) },         // a directory
		"counter_1z.db":     func(path string) { syscall.Mkfifo(path, 0o600) },   // a FIFO: must not block a scrape
		"counter_0z.db":     func(path string) { os.Symlink("/dev/zero", path) }, // a symlink to a device
	}
	for name, plant := range bad {
		plant(filepath.Join(dir, name))
	}
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a .db file: ignored, not counted\n"), 0o600)
	// A corrupt file at the name of a worker not started yet (slot 0's
	// other lane, used by the next rolling restart).
	copyWithMangle(t, good, filepath.Join(dir, "counter_0b.db"), func(b []byte) []byte {
		copy(b[8:12], []byte{0xff, 0xff, 0xff, 0x7f})
		return b
	})
	wantSkipped := float64(len(bad) + 1)

	l.waitFor(t, 300)
	start := time.Now()
	mfs := p.scrape()
	took := time.Since(start)
	if v, _ := value(mfs, "herd_metrics_files_skipped", nil); v != wantSkipped {
		t.Errorf("herd_metrics_files_skipped = %v, want %v", v, wantSkipped)
	}
	// The rolling restart starts lane b: its worker must move the corrupt
	// file aside and count from zero, not fail or adopt it.
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitWorkers(20*time.Second, "HUP replaces both workers", func(ws []workerInfo) bool {
		ids := map[string]bool{}
		for _, w := range ws {
			if w.State == "ready" {
				ids[w.ID] = true
			}
		}
		return len(ws) == 2 && ids["0b"] && ids["1b"]
	})
	l.waitFor(t, 300)
	ok := l.check(t)
	p.checkCountEquals(t, ok)
	mfs = p.scrape()
	if v, _ := value(mfs, "herd_metrics_files_skipped", nil); v != wantSkipped-1 {
		t.Errorf("after the restart herd_metrics_files_skipped = %v, want %v (the corrupt counter_0b.db moved aside)", v, wantSkipped-1)
	}
	if !strings.Contains(p.log.String(), "skipped a metric file") {
		t.Error("the master did not log the skipped files")
	}
	t.Logf("%d bad files planted while serving: scrape took %s, %d requests all counted exactly", len(bad)+1, took.Round(time.Microsecond), ok)
}

// A symbolic link in the run directory is never followed, by the master
// reading the files or by a worker writing its own: whoever planted it
// (only root or the run's own user can write there) must not be able to
// make herd count another file, or write into one.
func TestSymlinksInTheRunDirectoryAreNotFollowed(t *testing.T) {
	t.Parallel()
	p := startHello(t, "-workers", "1")
	p.waitReady(1)
	dir := p.runDir()
	sendN(t, keepAliveClient(), p.app, 100, 4, func(int) string { return "/hello" })
	outside := t.TempDir()
	// A valid metric file outside, with this run's counts: merging it
	// would double them.
	copyWithMangle(t, filepath.Join(dir, "counter_0a.db"), filepath.Join(outside, "counter_0a.db"), func(b []byte) []byte { return b })
	os.Symlink(filepath.Join(outside, "counter_0a.db"), filepath.Join(dir, "counter_9y.db"))
	// The file the next worker of slot 0 (lane b, after HUP) will open.
	copyWithMangle(t, filepath.Join(dir, "counter_0a.db"), filepath.Join(outside, "target.db"), func(b []byte) []byte { return b })
	os.Symlink(filepath.Join(outside, "target.db"), filepath.Join(dir, "counter_0b.db"))
	before, _ := os.ReadFile(filepath.Join(outside, "target.db"))

	mfs := p.scrape()
	if v, _ := value(mfs, "http_requests_total", helloLabels); v != 100 {
		t.Errorf("http_requests_total = %v, want 100: a symlinked file was merged", v)
	}
	if v, _ := value(mfs, "herd_metrics_files_skipped", nil); v != 2 {
		t.Errorf("herd_metrics_files_skipped = %v, want 2 (the two symlinks)", v)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitWorkers(20*time.Second, "HUP starts worker 0b", func(ws []workerInfo) bool {
		return len(ws) == 1 && ws[0].ID == "0b" && ws[0].State == "ready"
	})
	sendN(t, keepAliveClient(), p.app, 100, 4, func(int) string { return "/hello" })
	if after, _ := os.ReadFile(filepath.Join(outside, "target.db")); !bytes.Equal(before, after) {
		t.Error("the worker wrote through a symlink into a file outside the run directory")
	}
	if v := p.helloCount(); v != 200 {
		t.Errorf("http_requests_total = %v after the restart, want 200", v)
	}
}

// startOnFullFilesystem starts hello with 2 workers whose -metrics-dir is a
// 1 MiB tmpfs, and fills that filesystem to the last block before the
// first request: the workers have their counter files, not yet their
// histogram files. It returns the filler file.
func startOnFullFilesystem(t *testing.T) (*proc, []workerInfo, string) {
	t.Helper()
	mnt := testutil.MountTmpfs(t, "1m", 0o700)
	p := startHello(t, "-workers", "2", "-metrics-dir", mnt)
	ws := p.waitReady(2)
	return p, ws, fillFilesystem(t, mnt)
}

func TestFullFilesystem(t *testing.T) {
	p, ws, filler := startOnFullFilesystem(t)
	l := startLoad(t, p.app, "/hello", 4, time.Minute)
	l.waitFor(t, 300)
	mfs := p.scrape()
	writeErrors, _ := value(mfs, "herd_metrics_write_errors_total", nil)
	if writeErrors == 0 {
		t.Error("herd_metrics_write_errors_total is 0: the histogram files could not be created, and that must show")
	}
	if free, ok := value(mfs, "herd_metrics_dir_free_bytes", nil); !ok || free > 4096 {
		t.Errorf("herd_metrics_dir_free_bytes = %v (present %v), want about 0", free, ok)
	}
	if !strings.Contains(p.log.String(), "series dropped") {
		t.Error("no \"series dropped\" error in the log")
	}
	// A rolling restart needs new files: it is aborted, and the old
	// workers keep serving.
	p.cmd.Process.Signal(syscall.SIGHUP)
	if err := testutil.WaitUntil(10*time.Second, func() error {
		if !strings.Contains(p.log.String(), "reload aborted") {
			return errors.New(`no "reload aborted" in the log after HUP on a full filesystem`)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	l.waitFor(t, 300)
	for _, w := range p.waitReady(2) {
		if w.PID != ws[0].PID && w.PID != ws[1].PID {
			t.Errorf("worker %d was replaced (pid %d) although its successor could not create its files", w.Slot, w.PID)
		}
	}
	ok := l.check(t)
	// The counter files existed before the filesystem filled up: every
	// request is counted exactly, only the new histogram series are lost.
	p.checkCountEquals(t, ok)

	// Space again: new series work again.
	os.Remove(filler)
	sendN(t, keepAliveClient(), p.app, 50, 2, func(int) string { return "/users/1" })
	recovered, _ := value(p.scrape(), "http_requests_total", map[string]string{"method": "GET", "route": "/users/{id}", "code": "200"})
	if recovered != 50 {
		t.Errorf("after space was freed, a new series counted %v, want 50", recovered)
	}
	t.Logf("full filesystem: %d requests served and counted exactly, herd_metrics_write_errors_total = %v, HUP aborted with the old workers serving; after freeing space a new series counted %v of 50",
		ok, writeErrors, recovered)
}

// The master removes a dead worker's live* gauge files; its replacement
// must boot without them on a full filesystem.
func TestFullFilesystemCrashedWorkerIsReplaced(t *testing.T) {
	p, ws, _ := startOnFullFilesystem(t)
	l := startLoad(t, p.app, "/hello", 4, time.Minute)
	l.waitFor(t, 100)
	syscall.Kill(ws[0].PID, syscall.SIGKILL)
	p.waitWorkers(5*time.Second, "the killed worker is replaced on a full filesystem", func(now []workerInfo) bool {
		r := readyPIDs(now)
		return len(r) == 2 && !r[ws[0].PID]
	})
	l.waitFor(t, 300)
	l.stop()
	p.checkNothingLost(t, l)
}
