package integration

// Binary upgrades through bin/hello: SIGUSR2 under load, a failed upgrade, and an upgrade
// under systemd (socket activation, sd_notify). Each test logs the figures it measured.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
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
)

// upgradable is a bin/hello master whose successors (started by SIGUSR2) the test follows.
// Its stderr is a file: every later master inherits it, and with a pipe exec.Cmd.Wait would
// not return while a new master runs.
type upgradable struct {
	t       *testing.T
	bin     string // the executable the masters run, which the test may replace
	pidfile string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	app     string // http://host:port
	admin   string
	dir     string // the run directory
}

var masterStartedRE = regexp.MustCompile(`msg="master started" pid=(\d+)`)

// startUpgradable starts cmd (bin/hello, or a wrapper that execs it) with its stderr in a
// file and waits for its first "master started" line. Cleanup stops every master the run
// had and checks that none is left.
func startUpgradable(t *testing.T, cmd *exec.Cmd, bin, pidfile string) *upgradable {
	t.Helper()
	dir := t.TempDir()
	p := &upgradable{t: t, bin: bin, pidfile: pidfile, logPath: filepath.Join(dir, "stderr"), cmd: cmd, done: make(chan struct{})}
	f, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		var pids []int
		for _, m := range masterStartedRE.FindAllStringSubmatch(p.log(), -1) {
			pid, _ := strconv.Atoi(m[1])
			pids = append(pids, pid)
		}
		for _, pid := range pids {
			if alive(pid) {
				syscall.Kill(pid, syscall.SIGQUIT) // at once, with its workers
			}
		}
		<-p.done
		if err := testutil.WaitUntil(15*time.Second, func() error {
			for _, pid := range pids {
				if alive(pid) {
					return fmt.Errorf("master pid %d still running", pid)
				}
			}
			return nil
		}); err != nil {
			t.Error(err)
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("masters' log:\n%s", p.log())
		}
	})
	line := p.waitLog("master started")
	p.app = "http://" + logField(line, "bind")
	p.admin = "http://" + logField(line, "admin")
	p.dir = dirOf(t, line)
	return p
}

// startUpgradableHello starts a copy of bin/hello (which the test may replace) with a
// pidfile, loopback ports and args.
func startUpgradableHello(t *testing.T, args ...string) *upgradable {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "hello")
	installBinary(t, bin, helloBin)
	pidfile := filepath.Join(dir, "hello.pid")
	args = append([]string{"-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0", "-metrics-dir", t.TempDir(), "-pidfile", pidfile}, args...)
	return startUpgradable(t, exec.Command(bin, args...), bin, pidfile)
}

// installBinary puts a copy of from at path the way a deployment does: written next to
// it, then renamed over it (a running process keeps its old file).
func installBinary(t *testing.T, path, from string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	installBytes(t, path, src)
}

func installBytes(t *testing.T, path string, r io.Reader) {
	t.Helper()
	tmp := path + ".new"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, r); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func dirOf(t *testing.T, line string) string {
	t.Helper()
	m := dirRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no metrics_dir in %q", line)
	}
	if d, err := strconv.Unquote(m[1]); err == nil {
		return d
	}
	return m[1]
}

func (p *upgradable) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// waitLog waits for a log line holding every one of subs and returns the first such line.
func (p *upgradable) waitLog(subs ...string) string {
	p.t.Helper()
	var found string
	if err := testutil.WaitUntil(30*time.Second, func() error {
		for _, line := range strings.Split(p.log(), "\n") {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(line, s)
			}
			if ok {
				found = line
				return nil
			}
		}
		return errors.New("not yet")
	}); err != nil {
		p.t.Fatalf("no log line with %q in 30s:\n%s", subs, p.log())
	}
	return found
}

func (p *upgradable) pidfilePID() int {
	b, _ := os.ReadFile(p.pidfile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// upgrade sends SIGUSR2 to the master pid and waits until the pidfile names the new one.
func (p *upgradable) upgrade(pid int) int {
	p.t.Helper()
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		p.t.Fatal(err)
	}
	var next int
	testutil.Eventually(p.t, 60*time.Second, func() error {
		if next = p.pidfilePID(); next == 0 || next == pid {
			return fmt.Errorf("pidfile names %d, still the old master %d", next, pid)
		}
		return nil
	})
	return next
}

// exitStatus waits for the first master to exit and returns its status.
func (p *upgradable) exitStatus(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("master pid %d did not exit within %s", p.cmd.Process.Pid, within)
	}
	return p.cmd.ProcessState.ExitCode()
}

// readyWorkers waits until /workers lists n workers, all ready, and returns them.
func (p *upgradable) readyWorkers(n int) []workerInfo {
	p.t.Helper()
	var ws []workerInfo
	testutil.Eventually(p.t, 30*time.Second, func() error {
		resp, err := http.Get(p.admin + "/workers")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		ws = nil
		if err := json.NewDecoder(resp.Body).Decode(&ws); err != nil {
			return err
		}
		if len(readyPIDs(ws)) != n || len(ws) != n {
			return fmt.Errorf("workers %+v, want %d ready", ws, n)
		}
		return nil
	})
	return ws
}

func (p *upgradable) helloCount() float64 {
	p.t.Helper()
	mfs, err := scrapeErr(p.admin)
	if err != nil {
		p.t.Fatal(err)
	}
	v, _ := value(mfs, "http_requests_total", helloLabels)
	return v
}

// checkCounted fails unless the merged counter grew by exactly what the load saw answered
// (and by no more than it sent).
func checkCounted(t *testing.T, before, after float64, l *load) {
	t.Helper()
	ok, failed := l.ok.Load(), l.failed.Load()
	if after < before+float64(ok) || after > before+float64(ok+failed) {
		t.Errorf("http_requests_total{route=\"/hello\"}: %v before, %v after; clients saw %d succeed, %d fail", before, after, ok, failed)
	}
}

func TestUpgradeUnderLoadLosesNothing(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			p := startUpgradableHello(t, "-workers", "2", "-listener-mode", mode, "-graceful-timeout", "20s")
			oldPID := p.cmd.Process.Pid
			old := p.readyWorkers(2)
			sendN(t, keepAliveClient(), p.app, 100, 4, func(int) string { return "/hello" })
			before := p.helloCount()
			watch := watchHello(p.admin)
			l := startLoad(t, p.app, "/hello", 8, 2*time.Minute)
			l.waitFor(t, 200)

			newPID := p.upgrade(oldPID)
			status := p.exitStatus(60 * time.Second)
			if status != 0 {
				t.Errorf("old master exit status %d, want 0", status)
			}
			l.waitFor(t, 200)
			ok := l.check(t)
			watch.stop(t)
			after := p.helloCount()
			t.Logf("USR2 under load (%s): %d requests, %d failed; old master exit status %d; http_requests_total{route=\"/hello\"} %v before the load, %v after",
				mode, ok+l.failed.Load(), l.failed.Load(), status, before, after)
			checkCounted(t, before, after, l)

			// The new master took over the run directory, which outlived the old one.
			line := p.waitLog(`msg="master started" pid=` + strconv.Itoa(newPID))
			if d := dirOf(t, line); d != p.dir {
				t.Errorf("new master's run directory %s, want the old one's %s", d, p.dir)
			}
			if _, err := os.Stat(p.dir); err != nil {
				t.Errorf("run directory after the old master exited: %v", err)
			}
			for i, w := range p.readyWorkers(2) {
				if parentPID(w.PID) != newPID || w.PID == old[i].PID {
					t.Errorf("worker %+v: want a new worker of the new master %d", w, newPID)
				}
			}
			for _, w := range old {
				if alive(w.PID) {
					t.Errorf("old worker %d still running", w.PID)
				}
			}

			// The new master removes the run directory at its own exit.
			syscall.Kill(newPID, syscall.SIGTERM)
			testutil.Eventually(t, 30*time.Second, func() error {
				if alive(newPID) {
					return errors.New("new master still running")
				}
				return nil
			})
			if _, err := os.Stat(p.dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("run directory after the new master exited: %v, want it removed", err)
			}
		})
	}
}

func TestFailedUpgradeKeepsTheOldMasterServing(t *testing.T) {
	p := startUpgradableHello(t, "-workers", "2", "-graceful-timeout", "20s")
	oldPID := p.cmd.Process.Pid
	old := p.readyWorkers(2)
	before := p.helloCount()
	l := startLoad(t, p.app, "/hello", 8, 2*time.Minute)
	l.waitFor(t, 200)

	// A broken build replaces the binary: the new master exits at once.
	installBytes(t, p.bin, strings.NewReader("#!/bin/sh\necho 'hello: broken build' >&2\nexit 1\n"))
	syscall.Kill(oldPID, syscall.SIGUSR2)
	p.waitLog("upgrade failed: the new master exited with status 1 before it was ready; this master keeps serving")
	l.waitFor(t, 200)
	if pid := p.pidfilePID(); pid != oldPID {
		t.Errorf("pidfile names %d after the failed upgrade, want the old master %d", pid, oldPID)
	}
	for i, w := range p.readyWorkers(2) {
		if w.PID != old[i].PID {
			t.Errorf("worker %+v after the failed upgrade, want %+v untouched", w, old[i])
		}
	}
	failedDuring := l.failed.Load()

	// Fixed, the upgrade goes through.
	installBinary(t, p.bin, helloBin)
	p.upgrade(oldPID)
	status := p.exitStatus(60 * time.Second)
	if status != 0 {
		t.Errorf("old master exit status %d, want 0", status)
	}
	l.waitFor(t, 200)
	ok := l.check(t)
	after := p.helloCount()
	t.Logf("failed USR2, then USR2, under load: %d requests, %d failed (%d during the failed upgrade); old master exit status %d; http_requests_total{route=\"/hello\"} %v before, %v after",
		ok+l.failed.Load(), l.failed.Load(), failedDuring, status, before, after)
	checkCounted(t, before, after, l)
}

func TestUpgradeUnderSystemd(t *testing.T) {
	svc := parseUnit(t, filepath.Join(deployDir, "systemd", unitService))
	if got := svc.one(t, "Service", "NotifyAccess"); got != "all" {
		t.Errorf("NotifyAccess=%s, want all: systemd must accept MAINPID= from the new master of an upgrade", got)
	}
	execStart := strings.Fields(svc.one(t, "Service", "ExecStart"))
	pidfile := filepath.Join(t.TempDir(), "hello.pid")
	args := withOverrides(execStart[1:], map[string]string{
		"workers":      "2",
		"metrics-bind": "127.0.0.1:0",
		"metrics-dir":  t.TempDir(),
		"pidfile":      pidfile,
		"log-format":   "text",
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	notify := listenNotify(t)
	// sh's $$ is the pid that exec keeps, as LISTEN_PID must be.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ WATCHDOG_PID=$$ exec "$0" "$@"`, helloBin}, args...)...)
	cmd.Env = append(os.Environ(),
		"LISTEN_FDS=1", "LISTEN_FDNAMES="+unitSocket,
		"NOTIFY_SOCKET="+notify.path,
		"WATCHDOG_USEC=2000000",
	)
	cmd.ExtraFiles = []*os.File{lnFile}
	p := startUpgradable(t, cmd, helloBin, pidfile)
	lnFile.Close()
	ln.Close()
	notify.waitFor(t, "READY=1", 20*time.Second)
	p.app = "http://" + ln.Addr().String()
	oldPID := p.cmd.Process.Pid
	p.readyWorkers(2)
	l := startLoad(t, p.app, "/hello", 4, 2*time.Minute)
	l.waitFor(t, 100)

	newPID := p.upgrade(oldPID)
	notify.waitFor(t, "MAINPID="+strconv.Itoa(newPID), 30*time.Second)
	if status := p.exitStatus(60 * time.Second); status != 0 {
		t.Errorf("old master exit status %d, want 0", status)
	}
	l.waitFor(t, 100)
	l.check(t)
	// Everything the old master sent is queued before this marker: no STOPPING=1 in it.
	marker := "X-TEST-MARKER=1"
	c, err := net.Dial("unixgram", notify.path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(marker))
	c.Close()
	for done := false; !done; {
		select {
		case m := <-notify.msgs:
			for _, line := range strings.Split(m, "\n") {
				if line == "STOPPING=1" {
					t.Error("STOPPING=1 sent during the upgrade")
				}
				done = done || line == marker
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the marker datagram did not arrive")
		}
	}
	notify.waitFor(t, "WATCHDOG=1", 10*time.Second) // the new master keeps the watchdog fed
	syscall.Kill(newPID, syscall.SIGTERM)
	notify.waitFor(t, "STOPPING=1", 30*time.Second)
}

func TestUpgradeSignalInSingleProcessModeIsRefused(t *testing.T) {
	t.Parallel()
	p := startHello(t, "-workers", "0")
	sendN(t, keepAliveClient(), p.app, 10, 2, func(int) string { return "/hello" })
	p.cmd.Process.Signal(syscall.SIGUSR2)
	p.waitLog(t, "upgrade refused: a binary upgrade (SIGUSR2) needs a master", 10*time.Second)
	sendN(t, keepAliveClient(), p.app, 10, 2, func(int) string { return "/hello" })
	if code := p.stop(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// A deployment that installs each release in its own directory and switches a symbolic
// link: the new master is the binary the link names at the time of SIGUSR2.
func TestUpgradeFollowsASwitchedLink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
		installBinary(t, filepath.Join(dir, v, "hello"), helloBin)
	}
	link := filepath.Join(dir, "hello")
	switchLink := func(to string) {
		tmp := link + ".new"
		if err := os.Symlink(to, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	switchLink(filepath.Join(dir, "v1", "hello"))
	pidfile := filepath.Join(dir, "hello.pid")
	p := startUpgradable(t, exec.Command(link, "-workers", "1", "-bind", "127.0.0.1:0", "-metrics-bind", "127.0.0.1:0",
		"-metrics-dir", t.TempDir(), "-pidfile", pidfile), link, pidfile)
	oldPID := p.cmd.Process.Pid
	p.readyWorkers(1)
	switchLink(filepath.Join(dir, "v2", "hello"))
	newPID := p.upgrade(oldPID)
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", newPID))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "v2", "hello"); exe != want {
		t.Errorf("new master runs %s, want %s (the link's target at SIGUSR2)", exe, want)
	}
	if status := p.exitStatus(60 * time.Second); status != 0 {
		t.Errorf("old master exit status %d, want 0", status)
	}
}
