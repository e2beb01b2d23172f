package integration

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// With -admin-pprof the admin listener serves each worker's profiles at
// /debug/pprof/worker/{slot}/, behind its TLS and basic auth, from a
// private socket in the run directory.
func TestWorkerProfilesThroughTheAdminListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	users := filepath.Join(dir, "users")
	os.WriteFile(users, []byte("ops:"+passlibHash("s3cret")+"\n"), 0o600)
	p := startHello(t, "-workers", "2", "-admin-pprof", "-admin-tls-cert", certFile, "-admin-tls-key", keyFile, "-admin-basic-auth-file", users)
	admin := "https://" + strings.TrimPrefix(p.admin, "http://")
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path, user, pass string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", admin+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var ws []workerInfo
	testutil.Eventually(t, 20*time.Second, func() error {
		code, body := get("/workers", "ops", "s3cret")
		if code != 200 {
			return fmt.Errorf("/workers: %d", code)
		}
		if err := json.Unmarshal([]byte(body), &ws); err != nil {
			return err
		}
		if len(ws) != 2 || ws[0].State != "ready" || ws[1].State != "ready" {
			return fmt.Errorf("workers %+v", ws)
		}
		return nil
	})

	for _, path := range []string{"/debug/pprof/worker/0/goroutine?debug=1", "/debug/pprof/worker/0/", "/"} {
		if code, _ := get(path, "", ""); code != 401 {
			t.Errorf("GET %s without credentials: %d, want 401", path, code)
		}
		if code, _ := get(path, "ops", "guess"); code != 401 {
			t.Errorf("GET %s with a wrong password: %d, want 401", path, code)
		}
	}
	code, body := get("/debug/pprof/worker/0/goroutine?debug=1", "ops", "s3cret")
	if code != 200 || !strings.Contains(body, "github.com/herdhttp/herd/server.runWorker") {
		t.Errorf("slot 0's goroutines: %d, want a dump naming the worker's code (server.runWorker):\n%.1000s", code, body)
	}
	for _, w := range ws {
		code, body := get(fmt.Sprintf("/debug/pprof/worker/%d/", w.Slot), "ops", "s3cret")
		if want := fmt.Sprintf("Profiles of worker pid %d", w.PID); code != 200 || !strings.Contains(body, want) {
			t.Errorf("slot %d's profiles: %d, want %q:\n%.500s", w.Slot, code, want, body)
		}
		sock := filepath.Join(p.dir, "pprof_"+w.ID+".sock")
		fi, err := os.Stat(sock)
		if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v (%v), want a socket of mode 0600", sock, fi.Mode(), err)
		}
	}
	if code, _ := get("/debug/pprof/worker/5/goroutine?debug=1", "ops", "s3cret"); code != 404 {
		t.Errorf("an unknown slot: %d, want 404", code)
	}
	if code, body := get("/", "ops", "s3cret"); code != 200 || !strings.Contains(body, `href="debug/pprof/worker/1/"`) {
		t.Errorf("the status page: %d, want links to the profiles:\n%s", code, body)
	}
}

// Without -admin-pprof nothing is served and no socket is opened.
func TestWorkerProfilesAreOffByDefault(t *testing.T) {
	t.Parallel()
	p := startHello(t, "-workers", "1")
	p.waitReady(1)
	resp, err := http.Get(p.admin + "/debug/pprof/worker/0/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("without -admin-pprof: %s, want 404", resp.Status)
	}
	if socks, _ := filepath.Glob(filepath.Join(p.dir, "*.sock")); len(socks) != 0 {
		t.Errorf("without -admin-pprof the workers opened %v", socks)
	}
}
