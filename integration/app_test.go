package integration

// The application's lifecycle through bin/hello: an App that cannot build
// stops the program at start-up with exit status 3 and its message, and
// never makes the master restart workers in a loop; a rolling restart whose
// new workers cannot build keeps the old ones; the App's clean-up runs in
// every worker after its last request, tagged with the worker.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestAppBuildErrorExits3WithItsMessage(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "greeting.txt")
	want := "hello: building the app: reading the greeting: open " + missing + ": no such file or directory"
	for _, workers := range []string{"0", "3"} {
		t.Run("workers="+workers, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(helloBin, "-workers", workers, "-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0",
				"-metrics-dir", t.TempDir(), "-greeting-file", missing)
			p := startRaw(t, cmd)
			select {
			case <-p.done:
			case <-time.After(60 * time.Second):
				t.Fatalf("hello still running 60 s after its App failed:\n%s", p.log.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != 3 {
				t.Errorf("exit status %d, want 3:\n%s", code, p.log.String())
			}
			if got := lastLine(p.log.String()); got != want {
				t.Errorf("last line of stderr:\n got %q\nwant %q\nlog:\n%s", got, want, p.log.String())
			}
			// Each slot's worker was started once: no restart loop.
			if n := strings.Count(p.log.String(), "msg=\"worker started\""); workers != "0" && n > 3 {
				t.Errorf("%d worker starts for 3 slots:\n%s", n, p.log.String())
			}
		})
	}
}

func TestReloadWithAFailingAppKeepsTheOldWorkers(t *testing.T) {
	t.Parallel()
	greeting := filepath.Join(t.TempDir(), "greeting.txt")
	if err := os.WriteFile(greeting, []byte("bonjour\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startHello(t, "-workers", "2", "-greeting-file", greeting)
	before := p.waitReady(2)
	os.Remove(greeting)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "the app failed to build", 30*time.Second)
	p.waitLog(t, "reload aborted", 30*time.Second)
	after := p.waitReady(2)
	for i := range before {
		if before[i].PID != after[i].PID {
			t.Errorf("worker %d replaced (pid %d -> %d) by a worker whose App fails", i, before[i].PID, after[i].PID)
		}
	}
	resp, err := http.Get(p.app + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"msg":"bonjour"}`+"\n" {
		t.Errorf("GET /hello after the failed reload: %q", b)
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// Each worker's clean-up runs after its drain, and its log line carries the
// worker's slot and id.
func TestAppCleanupRunsInEveryWorkerAfterItsDrain(t *testing.T) {
	t.Parallel()
	p := startHello(t, "-workers", "2")
	ws := p.waitReady(2)
	slow := make(chan string, 1)
	go func() {
		c := &http.Client{Timeout: 30 * time.Second}
		resp, err := c.Get(p.app + "/sleep/1500")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- resp.Status + " " + string(b)
	}()
	testutil.Eventually(t, 10*time.Second, func() error {
		if v, _ := value(p.scrape(), "http_requests_in_flight", nil); v != 1 {
			return fmt.Errorf("in-flight gauge = %v, want 1", v)
		}
		return nil
	})
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if got := <-slow; got != "200 OK "+`{"slept_ms":1500}`+"\n" {
		t.Errorf("the request in flight got %q", got)
	}
	log := p.log.String()
	for _, w := range ws {
		tag := "worker=" + strconv.Itoa(w.Slot) + " id=" + w.ID
		drain := strings.Index(log, `msg=draining `+tag)
		clean := strings.Index(log, `msg="hello: clean-up done" `+tag)
		if drain < 0 || clean < drain {
			t.Errorf("worker %s: draining at %d, clean-up at %d (want both, clean-up after):\n%s", tag, drain, clean, log)
		}
	}
}
