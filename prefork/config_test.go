package prefork_test

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

func TestNewMasterRejectsBadConfig(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// Another server's SO_REUSEPORT sockets: binding next to them would succeed, and must not.
	other, err := prefork.NewMaster(prefork.Config{Workers: 2, Addrs: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	dir := t.TempDir()
	livePID := filepath.Join(dir, "live.pid")
	os.WriteFile(livePID, []byte(strconv.Itoa(os.Getppid())+"\n"), 0o644)

	ok := prefork.Config{Workers: 1, Addrs: []string{"127.0.0.1:0"}}
	with := func(f func(*prefork.Config)) prefork.Config {
		c := ok
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  prefork.Config
		want string
	}{
		{"no workers", with(func(c *prefork.Config) { c.Workers = 0 }), "workers must be at least 1"},
		{"negative workers", with(func(c *prefork.Config) { c.Workers = -3 }), "workers must be at least 1"},
		{"no address", with(func(c *prefork.Config) { c.Addrs = nil }), "no address"},
		{"no port", with(func(c *prefork.Config) { c.Addrs = []string{"127.0.0.1"} }), `bad address "127.0.0.1"`},
		{"bad port", with(func(c *prefork.Config) { c.Addrs = []string{"127.0.0.1:99999"} }), "port out of range"},
		{"bad host", with(func(c *prefork.Config) { c.Addrs = []string{"no such host.invalid:80"} }), "bad address"},
		{"port in use", with(func(c *prefork.Config) { c.Addrs = []string{busy.Addr().String()} }), "address already in use"},
		{"port in use, shared", with(func(c *prefork.Config) {
			c.Addrs, c.Mode = []string{busy.Addr().String()}, prefork.ModeShared
		}), "address already in use"},
		{"port of another reuseport server", with(func(c *prefork.Config) { c.Addrs = []string{other.Addrs()[0].String()} }), "address already in use"},
		{"bad mode", with(func(c *prefork.Config) { c.Mode = "fork" }), `unknown listener mode "fork"`},
		{"negative timeout", with(func(c *prefork.Config) { c.Timeout = -time.Second }), "timeout must not be negative"},
		{"tiny timeout", with(func(c *prefork.Config) { c.Timeout = time.Millisecond }), "timeout must be at least"},
		{"negative graceful", with(func(c *prefork.Config) { c.GracefulTimeout = -1 }), "graceful timeout must not be negative"},
		{"negative max requests", with(func(c *prefork.Config) { c.MaxRequests = -1 }), "max requests must not be negative"},
		{"jitter alone", with(func(c *prefork.Config) { c.MaxRequestsJitter = 5 }), "jitter needs max requests"},
		{"bad env", with(func(c *prefork.Config) { c.Env = []string{"NOEQUALS"} }), "not KEY=value"},
		{"marker in env", with(func(c *prefork.Config) { c.Env = []string{"HERD_WORKER=x"} }), "must not set HERD_WORKER"},
		{"missing executable", with(func(c *prefork.Config) { c.Path = filepath.Join(dir, "nope") }), "worker executable"},
		{"pidfile dir", with(func(c *prefork.Config) { c.PIDFile = filepath.Join(dir, "nodir", "x.pid") }), "does not exist"},
		{"pidfile live", with(func(c *prefork.Config) { c.PIDFile = livePID }), "already running as pid"},
		{"bad GOMEMLIMIT", with(func(c *prefork.Config) { c.Environ = []string{"GOMEMLIMIT=lots"} }), "bad GOMEMLIMIT"},
		{"bad LISTEN_FDS", with(func(c *prefork.Config) {
			c.Environ = []string{"LISTEN_PID=" + strconv.Itoa(os.Getpid()), "LISTEN_FDS=x"}
		}), "bad LISTEN_FDS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := prefork.NewMaster(tc.cfg)
			if err == nil {
				m.Close()
				t.Fatalf("NewMaster succeeded, want an error containing %q", tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "prefork: ") || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q: want one line, prefixed \"prefork: \", containing %q", msg, tc.want)
			}
		})
	}
}

func TestNewMasterBindsEveryAddress(t *testing.T) {
	t.Parallel()
	m, err := prefork.NewMaster(prefork.Config{Workers: 3, Addrs: []string{"127.0.0.1:0", "[::1]:0"}})
	if err != nil {
		t.Fatalf("binding 127.0.0.1 and [::1]: %v", err)
	}
	as := m.Addrs()
	if len(as) != 2 || as[0].(*net.TCPAddr).Port == 0 || !as[1].(*net.TCPAddr).IP.Equal(net.IPv6loopback) {
		t.Errorf("Addrs = %v", as)
	}
	// The port is taken until Close.
	if l, err := net.Listen("tcp", as[0].String()); err == nil {
		l.Close()
		t.Error("port free while the master holds it")
	}
	m.Close()
	if err := m.Run(t.Context()); err != prefork.ErrRunTwice {
		t.Errorf("Run after Close = %v, want ErrRunTwice", err)
	}
	l, err := net.Listen("tcp", as[0].String())
	if err != nil {
		t.Errorf("port still taken after Close: %v", err)
	} else {
		l.Close()
	}
}

func TestWorkerIsFalseInMaster(t *testing.T) {
	if w, ok := prefork.Worker(); ok || w != nil {
		t.Fatalf("Worker() = %v, %v in the test process", w, ok)
	}
}

func TestPIDFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "herd.pid")
	os.WriteFile(path, []byte("999999999\n"), 0o644) // stale
	tm := startMaster(t, prefork.Config{Workers: 1, PIDFile: path}, "")
	tm.waitReady(t, 1, 10*time.Second)
	b, err := os.ReadFile(path)
	if err != nil || string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("pidfile holds %q, %v; want our pid", b, err)
	}
	tm.stop()
	tm.wait(t, 10*time.Second)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("pidfile still there after Run: %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := prefork.MergeEnv(
		[]string{"A=1", "LISTEN_FDS=3", "B=2", "A=dup", "C=3"},
		map[string]bool{"LISTEN_FDS": true},
		[]string{"B=two", "D=4"},
		[]string{"LISTEN_FDS=kept", "A=last"},
	)
	want := []string{"A=last", "B=two", "C=3", "D=4", "LISTEN_FDS=kept"}
	if !slices.Equal(got, want) {
		t.Errorf("MergeEnv = %q, want %q", got, want)
	}
}

func TestParseByteCount(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "123": 123, "123B": 123, "4KiB": 4 << 10, "5MiB": 5 << 20, "1GiB": 1 << 30, "2TiB": 2 << 40,
	} {
		if got, err := prefork.ParseByteCount(in); err != nil || got != want {
			t.Errorf("ParseByteCount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1KB", "1.5GiB", "99999999999TiB"} {
		if _, err := prefork.ParseByteCount(in); err == nil {
			t.Errorf("ParseByteCount(%q) succeeded", in)
		}
	}
}

func TestSubprocessMasterSignals(t *testing.T) {
	t.Parallel()
	sm := startSubMaster(t, masterSpec{Workers: 2})
	before := sm.waitReady(t, 2, 10*time.Second)
	p := sm.cmd.Process
	p.Signal(syscall.SIGTTIN)
	sm.waitReady(t, 3, 10*time.Second)
	p.Signal(syscall.SIGTTOU)
	sm.waitReady(t, 2, 10*time.Second)
	p.Signal(syscall.SIGHUP)
	testutil.EventuallyTrue(t, 15*time.Second, "every worker replaced", func() bool {
		ws, err := sm.workers()
		if err != nil || len(ws) != 2 {
			return false
		}
		for i, w := range ws {
			if w.State != prefork.StateReady || w.PID == before[i].PID || w.ID != strconv.Itoa(i)+"b" {
				return false
			}
		}
		return true
	})
	// Workers ignore the terminal's INT and QUIT.
	ws, _ := sm.workers()
	for _, w := range ws {
		syscall.Kill(w.PID, syscall.SIGINT)
		syscall.Kill(w.PID, syscall.SIGQUIT)
	}
	if _, err := getInfo(sm.addr); err != nil {
		t.Fatal(err)
	}
	now, _ := sm.workers()
	if !slices.Equal(pidsOf(now), pidsOf(ws)) {
		t.Errorf("workers changed after SIGINT/SIGQUIT: %v -> %v", pidsOf(ws), pidsOf(now))
	}
	p.Signal(syscall.SIGQUIT)
	if code := sm.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGQUIT, want 0", code)
	}
	for _, w := range now {
		if !gone(w.PID) {
			t.Errorf("worker %d still running", w.PID)
		}
	}
}

func TestSocketActivation(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sm := startSubMaster(t, masterSpec{Workers: 2, Mode: "reuseport", Activation: true}, f)
	if sm.addr != l.Addr().String() {
		t.Errorf("master serves %s, want the activated socket %s", sm.addr, l.Addr())
	}
	sm.waitReady(t, 2, 10*time.Second)
	seen := map[int]bool{}
	testutil.EventuallyTrue(t, 10*time.Second, "both workers answering on the activated socket", func() bool {
		wi, err := getInfo(sm.addr)
		if err != nil {
			t.Fatal(err)
		}
		if wi.Env["LISTEN_FDS"] != "" || wi.Env["LISTEN_PID"] != "" {
			t.Fatalf("worker sees systemd's variables: %v", wi.Env)
		}
		seen[wi.PID] = true
		return len(seen) == 2
	})
}

// Under socket activation the master serves the sockets systemd passes, a unix socket as
// well as TCP, and opens none of the addresses of its own configuration.
func TestSocketActivationUnix(t *testing.T) {
	t.Parallel()
	dir := testutil.SockDir(t)
	path := filepath.Join(dir, "activated.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false) // the socket stays, as systemd's does
	f, err := l.File()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	own := filepath.Join(dir, "own.sock")
	sm := startSubMaster(t, masterSpec{Workers: 2, Activation: true, Unix: own}, f)
	if sm.addr != path {
		t.Errorf("master serves %s, want the activated socket %s", sm.addr, path)
	}
	sm.waitReady(t, 2, 10*time.Second)
	seen := map[int]bool{}
	testutil.EventuallyTrue(t, 10*time.Second, "both workers answering on the activated unix socket", func() bool {
		wi, err := getUnixInfo(path)
		if err != nil {
			t.Fatal(err)
		}
		seen[wi.PID] = true
		return len(seen) == 2
	})
	if _, err := os.Lstat(own); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the master opened its own unix socket %s beside the activated one (%v)", own, err)
	}
}

func TestSdNotify(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	expect := func(prefix string) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.HasPrefix(m, prefix) {
					return m
				}
			case <-timeout:
				t.Fatalf("no sd_notify message %q", prefix)
			}
		}
	}
	environ := append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	tm := startMaster(t, prefork.Config{Workers: 2, Environ: environ}, "")
	if m := expect("READY=1"); !strings.Contains(m, "STATUS=2 of 2 workers ready") {
		t.Errorf("ready message %q", m)
	}
	expect("WATCHDOG=1")
	expect("WATCHDOG=1")
	tm.sig.Send(syscall.SIGHUP)
	if m := expect("RELOADING=1"); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Errorf("reloading message %q", m)
	}
	expect("READY=1")
	tm.stop()
	expect("STOPPING=1")
}

func TestNewMasterRefusesInWorker(t *testing.T) {
	_, err := prefork.NewMaster(prefork.Config{Workers: 1, Addrs: []string{"127.0.0.1:0"},
		Environ: []string{"HERD_WORKER={}"}})
	if err == nil || !strings.Contains(err.Error(), "call prefork.Worker before NewMaster") {
		t.Errorf("NewMaster with the worker marker set: %v", err)
	}
}
