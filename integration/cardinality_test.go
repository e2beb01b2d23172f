package integration

// Label cardinality: requests for any number of distinct paths create no new
// series and no new metric files, since routes, not raw paths, are labels.

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// seriesCount counts the series of every family except the self-metrics
// whose label sets depend on the process table.
func seriesCount(mfs map[string]*dto.MetricFamily) int {
	n := 0
	for name, mf := range mfs {
		if strings.HasPrefix(name, "herd_process_") {
			continue
		}
		n += len(mf.GetMetric())
	}
	return n
}

// dirSizes returns the size of every file of dir.
func dirSizes(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			m[e.Name()] = fi.Size()
		}
	}
	return m
}

// pipelined sends the requests paths (GET, HTTP/1.1) over conns keep-alive
// connections, pipelining up to depth requests on each, and returns the
// number of responses per status code.
func pipelined(t *testing.T, addr string, conns, depth int, paths []string) map[int]int {
	t.Helper()
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		errs  []error
		wg    sync.WaitGroup
	)
	per := (len(paths) + conns - 1) / conns
	for c := range conns {
		lo, hi := c*per, min((c+1)*per, len(paths))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(mine []string) {
			defer wg.Done()
			local := map[int]int{}
			err := func() error {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					return err
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(2 * time.Minute))
				sent := make(chan error, 1)
				window := make(chan struct{}, depth)
				go func() {
					w := bufio.NewWriter(nc)
					for _, path := range mine {
						window <- struct{}{}
						fmt.Fprintf(w, "GET %s HTTP/1.1\r\nHost: herd\r\n\r\n", path)
						if len(window) == depth || path == mine[len(mine)-1] {
							if err := w.Flush(); err != nil {
								sent <- err
								return
							}
						}
					}
					sent <- w.Flush()
				}()
				r := bufio.NewReader(nc)
				for range mine {
					resp, err := http.ReadResponse(r, nil)
					if err != nil {
						return err
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					local[resp.StatusCode]++
					<-window
				}
				return <-sent
			}()
			mu.Lock()
			defer mu.Unlock()
			for k, v := range local {
				codes[k] += v
			}
			if err != nil {
				errs = append(errs, err)
			}
		}(paths[lo:hi])
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	return codes
}

func TestHundredThousandRandomPathsAddNoSeries(t *testing.T) {
	const n = 100_000
	p := startHello(t, "-workers", "2")
	p.waitReady(2)
	addr := strings.TrimPrefix(p.app, "http://")
	// Warm up: create, in every worker, the series random paths will land
	// in (connections are spread over the workers by the kernel).
	var warm []string
	for range 16 {
		warm = append(warm, "/warm-up", "/users/warm-up", "/hello")
	}
	pipelined(t, addr, 16, 1, warm)
	before := p.scrape()
	sizes := dirSizes(t, p.runDir())
	paths := make([]string, n)
	for i := range paths {
		switch i % 4 {
		case 0:
			paths[i] = fmt.Sprintf("/%x", rand.Uint64())
		case 1:
			paths[i] = fmt.Sprintf("/%x/%x?q=%x", rand.Uint64(), rand.Uint32(), rand.Uint32())
		case 2:
			paths[i] = fmt.Sprintf("/users/%x", rand.Uint64()) // a route with a parameter
		default:
			paths[i] = fmt.Sprintf("/hello/%x", rand.Uint32()) // near miss of a route
		}
	}
	start := time.Now()
	codes := pipelined(t, addr, 16, 32, paths)
	took := time.Since(start)
	if got := codes[200] + codes[404]; got != n {
		t.Fatalf("responses by status %v, want %d in all (200 and 404)", codes, n)
	}
	after := p.scrape()
	if b, a := seriesCount(before), seriesCount(after); a != b {
		var names []string
		for name, mf := range after {
			if len(mf.GetMetric()) != len(before[name].GetMetric()) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		t.Errorf("series: %d before, %d after %d random paths (families that changed: %v)", b, a, n, names)
	}
	unmatched, _ := value(after, "http_requests_total", map[string]string{"method": "GET", "code": "404"})
	users, _ := value(after, "http_requests_total", map[string]string{"method": "GET", "route": "/users/{id}", "code": "200"})
	if int(unmatched) != codes[404]+16 || int(users) != codes[200]+16 {
		t.Errorf("counted %v 404s and %v /users/{id}, clients got %d and %d (+16 warm-up each)", unmatched, users, codes[404], codes[200])
	}
	now := dirSizes(t, p.runDir())
	for name, size := range now {
		if size != sizes[name] {
			t.Errorf("%s: %d bytes, was %d", name, size, sizes[name])
		}
	}
	if len(now) != len(sizes) {
		t.Errorf("run directory had %d files, now %d", len(sizes), len(now))
	}
	t.Logf("%d random paths in %s (%.0f req/s, 16 pipelined connections): series %d before and after, metric files unchanged",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), seriesCount(after))
}
