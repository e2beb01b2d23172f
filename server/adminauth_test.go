package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
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

// writeUsers writes a users file of name:password pairs hashed with the
// given rounds and returns its path.
func writeUsers(t testing.TB, rounds int, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		h, err := hashPassword(pairs[i+1], rounds)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", pairs[i], h)
	}
	p := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// authStatus runs one request through a's check as if from addr and
// returns the status and the Retry-After header.
func authStatus(a *basicAuth, ctx context.Context, addr, user, pass string) (int, string) {
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest("GET", "/metrics", nil).WithContext(ctx)
	req.RemoteAddr = addr
	req.SetBasicAuth(user, pass)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Header().Get("Retry-After")
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// fromAddr is a client whose connections come from the loopback address ip.
func fromAddr(ip string, timeout time.Duration) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// A hundred clients guessing passwords at once, each giving up after a
// second, must neither make a scraper with valid (not yet remembered)
// credentials wait for their hashing nor leave the admin server holding
// their connections. Both are measured in PBKDF2 work, not time: when the
// good scrape succeeds, and when the server's descriptors are back to what
// they were, the master must have hashed at most a few passwords.
func TestBadPasswordsDoNotDelayAGoodScrape(t *testing.T) {
	const rounds = 50_000
	users := writeUsers(t, rounds, "prometheus", "s3cret")
	base, sec := serveAdmin(t, Config{AdminBasicAuthFile: users})
	fds := openFDs(t)

	const attackers = 100
	var wrote, done atomic.Int32
	var wg sync.WaitGroup
	bad := fromAddr("127.0.0.2", time.Second)
	for i := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer done.Add(1)
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Add(1) }}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", base+"/metrics", nil)
			req.SetBasicAuth("prometheus", "guess"+strconv.Itoa(i))
			if resp, err := bad.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	if !testutil.Until(30*time.Second, func() bool { return wrote.Load()+done.Load() >= attackers }) {
		t.Fatalf("only %d of %d bad requests were sent", wrote.Load(), attackers)
	}

	// The scraper retries on 429 after Retry-After, as a client should.
	good := &http.Client{Timeout: 60 * time.Second}
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	var atSuccess uint64
	for {
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		req.SetBasicAuth("prometheus", "s3cret")
		resp, err := good.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			atSuccess = sec.auth.rounds.Load()
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("good scrape: status %d", resp.StatusCode)
		}
		wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || wait < 1 || wait > 10 {
			t.Fatalf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
		}
		time.Sleep(time.Duration(wait) * time.Second) // what Retry-After asks of the client
	}
	good.CloseIdleConnections()
	t.Logf("good scrape: 200 after %v, %d password hashes so far", time.Since(start).Round(time.Millisecond), atSuccess/rounds)
	if n := atSuccess / rounds; n > 10 {
		t.Errorf("the good scrape succeeded after %d password hashes: it waited for the bad ones", n)
	}

	wg.Wait()
	if !testutil.Until(30*time.Second, func() bool { return openFDs(t) <= fds }) {
		t.Fatalf("%d descriptors open 30 s after the attack, %d before", openFDs(t), fds)
	}
	t.Logf("%d bad requests: %d hashed in all, descriptors back to %d", attackers, sec.auth.rounds.Load()/rounds-1, openFDs(t))
	if n := sec.auth.rounds.Load() / rounds; n > 10 {
		t.Errorf("the server hashed %d passwords for %d clients that gave up: it worked for them after they left", n, attackers)
	}
}

// A wrong password costs the same PBKDF2 work whichever user it names,
// existing or not: the work (and so the answer's timing) is that of the
// user with the most rounds.
func TestEveryFailureCostsTheHighestRounds(t *testing.T) {
	const fast, slow = minRounds, 20 * minRounds
	a, err := newBasicAuth(writeUsers(t, fast, "fast", "a"))
	if err != nil {
		t.Fatal(err)
	}
	// Add a user with more rounds to the same file.
	h, _ := hashPassword("b", slow)
	f, _ := os.OpenFile(a.path, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "slow:%s\n", h)
	f.Close()
	if a, err = newBasicAuth(a.path); err != nil {
		t.Fatal(err)
	}
	for i, user := range []string{"fast", "slow", "nobody"} {
		before := a.rounds.Load()
		code, _ := authStatus(a, context.Background(), fmt.Sprintf("192.0.2.%d:1234", i), user, "wrong")
		if code != 401 {
			t.Errorf("%s with a wrong password: %d, want 401", user, code)
		}
		if got := a.rounds.Load() - before; got != slow {
			t.Errorf("a wrong password for %s cost %d rounds, want %d (the highest): timing tells the users apart", user, got, slow)
		}
	}
}

// A client that has gone before its password is hashed costs no hashing.
func TestGoneClientCostsNoHashing(t *testing.T) {
	a, err := newBasicAuth(writeUsers(t, minRounds, "prometheus", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code, _ := authStatus(a, ctx, "192.0.2.1:1234", "prometheus", "guess"); code == 200 {
		t.Error("a gone client's wrong password was accepted")
	}
	if n := a.rounds.Load(); n != 0 {
		t.Errorf("%d rounds computed for a client that had gone", n)
	}
}

// An address that keeps failing is refused without hashing (429 with
// Retry-After) once its budget is spent; other addresses are not affected.
func TestFailuresAreLimitedPerAddress(t *testing.T) {
	a, err := newBasicAuth(writeUsers(t, minRounds, "prometheus", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	limited := 0
	for i := range 20 {
		code, retry := authStatus(a, context.Background(), "192.0.2.1:1234", "prometheus", "guess"+strconv.Itoa(i))
		switch code {
		case 401:
		case 429:
			limited++
			if n, err := strconv.Atoi(retry); err != nil || n < 1 {
				t.Errorf("429 with Retry-After %q, want whole seconds", retry)
			}
		default:
			t.Fatalf("guess %d: status %d", i, code)
		}
	}
	if hashed := a.rounds.Load() / minRounds; hashed > 10 || limited < 10 {
		t.Errorf("20 guesses from one address: %d hashed, %d refused with 429; want at most 10 hashed", hashed, limited)
	}
	if code, _ := authStatus(a, context.Background(), "192.0.2.2:1234", "prometheus", "s3cret"); code != 200 {
		t.Errorf("another address with the right password: %d, want 200", code)
	}
}

// BenchmarkCachedCredentialCheck is the cost basic auth adds to a scrape
// whose credentials already verified once.
func BenchmarkCachedCredentialCheck(b *testing.B) {
	a, err := newBasicAuth(writeUsers(b, minRounds, "prometheus", "s3cret"))
	if err != nil {
		b.Fatal(err)
	}
	ok := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.SetBasicAuth("prometheus", "s3cret")
	w := httptest.NewRecorder()
	ok.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("status %d", w.Code)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		ok.ServeHTTP(w, req)
	}
}

// Emptying or removing the users file while the master runs revokes every
// credential, remembered ones included, and the log says why.
func TestRevokingBasicAuthFailsClosed(t *testing.T) {
	users := writeUsers(t, minRounds, "prometheus", "s3cret")
	good, _ := os.ReadFile(users)
	base, sec := serveAdmin(t, Config{AdminBasicAuthFile: users})
	var logBuf testutil.SyncBuffer
	sec.auth.mu.Lock()
	sec.auth.log = slog.New(slog.NewTextHandler(&logBuf, nil))
	sec.auth.mu.Unlock()
	status := func() int {
		code, _ := get(t, http.DefaultClient, base+"/metrics", "prometheus", "s3cret")
		return code
	}
	if code := status(); code != 200 {
		t.Fatalf("valid credentials: %d", code)
	}
	for _, revoke := range []struct {
		how string
		do  func() error
	}{
		{"emptied", func() error { return os.WriteFile(users, []byte("# nobody may scrape\n"), 0o600) }},
		{"removed", func() error { return os.Remove(users) }},
		{"broken", func() error { return os.WriteFile(users, []byte("prometheus:plaintext\n"), 0o600) }},
	} {
		if err := revoke.do(); err != nil {
			t.Fatal(err)
		}
		if !testutil.Until(10*time.Second, func() bool { return status() == 401 }) {
			t.Errorf("users file %s: remembered credentials still accepted 10 s later", revoke.how)
		}
		if !strings.Contains(logBuf.String(), "denying every request") {
			t.Errorf("users file %s: nothing logged:\n%s", revoke.how, logBuf.String())
		}
		// A good file again restores access.
		if err := os.WriteFile(users+".new", good, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Rename(users+".new", users)
		if !testutil.Until(10*time.Second, func() bool { return status() == 200 }) {
			t.Fatalf("users file restored after being %s: still denied", revoke.how)
		}
	}
}

// A users file that others can read, or that is no regular file, is refused
// at start-up with one line naming the flag; a FIFO does not hang the check.
func TestUsersFileMustBePrivateAndRegular(t *testing.T) {
	dir := t.TempDir()
	users := writeUsers(t, minRounds, "prometheus", "s3cret")
	if err := os.Chmod(users, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{users: "readable by every user", fifo: "not a regular file", dir: "not a regular file"} {
		done := make(chan error, 1)
		go func() {
			_, err := newBasicAuth(path)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.HasPrefix(err.Error(), "-admin-basic-auth-file: ") || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: error %v, want one line naming the flag and %q", filepath.Base(path), err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: reading it hangs", filepath.Base(path))
		}
	}
	// Group-readable is fine (a scraper's group may share it).
	os.Chmod(users, 0o640)
	if _, err := newBasicAuth(users); err != nil {
		t.Errorf("mode 0640: %v", err)
	}
}
