package integration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
)

// Queue depth through the real binary: a worker stopped by SIGSTOP shows as connections
// waiting in its slot's listen queue, herd_listen_queue_length{worker="<slot>"}.

// waitingConns opens connections that each send GET /hello and read the answer in the
// background.
type waitingConns struct {
	mu       sync.Mutex
	opened   int
	answered int
	errs     []error
	conns    []net.Conn
}

func newWaitingConns(t *testing.T) *waitingConns {
	w := &waitingConns{}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, c := range w.conns {
			c.Close()
		}
	})
	return w
}

func (w *waitingConns) open(t *testing.T, app string, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial("tcp", strings.TrimPrefix(app, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		if _, err := io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		w.mu.Lock()
		w.opened++
		w.conns = append(w.conns, c)
		w.mu.Unlock()
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %s", resp.Status)
				}
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if err != nil {
				w.errs = append(w.errs, err)
				return
			}
			w.answered++
		}()
	}
}

// state returns the connections opened, answered, and not answered yet, and the failures.
func (w *waitingConns) state() (opened, answered, waiting int, errs []error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.opened, w.answered, w.opened - w.answered - len(w.errs), append([]error(nil), w.errs...)
}

// stopAllThreads sends SIGSTOP to pid and waits until every thread of it is stopped (until then
// one may still accept a connection); cleanup continues it.
func stopAllThreads(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	testutil.Eventually(t, 10*time.Second, func() error {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return err
		}
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			i := bytes.LastIndexByte(b, ')')
			if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				return errors.New("a thread of the worker still runs")
			}
		}
		return nil
	})
}

// listenQueue returns herd_listen_queue_length and _limit of worker.
func (p *proc) listenQueue(worker string) (length, limit float64, err error) {
	mfs, err := scrapeErr(p.admin)
	if err != nil {
		return 0, 0, err
	}
	length, ok1 := value(mfs, "herd_listen_queue_length", map[string]string{"worker": worker})
	limit, ok2 := value(mfs, "herd_listen_queue_limit", map[string]string{"worker": worker})
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("no herd_listen_queue_length/limit{worker=%q}", worker)
	}
	return length, limit, nil
}

func readSomaxconn(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return float64(min(n, 1<<16-1))
}

func TestStoppedWorkerShowsAsListenQueue(t *testing.T) {
	t.Parallel()
	const want = 20
	// A long heartbeat timeout: the stopped worker must stay in place for the test.
	p := startHello(t, "-workers", "2", "-timeout", "2m")
	ws := p.waitReady(2)
	stopAllThreads(t, ws[0].PID)
	// Every slot has a ready worker, so the kernel spreads connections by a hash of their
	// addresses, which a client cannot choose: open connections until want of them wait.
	// Once the live worker answered all it got, slot 0's queue holds exactly the rest.
	wc := newWaitingConns(t)
	var q0, limit float64
	for waiting := 0; waiting < want; {
		if opened, _, _, _ := wc.state(); opened >= 400 {
			t.Fatalf("400 connections opened and fewer than %d wait on the stopped slot", want)
		}
		wc.open(t, p.app, want-waiting)
		testutil.Eventually(t, 20*time.Second, func() error {
			var q1 float64
			var err error
			if q0, limit, err = p.listenQueue("0"); err != nil {
				return err
			}
			if q1, _, err = p.listenQueue("1"); err != nil {
				return err
			}
			_, _, waiting, _ = wc.state()
			if q1 != 0 || q0 != float64(waiting) {
				return fmt.Errorf("queues: slot 0 %v, slot 1 %v; %d connections unanswered", q0, q1, waiting)
			}
			return nil
		})
	}
	opened, answered, waiting, errs := wc.state()
	if len(errs) > 0 {
		t.Fatalf("%d connections failed, first: %v", len(errs), errs[0])
	}
	if q0 < want || limit != readSomaxconn(t) {
		t.Errorf("herd_listen_queue_length{worker=\"0\"} %v, limit %v: want at least %d, limit net.core.somaxconn", q0, limit, want)
	}
	t.Logf("%d connections: %d answered by the live worker, %d waiting in the stopped worker's queue", opened, answered, waiting)
	syscall.Kill(ws[0].PID, syscall.SIGCONT)
	testutil.Eventually(t, 20*time.Second, func() error {
		if _, answered, waiting, errs := wc.state(); waiting > 0 || len(errs) > 0 || answered != opened {
			return fmt.Errorf("%d of %d answered, errors %v", answered, opened, errs)
		}
		return nil
	})
	if q, _, err := p.listenQueue("0"); err != nil || q != 0 {
		t.Errorf("slot 0 queue %v (%v) after its worker took it, want 0", q, err)
	}
	p.checkCountEquals(t, int64(opened))
}

func TestSharedListenQueue(t *testing.T) {
	t.Parallel()
	const want = 20
	p := startHello(t, "-workers", "1", "-listener-mode", "shared", "-timeout", "2m")
	ws := p.waitReady(1)
	stopAllThreads(t, ws[0].PID)
	wc := newWaitingConns(t)
	wc.open(t, p.app, want)
	testutil.Eventually(t, 20*time.Second, func() error {
		q, limit, err := p.listenQueue("shared")
		if err != nil {
			return err
		}
		if q != want || limit != readSomaxconn(t) {
			return fmt.Errorf("herd_listen_queue_length{worker=\"shared\"} %v, limit %v; want %d", q, limit, want)
		}
		return nil
	})
	syscall.Kill(ws[0].PID, syscall.SIGCONT)
	testutil.Eventually(t, 20*time.Second, func() error {
		if _, answered, _, errs := wc.state(); answered != want || len(errs) > 0 {
			return fmt.Errorf("%d of %d answered, errors %v", answered, want, errs)
		}
		return nil
	})
}
