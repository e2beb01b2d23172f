package integration

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"golang.org/x/sys/unix"
)

// mountRamfs mounts a ramfs (a filesystem without fallocate(2)) on a new
// temporary directory and unmounts it at cleanup. Mounting needs root, as
// make test runs: the test fails when it cannot mount.
func mountRamfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("ramfs", dir, "ramfs", 0, "mode=0700"); err != nil {
		t.Fatalf("mount ramfs on %s (euid %d): %v", dir, os.Geteuid(), err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	// The point of the test is the fallback: make sure this filesystem
	// really has no fallocate.
	probe := filepath.Join(dir, "probe")
	fd, err := os.Create(probe)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Fallocate(int(fd.Fd()), 0, 0, 4096)
	fd.Close()
	os.Remove(probe)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("fallocate on ramfs = %v, want EOPNOTSUPP: this test no longer exercises the fallback", err)
	}
	return dir
}

// TestRamfsCountsSurviveKillAndReloads runs herd with its metric files on a
// filesystem without fallocate: a worker killed with SIGKILL is replaced in
// its lane (its successor continues its files), and two rolling restarts
// move every slot to the other lane and back (continuing the files there).
// After every step /metrics counts exactly the requests the client saw
// answered, and every replacement booted on its first try.
func TestRamfsCountsSurviveKillAndReloads(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			dir := mountRamfs(t)
			p := startHello(t, "-workers", fmt.Sprint(workers), "-metrics-dir", dir)
			if !strings.HasPrefix(p.dir, dir+"/") {
				t.Fatalf("run directory %s is not on the ramfs %s", p.dir, dir)
			}
			ws := p.waitReady(workers)
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 15 * time.Second}
			sent := 0
			send := func(n int) {
				t.Helper()
				for range n {
					resp, err := client.Get(p.app + "/hello")
					if err != nil {
						t.Fatal(err)
					}
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						t.Fatalf("GET /hello: %s, %v", resp.Status, err)
					}
					sent++
				}
			}
			check := func(step string) {
				t.Helper()
				if got := p.helloCount(); got != float64(sent) {
					t.Fatalf("%s: http_requests_total{route=\"/hello\"} = %v, the client saw %d answered\n%s", step, got, sent, p.log.String())
				}
			}

			send(11)
			check("before kill -9")
			victim := ws[0]
			if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			p.waitWorkers(20*time.Second, "the killed worker is replaced", func(ws []workerInfo) bool {
				now := readyPIDs(ws)
				return len(now) == workers && len(ws) == workers && !now[victim.PID]
			})
			check("after kill -9")
			send(11)
			check("after kill -9 and 11 more")

			for round := 1; round <= 2; round++ {
				old := readyPIDs(p.waitReady(workers))
				p.cmd.Process.Signal(syscall.SIGHUP)
				p.waitWorkers(20*time.Second, fmt.Sprintf("HUP %d replaces every worker", round), func(ws []workerInfo) bool {
					now := readyPIDs(ws)
					if len(now) != workers || len(ws) != workers {
						return false
					}
					for pid := range now {
						if old[pid] {
							return false
						}
					}
					return true
				})
				check(fmt.Sprintf("after HUP %d", round))
				send(11)
				check(fmt.Sprintf("after HUP %d and 11 more", round))
			}

			// Every exit is accounted for, and none of them is a failed
			// boot: each replacement continued its lane's files at once.
			want := map[string]float64{"crashed": 1, "reloaded": float64(2 * workers), "boot-failed": 0, "timeout": 0}
			if err := testutil.WaitUntil(20*time.Second, func() error {
				mfs := p.scrape()
				var diffs []string
				for reason, n := range want {
					if v, _ := value(mfs, "herd_worker_exits_total", map[string]string{"reason": reason}); v != n {
						diffs = append(diffs, fmt.Sprintf("herd_worker_exits_total{reason=%q} = %v, want %v", reason, v, n))
					}
				}
				if len(diffs) > 0 {
					return errors.New(strings.Join(diffs, "\n"))
				}
				return nil
			}); err != nil {
				t.Fatalf("%v\n%s", err, p.log.String())
			}
			// A slot started one worker at the beginning, one per HUP, and the
			// victim's slot one more after the kill: a failed boot would show
			// as an extra restart.
			for _, w := range p.waitReady(workers) {
				want := 2
				if w.Slot == victim.Slot {
					want = 3
				}
				if w.Restarts != want {
					t.Errorf("slot %d: %d restarts, want %d", w.Slot, w.Restarts, want)
				}
			}
			ents, err := os.ReadDir(p.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if strings.Contains(e.Name(), ".corrupt-") {
					t.Errorf("a metric file was moved aside as corrupt: %s", e.Name())
				}
			}
			if code := p.stop(syscall.SIGTERM, 20*time.Second); code != 0 {
				t.Errorf("exit status %d after SIGTERM", code)
			}
		})
	}
}
