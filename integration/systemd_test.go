package integration

// The systemd units of examples/deploy: their keys checked against what herd
// does (and by systemd-analyze where it is installed), and the service run
// under an emulated systemd: socket activation, sd_notify, reload, stop.

import (
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Errorf("%s:%d: not a key=value line in a section: %q", path, i+1, line)
				continue
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

// one returns the single value of section.key, failing when it is absent.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) == 0 {
		t.Errorf("[%s] %s is missing", section, key)
		return ""
	}
	return v[len(v)-1]
}

// systemdSeconds parses a systemd time span such as "40s", "1min 30s" or "40".
func systemdSeconds(t *testing.T, s string) float64 {
	t.Helper()
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return n
	}
	s = strings.ReplaceAll(s, "min", "m")
	d, err := time.ParseDuration(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("time span %q: %v", s, err)
	}
	return d.Seconds()
}

const (
	unitService = "herd-hello.service"
	unitSocket  = "herd-hello.socket"
)

// TestDeploySystemdUnits checks the unit files' keys against what herd
// does, and has systemd-analyze verify them when it is installed.
func TestDeploySystemdUnits(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(deployDir, "systemd")
	svc := parseUnit(t, filepath.Join(dir, unitService))
	sock := parseUnit(t, filepath.Join(dir, unitSocket))

	if got := svc.one(t, "Service", "Type"); got != "notify" {
		t.Errorf("Type=%s, want notify (the master sends READY=1)", got)
	}
	if got := svc.one(t, "Service", "ExecReload"); got != "kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%s, want kill -HUP $MAINPID (a rolling restart)", got)
	}
	if got := svc.one(t, "Service", "KillMode"); got != "mixed" {
		t.Errorf("KillMode=%s, want mixed: SIGTERM to the master only, which drains its workers", got)
	}
	if ks := svc["Service"]["KillSignal"]; len(ks) > 0 && ks[0] != "SIGTERM" {
		t.Errorf("KillSignal=%s: herd drains on SIGTERM", ks[0])
	}
	if !strings.Contains(svc.one(t, "Unit", "Requires"), unitSocket) {
		t.Errorf("the service does not require %s", unitSocket)
	}
	if got := sock.one(t, "Socket", "ListenStream"); got == "" {
		t.Error("the socket unit listens on nothing")
	}
	if got := sock["Socket"]["Accept"]; len(got) > 0 && got[0] != "no" {
		t.Errorf("Accept=%s: herd takes the listening socket, not connections", got[0])
	}
	if svc["Install"]["WantedBy"] == nil || sock["Install"]["WantedBy"] == nil {
		t.Error("both units need an [Install] WantedBy")
	}

	execStart := strings.Fields(svc.one(t, "Service", "ExecStart"))
	if len(execStart) == 0 {
		t.Fatal("empty ExecStart")
	}
	flags := flagArgs(t, execStart[1:], helloFlagNames(t))
	grace, err := time.ParseDuration(flags["graceful-timeout"])
	if err != nil {
		t.Fatalf("ExecStart has no valid -graceful-timeout: %v", err)
	}
	if stop := systemdSeconds(t, svc.one(t, "Service", "TimeoutStopSec")); stop <= grace.Seconds() {
		t.Errorf("TimeoutStopSec=%vs is not longer than -graceful-timeout %s: systemd would kill the drain", stop, grace)
	}
	if rd := svc["Service"]["RuntimeDirectory"]; len(rd) == 0 || flags["metrics-dir"] != "/run/"+rd[0] {
		t.Errorf("-metrics-dir %q is not the unit's RuntimeDirectory %v", flags["metrics-dir"], rd)
	}
	if host, _, err := net.SplitHostPort(flags["metrics-bind"]); err != nil || !net.ParseIP(host).IsLoopback() {
		t.Errorf("-metrics-bind %q: the admin listener of a host service should stay on loopback", flags["metrics-bind"])
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze is not installed: checked the keys only")
		return
	}
	// verify insists that ExecStart's binary exists: point it at the
	// hello this test run built, and change nothing else.
	tmp := t.TempDir()
	b, err := os.ReadFile(filepath.Join(dir, unitService))
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.Replace(string(b), "ExecStart="+execStart[0]+" ", "ExecStart="+helloBin+" ", 1)
	if unit == string(b) {
		t.Fatal("could not point ExecStart at the test binary")
	}
	os.WriteFile(filepath.Join(tmp, unitService), []byte(unit), 0o644)
	sb, _ := os.ReadFile(filepath.Join(dir, unitSocket))
	os.WriteFile(filepath.Join(tmp, unitSocket), sb, 0o644)
	out, err := exec.Command(sa, "verify", filepath.Join(tmp, unitSocket), filepath.Join(tmp, unitService)).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// notifyListener is the NOTIFY_SOCKET of an emulated systemd.
type notifyListener struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	// A short path: unix socket names are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifyListener{path: path, msgs: make(chan string, 1024)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// waitFor waits for a datagram holding the line want ("READY=1").
func (n *notifyListener) waitFor(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %s", want)
			}
			for _, line := range strings.Split(m, "\n") {
				if line == want {
					return
				}
			}
		case <-deadline:
			t.Fatalf("no %s on NOTIFY_SOCKET within %s", want, within)
		}
	}
}

// TestSystemdUnitUnderSocketActivation runs the unit's ExecStart the way
// systemd would with herd-hello.socket: the listening socket inherited as
// fd 3 with LISTEN_PID/LISTEN_FDS, a NOTIFY_SOCKET and a watchdog. It checks
// READY=1 and WATCHDOG=1, serves over the inherited socket, runs the unit's
// ExecReload during traffic (RELOADING=1, then READY=1, no failed request),
// and stops with the unit's KillSignal within TimeoutStopSec.
func TestSystemdUnitUnderSocketActivation(t *testing.T) {
	t.Parallel()
	svc := parseUnit(t, filepath.Join(deployDir, "systemd", unitService))
	execStart := strings.Fields(svc.one(t, "Service", "ExecStart"))
	args := withOverrides(execStart[1:], map[string]string{
		"workers":      "2",
		"metrics-bind": "127.0.0.1:0",
		"metrics-dir":  t.TempDir(),
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	appURL := "http://" + ln.Addr().String()
	notify := listenNotify(t)

	// sh's $$ is the pid that exec keeps, as LISTEN_PID must be.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ WATCHDOG_PID=$$ exec "$0" "$@"`, helloBin}, args...)...)
	cmd.Env = append(os.Environ(),
		"LISTEN_FDS=1", "LISTEN_FDNAMES="+unitSocket,
		"NOTIFY_SOCKET="+notify.path,
		"WATCHDOG_USEC=2000000",
	)
	cmd.ExtraFiles = []*os.File{lnFile}
	p := startRaw(t, cmd)
	lnFile.Close()
	ln.Close() // the child holds its own descriptor of the socket

	notify.waitFor(t, "READY=1", 20*time.Second)
	admin := "http://" + logField(p.waitLog(t, "master started", 5*time.Second), "admin")
	client := keepAliveClient()
	sendN(t, client, appURL, 100, 4, func(int) string { return "/hello" })
	notify.waitFor(t, "WATCHDOG=1", 5*time.Second)

	// ExecReload, as systemd runs it, while clients keep sending.
	before := workerPIDs(t, admin)
	stopTraffic := make(chan struct{})
	var failed, sent, served atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopTraffic:
				return
			default:
			}
			sent.Add(1)
			resp, err := client.Get(appURL + "/hello")
			if err != nil {
				failed.Add(1)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			} else {
				served.Add(1)
			}
		}
	}()
	reload := strings.ReplaceAll(svc.one(t, "Service", "ExecReload"), "$MAINPID", strconv.Itoa(cmd.Process.Pid))
	if out, err := exec.Command("/bin/sh", "-c", reload).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %q: %v\n%s", reload, err, out)
	}
	notify.waitFor(t, "RELOADING=1", 5*time.Second)
	notify.waitFor(t, "READY=1", 30*time.Second)
	// Some traffic on the new workers before it stops.
	reloaded := served.Load()
	testutil.Eventually(t, 20*time.Second, func() error {
		if n := served.Load() - reloaded; n < 50 {
			return fmt.Errorf("%d requests served after READY=1, want 50", n)
		}
		return nil
	})
	close(stopTraffic)
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during the reload", failed.Load(), sent.Load())
	}
	after := workerPIDs(t, admin)
	for pid := range before {
		if after[pid] {
			t.Errorf("worker pid %d survived the reload", pid)
		}
	}

	// Stop as systemd does (KillSignal, KillMode=mixed: the master only).
	grace := systemdSeconds(t, svc.one(t, "Service", "TimeoutStopSec"))
	within := time.Duration(math.Min(grace, 20)) * time.Second
	if code := p.stop(t, syscall.SIGTERM, within); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	notify.waitFor(t, "STOPPING=1", time.Second)
}
