package prefork_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// upgradeProc is a master run as a subprocess of the test, with its stdout and stderr in
// files: the new master a binary upgrade starts inherits them, and a pipe would keep
// exec.Cmd.Wait from returning while the new master runs.
type upgradeProc struct {
	cmd     *exec.Cmd
	pidfile string
	outPath string
	errPath string
	done    chan struct{}
	err     error
	admin   string // the admin listener, which every later master inherits
	addr    string
	notify  *notifyLog // nil without a notify socket
}

var generationRE = regexp.MustCompile(`(?m)^generation (\d+) pid (\d+)$`)

// startUpgradable starts a master with sp (plus a pidfile); with notify, it gets a
// NOTIFY_SOCKET. Cleanup stops every master it and its successors started, and checks
// that none of their processes is left.
func startUpgradable(t *testing.T, sp masterSpec, notify bool) *upgradeProc {
	t.Helper()
	dir := t.TempDir()
	sp.PIDFile = filepath.Join(dir, "master.pid")
	spec, _ := json.Marshal(sp)
	p := &upgradeProc{
		pidfile: sp.PIDFile, outPath: filepath.Join(dir, "stdout"), errPath: filepath.Join(dir, "stderr"),
		done: make(chan struct{}),
	}
	out, err := os.Create(p.outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(p.errPath)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), "PREFORK_TEST_MASTER="+string(spec))
	if notify {
		p.notify = listenNotify(t)
		p.cmd.Env = append(p.cmd.Env, "NOTIFY_SOCKET="+p.notify.path)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, errf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	var pids sync.Map // every worker seen, for the cleanup
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	t.Cleanup(func() {
		close(stopWatch)
		<-watched
		p.cmd.Process.Kill()
		<-p.done
		for _, m := range generationRE.FindAllStringSubmatch(p.stdout(), -1) {
			pid, _ := strconv.Atoi(m[2])
			if pid == p.cmd.Process.Pid {
				continue
			}
			syscall.Kill(pid, syscall.SIGQUIT) // stops at once, with its workers
			deadline := time.Now().Add(10 * time.Second)
			for !gone(pid) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond) // polling with a deadline
			}
			if !gone(pid) {
				t.Errorf("master pid %d still running at cleanup", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		testutil.EventuallyTrue(t, 10*time.Second, "every worker gone", func() bool {
			left := 0
			pids.Range(func(k, _ any) bool {
				if !gone(k.(int)) {
					left++
				}
				return true
			})
			return left == 0
		})
		if t.Failed() {
			t.Logf("masters' stderr:\n%s", p.stderr())
		}
	})
	testutil.EventuallyTrue(t, 30*time.Second, "the master's addresses", func() bool {
		for _, line := range strings.Split(p.stdout(), "\n") {
			k, v, _ := strings.Cut(line, " ")
			switch k {
			case "admin":
				p.admin = v
			case "addr":
				p.addr = v
			}
		}
		select {
		case <-p.done:
			t.Fatalf("master exited (%v):\n%s", p.err, p.stderr())
		default:
		}
		return p.addr != ""
	})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
			ws, _ := p.workers()
			for _, w := range ws {
				pids.Store(w.PID, true)
			}
		}
	}()
	return p
}

func (p *upgradeProc) stdout() string { b, _ := os.ReadFile(p.outPath); return string(b) }
func (p *upgradeProc) stderr() string { b, _ := os.ReadFile(p.errPath); return string(b) }

func (p *upgradeProc) workers() ([]prefork.WorkerInfo, error) {
	return (&subMaster{admin: p.admin}).workers()
}

// waitReady waits until the admin listener lists n ready workers and no other.
func (p *upgradeProc) waitReady(t *testing.T, n int) []prefork.WorkerInfo {
	t.Helper()
	return (&subMaster{admin: p.admin}).waitReady(t, n, 30*time.Second)
}

// pidfilePID returns the pid in the pidfile, or 0.
func (p *upgradeProc) pidfilePID() int {
	b, _ := os.ReadFile(p.pidfile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// waitLog waits until the masters' stderr has a line with every one of subs, and returns it.
func (p *upgradeProc) waitLog(t *testing.T, subs ...string) string {
	t.Helper()
	var found string
	testutil.EventuallyTrue(t, 30*time.Second, fmt.Sprintf("a log line with %q", subs), func() bool {
		for _, line := range strings.Split(p.stderr(), "\n") {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(line, s)
			}
			if ok {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

// exitCode waits for the first master to exit.
func (p *upgradeProc) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("master pid %d still running after %v", p.cmd.Process.Pid, d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// upgrade sends SIGUSR2 to the master pid and waits until the pidfile names another one,
// which it returns.
func (p *upgradeProc) upgrade(t *testing.T, pid int) int {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	var next int
	testutil.EventuallyTrue(t, 60*time.Second, "the pidfile to name the new master", func() bool {
		next = p.pidfilePID()
		return next != 0 && next != pid
	})
	return next
}

// listenSockets returns the inodes of the listening TCP sockets on port.
func listenSockets(t *testing.T, port int) []string {
	t.Helper()
	var out []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && int(p) == port {
				out = append(out, fs[9])
			}
		}
		f.Close()
	}
	slices.Sort(out)
	return out
}

// socketInodes returns the inodes of the sockets pid holds.
func socketInodes(pid int) map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, e := range ents {
		l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + e.Name())
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			out[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return out
}

// notifyLog collects sd_notify datagrams.
type notifyLog struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifyLog {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifyLog{path: filepath.Join(dir, "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// lines returns every line received so far, in order.
func (n *notifyLog) lines() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, m := range n.msgs {
		out = append(out, strings.Split(m, "\n")...)
	}
	return out
}

func (n *notifyLog) waitFor(t *testing.T, line string) {
	t.Helper()
	testutil.EventuallyTrue(t, 30*time.Second, "sd_notify "+line, func() bool { return slices.Contains(n.lines(), line) })
}

func TestUpgradeHandsOverEverySocket(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"reuseport", "shared"} {
		t.Run(mode, func(t *testing.T) {
			p := startUpgradable(t, masterSpec{Workers: 2, Mode: mode, GracefulTimeout: 20 * time.Second}, true)
			oldPID := p.cmd.Process.Pid
			before := p.waitReady(t, 2)
			p.notify.waitFor(t, "READY=1")
			_, portText, _ := net.SplitHostPort(p.addr)
			port, _ := strconv.Atoi(portText)
			sockets := listenSockets(t, port)
			if want := map[string]int{"reuseport": 2, "shared": 1}[mode]; len(sockets) != want {
				t.Fatalf("%d listening sockets on port %d, want %d", len(sockets), port, want)
			}

			l := startLoad(p.addr, 4)
			testutil.EventuallyTrue(t, 20*time.Second, "load flowing", func() bool { return l.ok.Load() > 50 })
			newPID := p.upgrade(t, oldPID)
			if code := p.exitCode(t, 60*time.Second); code != 0 {
				t.Errorf("old master exit status %d, want 0", code)
			}
			served := l.ok.Load()
			testutil.EventuallyTrue(t, 20*time.Second, "load flowing after the upgrade", func() bool { return l.ok.Load() > served+50 })
			l.finish(t)

			// The new master serves the very sockets the old one opened, and its workers
			// use the other lane.
			if got := listenSockets(t, port); !slices.Equal(got, sockets) {
				t.Errorf("listening sockets %v after the upgrade, want the same %v", got, sockets)
			}
			held := socketInodes(newPID)
			for _, ino := range sockets {
				if !held[ino] {
					t.Errorf("the new master does not hold socket %s", ino)
				}
			}
			after := p.waitReady(t, 2)
			for i, w := range after {
				if w.ID != strconv.Itoa(i)+"b" || w.PID == before[i].PID {
					t.Errorf("worker %+v after the upgrade, want a new process with id %db", w, i)
				}
				if _, ppid := procState(w.PID); ppid != newPID {
					t.Errorf("worker pid %d has parent %d, want the new master %d", w.PID, ppid, newPID)
				}
			}
			for _, w := range before {
				if !gone(w.PID) {
					t.Errorf("old worker pid %d still running", w.PID)
				}
			}
			if !strings.Contains(p.stdout(), fmt.Sprintf("generation 2 pid %d\n", newPID)) {
				t.Errorf("the new master did not continue from the handed-over generation:\n%s", p.stdout())
			}
			if !strings.Contains(p.stdout(), fmt.Sprintf("exit pid %d handed-over true took-over false\n", oldPID)) {
				t.Errorf("the old master's Run ended without HandedOver:\n%s", p.stdout())
			}
			p.waitLog(t, "upgrade: the new master is ready", "new_pid="+strconv.Itoa(newPID))
			p.waitLog(t, "upgrade complete: the old master exited", "old_pid="+strconv.Itoa(oldPID))

			// systemd follows the new master, and never hears STOPPING=1.
			p.notify.waitFor(t, "MAINPID="+strconv.Itoa(newPID))
			lines := p.notify.lines()
			if slices.Contains(lines, "STOPPING=1") {
				t.Errorf("STOPPING=1 sent during the upgrade: %q", lines)
			}
			if i := slices.Index(lines, "RELOADING=1"); i < 0 || i > slices.Index(lines, "MAINPID="+strconv.Itoa(newPID)) {
				t.Errorf("want RELOADING=1 before MAINPID=: %q", lines)
			}

			// The new master upgrades in turn: its workers go back to the first lane.
			third := p.upgrade(t, newPID)
			testutil.EventuallyTrue(t, 30*time.Second, "the second master gone", func() bool { return gone(newPID) })
			for i, w := range p.waitReady(t, 2) {
				if w.ID != strconv.Itoa(i)+"a" {
					t.Errorf("worker %+v after the second upgrade, want id %da", w, i)
				}
			}
			if !strings.Contains(p.stdout(), fmt.Sprintf("generation 3 pid %d\n", third)) {
				t.Errorf("the third master did not continue from generation 2:\n%s", p.stdout())
			}
			if !strings.Contains(p.stdout(), fmt.Sprintf("exit pid %d handed-over true took-over true\n", newPID)) {
				t.Errorf("the second master did not report that it took over, then handed over:\n%s", p.stdout())
			}
		})
	}
}

func TestSecondUpgradeIsRefusedWhileOneIsUnderWay(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	p := startUpgradable(t, masterSpec{Workers: 2, GracefulTimeout: 60 * time.Second, UpgradeGate: gate}, false)
	oldPID := p.cmd.Process.Pid
	before := p.waitReady(t, 2)
	syscall.Kill(oldPID, syscall.SIGUSR2)
	newPID := p.waitLog(t, "upgrade: new master started")
	syscall.Kill(oldPID, syscall.SIGUSR2)
	p.waitLog(t, "upgrade refused: an upgrade is already under way", "source=SIGUSR2")
	syscall.Kill(oldPID, syscall.SIGHUP)
	p.waitLog(t, "reload refused: a binary upgrade is under way")
	syscall.Kill(oldPID, syscall.SIGTTIN)
	p.waitLog(t, "change of the number of workers refused: a binary upgrade is under way")
	now, err := p.workers()
	if err != nil || len(now) != 2 || now[0].PID != before[0].PID || now[1].PID != before[1].PID {
		t.Errorf("workers %+v while the upgrade waits, want the old ones untouched %+v (err %v)", now, before, err)
	}
	if got := p.pidfilePID(); got != oldPID {
		t.Errorf("pidfile names %d before the new master is ready, want the old master %d", got, oldPID)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Errorf("old master exit status %d, want 0", code)
	}
	if pid := p.pidfilePID(); !strings.Contains(newPID, "new_pid="+strconv.Itoa(pid)) {
		t.Errorf("pidfile names %d, want the new master of %q", pid, newPID)
	}
}

func TestFailedUpgradeKeepsTheOldMaster(t *testing.T) {
	t.Parallel()
	t.Run("exits", func(t *testing.T) {
		t.Parallel()
		fail := filepath.Join(t.TempDir(), "fail")
		if err := os.WriteFile(fail, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		p := startUpgradable(t, masterSpec{Workers: 2, GracefulTimeout: 30 * time.Second, UpgradeFailFile: fail}, true)
		oldPID := p.cmd.Process.Pid
		before := p.waitReady(t, 2)
		l := startLoad(p.addr, 4)
		testutil.EventuallyTrue(t, 20*time.Second, "load flowing", func() bool { return l.ok.Load() > 50 })
		syscall.Kill(oldPID, syscall.SIGUSR2)
		line := p.waitLog(t, "upgrade failed: the new master exited with status 2 before it was ready; this master keeps serving")
		served := l.ok.Load()
		testutil.EventuallyTrue(t, 20*time.Second, "load flowing after the failure", func() bool { return l.ok.Load() > served+50 })
		now := p.waitReady(t, 2)
		if now[0].PID != before[0].PID || now[1].PID != before[1].PID {
			t.Errorf("workers %+v after the failed upgrade, want %+v", now, before)
		}
		if got := p.pidfilePID(); got != oldPID {
			t.Errorf("pidfile names %d, want the old master %d", got, oldPID)
		}
		lines := p.notify.lines()
		if slices.Contains(lines, "STOPPING=1") || !slices.Contains(lines, "MAINPID="+strconv.Itoa(oldPID)) {
			t.Errorf("sd_notify after the failed upgrade: %q; want MAINPID of the old master, no STOPPING=1", lines)
		}
		select {
		case <-p.done:
			t.Fatalf("old master exited: %v (%s)", p.err, line)
		default:
		}

		// Fixed, the upgrade goes through.
		os.Remove(fail)
		p.upgrade(t, oldPID)
		if code := p.exitCode(t, 60*time.Second); code != 0 {
			t.Errorf("old master exit status %d, want 0", code)
		}
		l.finish(t)
	})
	t.Run("not-ready", func(t *testing.T) {
		t.Parallel()
		gate := filepath.Join(t.TempDir(), "never")
		p := startUpgradable(t, masterSpec{Workers: 2, GracefulTimeout: 3 * time.Second, UpgradeGate: gate}, true)
		oldPID := p.cmd.Process.Pid
		before := p.waitReady(t, 2)
		l := startLoad(p.addr, 4)
		newPID := p.failedUpgrade(t, oldPID)
		p.waitLog(t, "upgrade: the failed new master exited with status 0")
		if !gone(newPID) {
			t.Errorf("failed new master pid %d still running", newPID)
		}
		if !strings.Contains(p.stdout(), fmt.Sprintf("exit pid %d handed-over false took-over false\n", newPID)) {
			t.Errorf("the failed new master must not report that it took over:\n%s", p.stdout())
		}
		// The failed new master, stopped by SIGTERM, said nothing to systemd.
		p.notify.waitFor(t, "MAINPID="+strconv.Itoa(oldPID))
		if lines := p.notify.lines(); slices.Contains(lines, "STOPPING=1") || slices.Contains(lines, "MAINPID="+strconv.Itoa(newPID)) {
			t.Errorf("sd_notify after the failed upgrade: %q; want no STOPPING=1 and no MAINPID of the failed master", lines)
		}
		served := l.ok.Load()
		testutil.EventuallyTrue(t, 20*time.Second, "load flowing after the failure", func() bool { return l.ok.Load() > served+50 })
		l.finish(t)
		now := p.waitReady(t, 2)
		if now[0].PID != before[0].PID || now[1].PID != before[1].PID {
			t.Errorf("workers %+v after the failed upgrade, want %+v", now, before)
		}
		if got := p.pidfilePID(); got != oldPID {
			t.Errorf("pidfile names %d, want the old master %d", got, oldPID)
		}
		// Planned replacements resume: a reload goes through.
		syscall.Kill(oldPID, syscall.SIGHUP)
		p.waitLog(t, "reload complete")
	})
}

// In ModeReusePort the new master takes the old one's number of slots, and every slot's
// socket, a removed (parked) slot's included: a later SIGTTIN reuses it, so the reuseport
// group keeps one socket per slot in slot order.
func TestUpgradeKeepsTheSlotsAndParkedSockets(t *testing.T) {
	t.Parallel()
	p := startUpgradable(t, masterSpec{Workers: 2, Mode: "reuseport", GracefulTimeout: 20 * time.Second}, false)
	oldPID := p.cmd.Process.Pid
	p.waitReady(t, 2)
	syscall.Kill(oldPID, syscall.SIGTTIN)
	p.waitReady(t, 3)
	syscall.Kill(oldPID, syscall.SIGTTIN)
	p.waitReady(t, 4)
	syscall.Kill(oldPID, syscall.SIGTTOU)
	p.waitReady(t, 3)
	_, portText, _ := net.SplitHostPort(p.addr)
	port, _ := strconv.Atoi(portText)
	sockets := listenSockets(t, port)
	if len(sockets) != 4 {
		t.Fatalf("%d sockets before the upgrade, want 4 (3 slots and a parked one)", len(sockets))
	}
	l := startLoad(p.addr, 4)
	newPID := p.upgrade(t, oldPID)
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Errorf("old master exit status %d, want 0", code)
	}
	for i, w := range p.waitReady(t, 3) {
		if w.Slot != i || w.ID != strconv.Itoa(i)+"b" {
			t.Errorf("worker %+v after the upgrade, want slot %d id %db", w, i, i)
		}
	}
	p.waitLog(t, "upgrade complete: the old master exited")
	held := socketInodes(newPID)
	for _, ino := range sockets {
		if !held[ino] {
			t.Errorf("the new master does not hold socket %s", ino)
		}
	}
	syscall.Kill(newPID, syscall.SIGTTIN)
	ws := p.waitReady(t, 4)
	if ws[3].Slot != 3 {
		t.Errorf("workers %+v, want slot 3 back", ws)
	}
	if got := listenSockets(t, port); !slices.Equal(got, sockets) {
		t.Errorf("sockets %v after SIGTTIN, want the parked one reused: %v", got, sockets)
	}
	served := l.ok.Load()
	testutil.EventuallyTrue(t, 20*time.Second, "load flowing", func() bool { return l.ok.Load() > served+50 })
	l.finish(t)
}

// SIGTERM to the old master while the new one boots stops the service: the new master is
// stopped too, never takes over, and nothing is left.
func TestStopDuringUpgradeStopsTheNewMaster(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "gate")
	p := startUpgradable(t, masterSpec{Workers: 2, GracefulTimeout: 20 * time.Second, UpgradeGate: gate}, false)
	oldPID := p.cmd.Process.Pid
	p.waitReady(t, 2)
	syscall.Kill(oldPID, syscall.SIGUSR2)
	line := p.waitLog(t, "upgrade: new master started")
	newPID := newPIDIn(t, line)
	syscall.Kill(oldPID, syscall.SIGTERM)
	p.waitLog(t, "upgrade abandoned: this master stops; stopping the new master")
	if err := os.WriteFile(gate, nil, 0o600); err != nil { // too late: it must not take over
		t.Fatal(err)
	}
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Errorf("old master exit status %d, want 0", code)
	}
	testutil.EventuallyTrue(t, 30*time.Second, "the new master gone", func() bool { return gone(newPID) })
	if !strings.Contains(p.stdout(), fmt.Sprintf("exit pid %d handed-over false took-over false\n", oldPID)) {
		t.Errorf("the old master handed over although it was told to stop:\n%s", p.stdout())
	}
	if _, err := os.Stat(p.pidfile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pidfile after the stop: %v, want it removed", err)
	}
	if _, err := getInfo(p.addr); err == nil {
		t.Error("the address still accepts after both masters stopped")
	}
}
