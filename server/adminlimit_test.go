package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"

	dto "github.com/prometheus/client_model/go"

	"github.com/herdhttp/herd/metrics"
	"github.com/herdhttp/herd/prefork"
)

func TestFailLimiterBudget(t *testing.T) {
	l := newFailLimiter(3, time.Second, 2)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := l.take("a", t0); !ok {
			t.Fatalf("failure %d of a burst of 3 refused", i+1)
		}
	}
	if ok, wait := l.take("a", t0); ok || wait != time.Second {
		t.Fatalf("4th failure at once: ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := l.take("a", t0.Add(time.Second)); !ok {
		t.Fatal("one more failure after `every` refused")
	}
	// A success gives its reservation back.
	l.refund("a", t0.Add(time.Second))
	if ok, _ := l.take("a", t0.Add(time.Second)); !ok {
		t.Fatal("refunded reservation not given back")
	}
	// Another address has its own budget.
	if ok, _ := l.take("b", t0); !ok {
		t.Fatal("b limited by a's failures")
	}
	// Past max addresses with spent budgets, new ones share one budget.
	for i := range 3 {
		if ok, _ := l.take("c", t0); !ok {
			t.Fatalf("untracked address: failure %d refused", i+1)
		}
	}
	if ok, _ := l.take("d", t0); ok {
		t.Error("untracked addresses do not share a budget")
	}
	// Addresses whose budget is full again are forgotten to make room.
	if ok, _ := l.take("e", t0.Add(time.Hour)); !ok {
		t.Error("a new address refused an hour later")
	}
	if n := len(l.addrs); n > 2 {
		t.Errorf("%d addresses tracked, max 2", n)
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:1234":             "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:443":      "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1":       "192.0.2.7",
		"not an address":             "not an address",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// With every hash slot taken, a password to verify is answered 429 at once,
// without hashing and without spending the client's failure budget.
func TestBusyHashingAnswers429(t *testing.T) {
	a, err := newBasicAuth(writeUsers(t, minRounds, "prometheus", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	for range hashSlots {
		a.slots <- struct{}{}
	}
	code, retry := authStatus(a, context.Background(), "192.0.2.1:1", "prometheus", "guess")
	if code != 429 || retry != "1" {
		t.Errorf("all slots busy: %d Retry-After %q, want 429 and 1", code, retry)
	}
	if a.rounds.Load() != 0 || len(a.fails.addrs) != 0 {
		t.Errorf("a refused request hashed (%d rounds) or spent budget (%v)", a.rounds.Load(), a.fails.addrs)
	}
	for range hashSlots {
		<-a.slots
	}
	if code, _ := authStatus(a, context.Background(), "192.0.2.1:1", "prometheus", "s3cret"); code != 200 {
		t.Errorf("a free slot: %d, want 200", code)
	}
}

// serveLimited serves a /healthz handler on a connLimiter of max
// connections over 127.0.0.1.
func serveLimited(t *testing.T, max int, evictAfter time.Duration) *connLimiter {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitConns(inner, max)
	l.evictAfter = evictAfter
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l
}

// rawConn is a client connection that sends HTTP/1.1 requests by hand.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// get sends GET /healthz and returns the status, or the error (a closed
// connection) that came instead.
func (c *rawConn) get() (int, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// closedByPeer reports whether the server closed c (rather than the read
// timing out).
func (c *rawConn) closedByPeer() bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestConnLimiterClosesExcessAtOnce(t *testing.T) {
	l := serveLimited(t, 3, time.Hour) // nothing waits long enough to be evicted
	addr := l.Addr().String()
	var held []*rawConn
	for i := range 3 {
		c := dialRaw(t, addr)
		if code, err := c.get(); code != 200 {
			t.Fatalf("connection %d: %d %v", i, code, err)
		}
		held = append(held, c)
	}
	extra := dialRaw(t, addr)
	if !extra.closedByPeer() {
		t.Fatal("a connection past the cap was not closed")
	}
	if n, open := l.refused.Load(), l.open(); n != 1 || open != 3 {
		t.Errorf("refused %d, open %d; want 1 and 3", n, open)
	}
	// The held ones still work; one closing makes room.
	if code, err := held[1].get(); code != 200 {
		t.Errorf("a held connection: %d %v", code, err)
	}
	held[0].Close()
	if !testutil.Until(10*time.Second, func() bool { return l.open() == 2 }) {
		t.Fatalf("a closed connection is still counted: %d open", l.open())
	}
	if code, err := dialRaw(t, addr).get(); code != 200 {
		t.Errorf("a new connection after one closed: %d %v", code, err)
	}
}

func TestConnLimiterEvictsTheLongestWaiting(t *testing.T) {
	l := serveLimited(t, 2, 0)
	addr := l.Addr().String()
	// The server notes that a connection waits after its write returns,
	// which may be after the client has read the response: wait for each
	// note before the next request, so that a has waited longest.
	allWaiting := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for lc := range l.conns {
			if lc.waiting.Load() == 0 {
				return false
			}
		}
		return true
	}
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range []*rawConn{a, b} {
		if code, err := c.get(); code != 200 {
			t.Fatalf("%d %v", code, err)
		}
		if !testutil.Until(10*time.Second, allWaiting) {
			t.Fatal("the server did not note the connection waiting")
		}
	}
	// a has waited longest for its client: a newcomer takes its place.
	c := dialRaw(t, addr)
	if code, err := c.get(); code != 200 {
		t.Fatalf("newcomer at the cap: %d %v", code, err)
	}
	if !a.closedByPeer() {
		t.Error("the longest-waiting connection was not closed")
	}
	if code, err := b.get(); code != 200 {
		t.Errorf("the other connection: %d %v", code, err)
	}
	// Connections in the middle of a request are never evicted.
	for _, c := range []*rawConn{b, c} {
		io.WriteString(c, "GET /healthz HTTP/1.1\r\n")
	}
	busy := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for lc := range l.conns {
			if lc.waiting.Load() != 0 {
				return false
			}
		}
		return true
	}
	if !testutil.Until(10*time.Second, busy) {
		t.Fatal("the server did not read the partial requests")
	}
	if !dialRaw(t, addr).closedByPeer() {
		t.Error("a newcomer evicted a connection in the middle of a request")
	}
	if l.evicted.Load() != 1 || l.refused.Load() != 1 {
		t.Errorf("evicted %d, refused %d; want 1 and 1", l.evicted.Load(), l.refused.Load())
	}
}

func TestConnCapIsWellBelowTheDescriptorLimit(t *testing.T) {
	for nofile, want := range map[uint64]int{16: 4, 40: 5, 64: 8, 1024: 128, 65536: 256, 1 << 20: 256} {
		if got := connCap(nofile); got != want {
			t.Errorf("connCap(%d) = %d, want %d", nofile, got, want)
		}
	}
}

// adminHelperEnv makes the test binary an admin server with a descriptor
// limit of its value (TestAdminServerHelperProcess).
const adminHelperEnv = "HERD_TEST_ADMIN_NOFILE"

// TestAdminServerHelperProcess is not a test: run by
// TestAdminConnectionsCannotExhaustDescriptors with adminHelperEnv set, it
// serves the admin endpoints under a low descriptor limit until its
// standard input closes.
func TestAdminServerHelperProcess(t *testing.T) {
	limit, err := strconv.ParseUint(os.Getenv(adminHelperEnv), 10, 64)
	if err != nil {
		return // not run as the helper
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := Config{MetricsBind: "127.0.0.1:0"}
	ln, err := listenAdmin(cfg.MetricsBind, &adminSecurity{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	g := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, nil })
	startAdmin(ln, adminMux(g, singleWorker, t.TempDir(), &adminSecurity{}, nil), slog.New(slog.DiscardHandler))
	fmt.Printf("admin %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// A client holding many idle connections to the admin listener (no
// credentials needed for /healthz) must not use up the master's
// descriptors: an admin server limited to 64 holds at most its cap of
// connections, however many are opened, and still answers a probe.
func TestAdminConnectionsCannotExhaustDescriptors(t *testing.T) {
	const nofile = 64
	cmd := exec.Command(os.Args[0], "-test.run=^TestAdminServerHelperProcess$")
	cmd.Env = append(os.Environ(), adminHelperEnv+"="+strconv.Itoa(nofile))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("admin helper: %v\n%s", err, stderr.String())
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "admin ")
	if err != nil || !ok {
		t.Fatalf("admin helper said %q (%v)\n%s", line, err, stderr.String())
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
	fds := func() int {
		ents, _ := os.ReadDir(fdDir)
		return len(ents)
	}
	before := fds()
	for range 100 {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rc := &rawConn{Conn: c, r: bufio.NewReader(c)}
		rc.get() // served, or closed at the cap
	}
	if n, limit := fds()-before, connCap(nofile); n > limit+1 {
		t.Errorf("the admin server holds %d more descriptors after 100 idle connections, want at most its cap %d (+1 being accepted); limit %d", n, limit, nofile)
	}
	// A probe still gets in (it takes the place of an idle connection).
	probe := func() bool {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		code, _ := (&rawConn{Conn: c, r: bufio.NewReader(c)}).get()
		return code == 200
	}
	if !testutil.Until(20*time.Second, probe) {
		t.Error("a probe on a fresh connection was never answered")
	}
}

// BenchmarkAdminScrape is a GET /metrics on a kept-alive connection to the
// admin listener (its connection cap included), with basic auth
// credentials remembered after the first request.
func BenchmarkAdminScrape(b *testing.B) {
	users := writeUsers(b, minRounds, "prometheus", "s3cret")
	cfg := Config{MetricsBind: "127.0.0.1:0", AdminBasicAuthFile: users}
	sec, err := newAdminSecurity(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := listenAdmin(cfg.MetricsBind, sec)
	if err != nil {
		b.Fatal(err)
	}
	g := metrics.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, nil })
	srv := startAdmin(ln, adminMux(g, singleWorker, b.TempDir(), sec, nil), slog.New(slog.DiscardHandler))
	defer stopAdmin(srv)
	client := &http.Client{}
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/metrics", nil)
	req.SetBasicAuth("prometheus", "s3cret")
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// singleWorker is the worker list of a process that serves alone.
func singleWorker() []prefork.WorkerInfo {
	return []prefork.WorkerInfo{{Slot: 0, ID: "0a", PID: os.Getpid(), State: prefork.StateReady}}
}
