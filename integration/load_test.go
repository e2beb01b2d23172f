package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// load sends GET requests to one path from several clients until stopped,
// counting successes and failures. Half the clients keep connections alive,
// half open a fresh connection per request, so both ways a connection can
// meet a worker replacement are exercised.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string // the first few failures
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// startLoad starts clients goroutines (at least 2) against base+path. Every
// request is bounded by a timeout; the whole load stops at stop() or after
// maxDur, whichever is first.
func startLoad(t *testing.T, base, path string, clients int, maxDur time.Duration) *load {
	t.Helper()
	return startLoadWith(t, base, path, clients, maxDur, func(keepAlive bool) *http.Transport {
		if keepAlive {
			return &http.Transport{MaxIdleConnsPerHost: 1}
		}
		return &http.Transport{DisableKeepAlives: true}
	})
}

// startLoadWith is startLoad with the clients' transports made by
// newTransport (another dialer, TLS): half keep connections alive.
func startLoadWith(t *testing.T, base, path string, clients int, maxDur time.Duration, newTransport func(keepAlive bool) *http.Transport) *load {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	l := &load{cancel: cancel}
	t.Cleanup(l.stop)
	for i := range clients {
		tr := newTransport(i%2 == 0)
		client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), "GET", base+path, nil)
				resp, err := client.Do(req)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					l.fail("reading body: " + err.Error())
				case resp.StatusCode != 200:
					l.fail(fmt.Sprintf("status %s", resp.Status))
				default:
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
	l.mu.Unlock()
}

// stop ends the load and waits for every client; it may be called twice.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// waitFor waits until the load has n more successful requests than now,
// so a test knows the load is really flowing around an event.
func (l *load) waitFor(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	testutil.Eventually(t, 20*time.Second, func() error {
		if l.ok.Load() < target {
			l.mu.Lock()
			defer l.mu.Unlock()
			return fmt.Errorf("load stalled: %d ok, %d failed, errors %v", l.ok.Load(), l.failed.Load(), l.errs)
		}
		return nil
	})
}

// check fails the test if any request failed, and returns the successes.
func (l *load) check(t *testing.T) int64 {
	t.Helper()
	l.stop()
	if f := l.failed.Load(); f > 0 {
		t.Errorf("%d of %d requests failed; first errors: %v", f, f+l.ok.Load(), l.errs)
	}
	return l.ok.Load()
}
