package integration

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// fillFilesystem writes a file into dir until its filesystem is full and
// returns the file's path.
func fillFilesystem(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			return path
		}
	}
}

// A metrics directory with 16 KiB free made every worker fail at boot
// ("reserve 65536 bytes: no space left on device") and the master exit 1
// without saying why. It is refused before anything is forked.
func TestTooLittleSpaceIsRefusedBeforeForking(t *testing.T) {
	for _, workers := range []string{"2", "0"} {
		t.Run("workers="+workers, func(t *testing.T) {
			mnt := testutil.MountTmpfs(t, "16k", 0o700)
			code, stderr := runToExit(t, nil, mnt, "-workers", workers)
			checkOneLine(t, code, stderr, mnt, "-metrics-dir: "+mnt+" has 16384 bytes free", "need", "choose another directory with -metrics-dir")
		})
	}
}

// When the filesystem fills up at run time the workers keep serving; the
// series they cannot create are counted, the failures logged at most once
// a minute per worker, and /healthz says so.
func TestFullFilesystemAtRunTime(t *testing.T) {
	mnt := testutil.MountTmpfs(t, "1m", 0o700)
	p := startHello(t, "-workers", "2", "-metrics-dir", mnt)
	p.waitReady(2)
	filler := fillFilesystem(t, mnt)
	// Every request needs the histogram file that cannot be created now:
	// a failure per request, for longer than the registry's own one-second
	// limit on its log.
	client := keepAliveClient()
	served := 0
	for start := time.Now(); time.Since(start) < 3*time.Second; served += 20 {
		sendN(t, client, p.app, 20, 2, func(int) string { return "/hello" })
	}
	mfs := p.scrape()
	if errs, _ := value(mfs, "herd_metrics_write_errors_total", nil); errs < float64(served)/2 {
		t.Errorf("herd_metrics_write_errors_total = %v after %d requests on a full filesystem", errs, served)
	}
	if n, _ := value(mfs, "http_requests_total", helloLabels); n != float64(served) {
		t.Errorf("http_requests_total = %v, want %d: the counter file existed before the filesystem filled up", n, served)
	}
	dropped := map[string]int{}
	for _, line := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(line, "series dropped") {
			dropped[logField(line, "worker")]++
		}
	}
	if len(dropped) == 0 {
		t.Error("no \"series dropped\" in the log")
	}
	for w, n := range dropped {
		if n > 1 {
			t.Errorf("worker %s logged \"series dropped\" %d times in 3 s, want at most once a minute", w, n)
		}
	}
	code, body := getBody(t, p.admin+"/healthz")
	if code != 200 || !strings.HasPrefix(body, "ok\n") || !strings.Contains(body, "metrics directory") || !strings.Contains(body, "is full") {
		t.Errorf("/healthz on a full filesystem: %d %q, want 200, ok, and a line saying the directory is full", code, body)
	}
	os.Remove(filler)
	if code, body := getBody(t, p.admin+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz after space was freed: %d %q", code, body)
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
