package integration

// Listeners: -bind given several times (IPv4, IPv6, a unix socket), every
// worker serving every address, a socket per slot per TCP address in
// reuseport mode and one shared unix socket, the socket file's mode and
// removal, stale and live socket files, and no request lost over any of
// them through rolling restarts and scaling.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
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

// unixTransport dials the unix socket at path whatever the URL's host.
func unixTransport(path string, keepAlive bool) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: 1,
	}
}

func getVia(t *testing.T, tr *http.Transport, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	defer tr.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// binds returns the addresses of the start line (binds=, else bind=).
func (p *proc) binds(t *testing.T) []string {
	t.Helper()
	line := p.waitLine(t, 20*time.Second, "master started", "serving in one process")
	if m := regexp.MustCompile(` binds=(\S+)`).FindStringSubmatch(line); m != nil {
		return strings.Split(m[1], ",")
	}
	return []string{logField(line, "bind")}
}

// socketInodes are the inodes of the sockets process pid holds.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			out[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return out
}

// listeningTCP returns the inodes of the listening TCP sockets on port.
func listeningTCP(t *testing.T, port int) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
				out[fs[9]] = true
			}
		}
	}
	return out
}

// listeningUnix returns the inodes of the listening unix sockets at path.
func listeningUnix(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; Flags 00010000: listening.
		if len(fs) == 8 && fs[7] == path && fs[3] == "00010000" {
			out[fs[6]] = true
		}
	}
	return out
}

func intersect(a, b map[string]bool) int {
	n := 0
	for k := range a {
		if b[k] {
			n++
		}
	}
	return n
}

func TestEveryWorkerServesEveryAddress(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			sock := filepath.Join(testutil.SockDir(t), "app.sock")
			p := startHello(t, "-workers", "3", "-listener-mode", mode, "-bind", "[::1]:0", "-bind", "unix:"+sock)
			ws := p.waitReady(3)
			binds := p.binds(t)
			if len(binds) != 3 || binds[2] != "unix:"+sock || !strings.HasPrefix(binds[1], "[::1]:") {
				t.Fatalf("binds %v, want 127.0.0.1:P, [::1]:P and unix:%s", binds, sock)
			}
			for _, b := range binds[:2] {
				if code, body := getVia(t, &http.Transport{}, "http://"+b+"/hello"); code != 200 || body != `{"msg":"hello"}`+"\n" {
					t.Errorf("GET http://%s/hello: %d %q", b, code, body)
				}
			}
			if code, body := getVia(t, unixTransport(sock, false), "http://herd/hello"); code != 200 || body != `{"msg":"hello"}`+"\n" {
				t.Errorf("GET /hello over %s: %d %q", sock, code, body)
			}
			// The sockets: in reuseport mode one per slot per TCP address,
			// else one per address; one unix socket, shared.
			perTCP := 1
			if mode == "reuseport" {
				perTCP = 3
			}
			groups := map[string]map[string]bool{"unix": listeningUnix(t, sock)}
			for _, b := range binds[:2] {
				_, port, _ := net.SplitHostPort(b)
				n, _ := strconv.Atoi(port)
				groups[b] = listeningTCP(t, n)
				if len(groups[b]) != perTCP {
					t.Errorf("%s: %d listening sockets, want %d", b, len(groups[b]), perTCP)
				}
			}
			if len(groups["unix"]) != 1 {
				t.Errorf("%s: %d listening sockets, want 1", sock, len(groups["unix"]))
			}
			// Every worker holds a socket of every address; in reuseport
			// mode each holds its own of each TCP address.
			owners := map[string]int{}
			for _, w := range ws {
				mine := socketInodes(t, w.PID)
				for name, g := range groups {
					if intersect(mine, g) != 1 {
						t.Errorf("worker %d (pid %d) holds %d sockets of %s, want 1", w.Slot, w.PID, intersect(mine, g), name)
					}
					for ino := range g {
						if mine[ino] {
							owners[name+" "+ino]++
						}
					}
				}
			}
			if mode == "reuseport" {
				for k, n := range owners {
					if !strings.HasPrefix(k, "unix ") && n != 1 {
						t.Errorf("TCP socket %s held by %d workers, want its slot's only", k, n)
					}
				}
			}
			if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&fs.ModeSocket == 0 {
				t.Errorf("socket file %v (%v), want a socket with the default mode 0660", fi, err)
			}
			if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Errorf("exit status %d", code)
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("socket file left after exit: %v", err)
			}
		})
	}
}

// -bind-mode sets the socket file's mode, in one process as with workers,
// and the file goes at exit.
func TestUnixSocketModeAndRemoval(t *testing.T) {
	t.Parallel()
	for _, workers := range []string{"0", "2"} {
		t.Run("workers="+workers, func(t *testing.T) {
			t.Parallel()
			sock := filepath.Join(testutil.SockDir(t), "app.sock")
			p := startHello(t, "-workers", workers, "-bind", "unix:"+sock, "-bind-mode", "0600")
			if workers == "2" {
				p.waitReady(2)
			}
			fi, err := os.Lstat(sock)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("socket file %v (%v), want mode 0600", fi, err)
			}
			if code, _ := getVia(t, unixTransport(sock, true), "http://herd/hello"); code != 200 {
				t.Errorf("GET over the socket: %d", code)
			}
			if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Errorf("exit status %d", code)
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("socket file left after exit: %v", err)
			}
		})
	}
}

// A socket file that a crashed run left is replaced; a live one (another
// server) or a file that is not a socket stops the start with exit status 2
// and one line, and is left alone.
func TestStaleAndLiveSocketFiles(t *testing.T) {
	t.Parallel()
	for _, workers := range []string{"0", "2"} {
		t.Run("workers="+workers, func(t *testing.T) {
			t.Parallel()
			dir := testutil.SockDir(t)
			stale := filepath.Join(dir, "stale.sock")
			fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: stale}); err != nil {
				t.Fatal(err)
			}
			syscall.Close(fd) // what a killed server leaves behind
			p := startHello(t, "-workers", workers, "-bind", "unix:"+stale)
			if code, _ := getVia(t, unixTransport(stale, false), "http://herd/hello"); code != 200 {
				t.Errorf("GET over the replaced stale socket: %d", code)
			}
			p.stop(syscall.SIGTERM, 30*time.Second)

			live := filepath.Join(dir, "live.sock")
			other, err := net.Listen("unix", live)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			plain := filepath.Join(dir, "plain.sock")
			os.WriteFile(plain, []byte("not a socket"), 0o600)
			for path, why := range map[string]string{live: "in use: a server is listening on it", plain: "exists and is not a socket"} {
				cmd := exec.Command(helloBin, "-workers", workers, "-bind", "unix:"+path, "-metrics-bind", "127.0.0.1:0", "-metrics-dir", t.TempDir())
				out, err := cmd.CombinedOutput()
				want := "hello: -bind: listen unix " + path + ": " + why + "\n"
				if cmd.ProcessState.ExitCode() != 2 || string(out) != want {
					t.Errorf("%s: exit %v, output %q; want status 2 and %q", filepath.Base(path), err, out, want)
				}
				if _, err := os.Lstat(path); err != nil {
					t.Errorf("%s was removed: %v", path, err)
				}
			}
			if c, err := net.Dial("unix", live); err != nil {
				t.Errorf("the other server's socket no longer works: %v", err)
			} else {
				c.Close()
			}
		})
	}
}

func TestBadBindIsOneLine(t *testing.T) {
	t.Parallel()
	long := "unix:/" + strings.Repeat("d", 110)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-bind", "unix:"}, "hello: -bind: unix: needs a path (unix:/run/app.sock)"},
		{[]string{"-bind", long}, `hello: -bind: bad address "` + long + `": path longer than 107 bytes`},
		{[]string{"-bind", "unix:/no/such/dir/app.sock"}, "hello: -bind: unix:/no/such/dir/app.sock: directory /no/such/dir does not exist"},
		{[]string{"-bind", "127.0.0.1:0", "-bind", "127.0.0.1:0"}, "hello: -bind: 127.0.0.1:0 given twice"},
		{[]string{"-bind-mode", "0999"}, `hello: invalid value "0999" for flag -bind-mode: not a mode in octal from 0001 to 0777: "0999"`},
	} {
		cmd := exec.Command(helloBin, append([]string{"-workers", "1", "-metrics-bind", "off", "-metrics-dir", t.TempDir()}, tc.args...)...)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 2 || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("%v: status %d, output %q; want 2 and %q", tc.args, cmd.ProcessState.ExitCode(), out, tc.want)
		}
	}
}

// Two rolling restarts, a worker added and one removed, under load over a
// TCP address and a unix socket at once: not one request fails, and the
// merged counter counts exactly the requests the clients saw answered.
func TestEveryListenerLosesNothing(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			sock := filepath.Join(testutil.SockDir(t), "app.sock")
			p := startHello(t, "-workers", "2", "-listener-mode", mode, "-bind", "unix:"+sock)
			p.waitReady(2)
			tcp := startLoad(t, p.app, "/hello", 4, 2*time.Minute)
			uds := startLoadWith(t, "http://herd", "/hello", 4, 2*time.Minute, func(keepAlive bool) *http.Transport {
				return unixTransport(sock, keepAlive)
			})
			flowing := func() {
				tcp.waitFor(t, 100)
				uds.waitFor(t, 100)
			}
			flowing()
			for round := 1; round <= 2; round++ {
				p.reload(t, 2, 30*time.Second, fmt.Sprintf("HUP %d", round))
				flowing()
			}
			p.cmd.Process.Signal(syscall.SIGTTIN)
			p.waitWorkers(30*time.Second, "TTIN adds a worker", func(ws []workerInfo) bool { return len(readyPIDs(ws)) == 3 })
			flowing()
			p.cmd.Process.Signal(syscall.SIGTTOU)
			p.waitWorkers(30*time.Second, "TTOU removes a worker", func(ws []workerInfo) bool { return len(ws) == 2 && len(readyPIDs(ws)) == 2 })
			flowing()
			okTCP, okUnix := tcp.check(t), uds.check(t)
			t.Logf("%s: %d requests over TCP, %d over the unix socket, %d failed", mode, okTCP, okUnix, tcp.failed.Load()+uds.failed.Load())
			p.checkCountEquals(t, okTCP+okUnix)
		})
	}
}
