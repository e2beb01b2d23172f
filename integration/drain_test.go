package integration

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

func TestSIGTERMLetsSlowRequestsFinish(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			p := startHello(t, "-workers", "2", "-listener-mode", mode)
			p.waitReady(2)
			const n = 10
			var wg sync.WaitGroup
			results := make(chan error, n)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
					resp, err := client.Get(p.app + "/sleep/1500")
					if err != nil {
						results <- err
						return
					}
					defer resp.Body.Close()
					_, err = io.ReadAll(resp.Body)
					if err == nil && resp.StatusCode != 200 {
						err = &statusError{resp.Status}
					}
					results <- err
				}()
			}
			// Wait until every slow request is being served: the in-flight
			// gauge counts them over all workers.
			testutil.Eventually(t, 10*time.Second, func() error {
				if v, _ := value(p.scrape(), "http_requests_in_flight", nil); v != n {
					return fmt.Errorf("in-flight gauge = %v, want %d", v, n)
				}
				return nil
			})
			p.cmd.Process.Signal(syscall.SIGTERM)
			wg.Wait()
			close(results)
			for err := range results {
				if err != nil {
					t.Errorf("slow request failed during graceful stop: %v", err)
				}
			}
			if code := p.wait(30 * time.Second); code != 0 {
				t.Errorf("exit status %d, want 0", code)
			}
		})
	}
}

type statusError struct{ status string }

func (e *statusError) Error() string { return "status " + e.status }
