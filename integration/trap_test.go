package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// TestTrap3_FilesRemovedUnderLiveWorkersLoseNoCount is the seed article's
// third trap through the real binary: a cleanup deletes every metric file
// while the workers serve. Python's writers would go on writing into the
// unlinked files and every later increment would be lost; herd's workers
// notice within a second and recreate their files with their current
// values, so the counts of before and after the deletion all reach /metrics.
func TestTrap3_FilesRemovedUnderLiveWorkersLoseNoCount(t *testing.T) {
	t.Parallel()
	for _, workers := range []string{"2", "0"} {
		t.Run("workers="+workers, func(t *testing.T) {
			p := startHello(t, "-workers", workers)
			if workers == "0" {
				p.waitReady(1)
			} else {
				p.waitReady(2)
			}
			sendN(t, keepAliveClient(), p.app, 100, 4, func(int) string { return "/hello" })
			files, err := filepath.Glob(filepath.Join(p.dir, "*.db"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no metric files in %s: %v", p.dir, err)
			}
			for _, f := range files {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
			sendN(t, keepAliveClient(), p.app, 100, 4, func(int) string { return "/hello" })
			testutil.Eventually(t, 10*time.Second, func() error {
				if got := p.helloCount(); got != 200 {
					return fmt.Errorf("http_requests_total{route=\"/hello\"} = %v after the files were removed, want 200", got)
				}
				return nil
			})
		})
	}
}
