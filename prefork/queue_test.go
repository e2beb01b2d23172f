package prefork_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herdhttp/herd/internal/testutil"
	"github.com/herdhttp/herd/prefork"
)

// The master reads each slot's accept queue from the kernel: a stopped worker shows as a
// growing queue in its slot alone.

// pendingConns opens connections that each send one request and read the answer in the
// background, recording which slot answered.
type pendingConns struct {
	t        *testing.T
	addr     string
	mu       sync.Mutex
	opened   int
	answered map[int]int // slot: answers
	errs     []error
	conns    []net.Conn
}

func newPendingConns(t *testing.T, addr string) *pendingConns {
	p := &pendingConns{t: t, addr: addr, answered: map[int]int{}}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *pendingConns) open(n int) {
	p.t.Helper()
	for range n {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			p.t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		if _, err := fmt.Fprintf(c, "GET /info HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"); err != nil {
			p.t.Fatal(err)
		}
		p.mu.Lock()
		p.opened++
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		go func() {
			var wi workerInfo
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&wi)
				resp.Body.Close()
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if err != nil {
				p.errs = append(p.errs, err)
				return
			}
			p.answered[wi.Slot]++
		}()
	}
}

// state returns the connections opened, those not answered yet, and the answers per slot.
func (p *pendingConns) state() (opened, waiting int, answered map[int]int, errs []error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	answered = map[int]int{}
	for s, k := range p.answered {
		answered[s] = k
		n += k
	}
	return p.opened, p.opened - n - len(p.errs), answered, append([]error(nil), p.errs...)
}

// stopWorker sends SIGSTOP to pid and waits until every thread of it is stopped: until
// then, one may still accept a connection. Cleanup continues it.
func stopWorker(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	testutil.EventuallyTrue(t, 10*time.Second, "every thread of the worker stopped", func() bool {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil || len(tasks) == 0 {
			return false
		}
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			i := bytes.LastIndexByte(b, ')')
			if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				return false
			}
		}
		return true
	})
}

func queueOf(qs []prefork.ListenQueue, slot int) (prefork.ListenQueue, bool) {
	for _, q := range qs {
		if !q.Shared && q.Slot == slot {
			return q, true
		}
	}
	return prefork.ListenQueue{}, false
}

func TestStoppedWorkerShowsAsQueueInItsSlot(t *testing.T) {
	t.Parallel()
	const backlog, want = 128, 20
	// A long heartbeat timeout: the stopped worker must stay in place for the test.
	tm := startMaster(t, prefork.Config{Workers: 2, Backlog: backlog, Timeout: 2 * time.Minute, BootTimeout: 20 * time.Second}, "")
	ws := tm.waitReady(t, 2, 20*time.Second)
	for _, w := range ws {
		if w.QueueLength != 0 || w.QueueLimit != backlog {
			t.Errorf("idle worker %s: queue %d of %d, want 0 of %d", w.ID, w.QueueLength, w.QueueLimit, backlog)
		}
	}
	victim := ws[0]
	stopWorker(t, victim.PID)

	// Every slot has a ready worker, so no steering program is attached and the kernel
	// spreads connections by a hash of their addresses, which a client cannot choose. So
	// the test opens connections until at least want of them wait unanswered: the live
	// worker answers the rest (and says its slot), the stopped one answers none. Once
	// everything the live worker was sent is answered, the stopped slot's queue must hold
	// exactly the unanswered connections, and the live slot's none.
	pc := newPendingConns(t, tm.Addrs()[0].String())
	var q0, q1 prefork.ListenQueue
	for waiting := 0; waiting < want; {
		if opened, _, _, _ := pc.state(); opened >= 400 {
			t.Fatalf("400 connections opened and fewer than %d wait on the stopped slot", want)
		}
		pc.open(want - waiting)
		testutil.EventuallyTrue(t, 20*time.Second, "the live slot to answer its connections", func() bool {
			qs := tm.ListenQueues()
			var ok0, ok1 bool
			q0, ok0 = queueOf(qs, 0)
			q1, ok1 = queueOf(qs, 1)
			_, waiting, _, _ = pc.state()
			return ok0 && ok1 && q1.Length == 0 && q0.Length == waiting
		})
	}
	opened, waiting, answered, errs := pc.state()
	if len(errs) > 0 {
		t.Fatalf("%d connections failed, first: %v", len(errs), errs[0])
	}
	if answered[0] != 0 {
		t.Fatalf("the stopped worker's slot answered %d requests", answered[0])
	}
	t.Logf("%d connections: %d answered by slot 1, %d waiting on the stopped slot 0", opened, answered[1], waiting)
	if q0.Length < want || q0.Limit != backlog || q1.Limit != backlog {
		t.Errorf("queues %+v and %+v, want at least %d waiting of %d in slot 0", q0, q1, want, backlog)
	}
	for _, w := range tm.Workers() {
		q := q1
		if w.Slot == 0 {
			q = q0
		}
		if w.QueueLength != q.Length || w.QueueLimit != q.Limit {
			t.Errorf("Workers: %s has queue %d of %d, ListenQueues said %d of %d", w.ID, w.QueueLength, w.QueueLimit, q.Length, q.Limit)
		}
	}

	// Continued, the worker takes its queue: every waiting connection is answered by slot 0.
	syscall.Kill(victim.PID, syscall.SIGCONT)
	testutil.EventuallyTrue(t, 20*time.Second, "the waiting connections answered", func() bool {
		_, waiting, _, errs = pc.state()
		return waiting == 0 || len(errs) > 0
	})
	_, _, after, errs := pc.state()
	if len(errs) > 0 || after[0] != q0.Length {
		t.Errorf("after SIGCONT slot 0 answered %d (errors: %v), want the %d that waited", after[0], errs, q0.Length)
	}
	if q, _ := queueOf(tm.ListenQueues(), 0); q.Length != 0 {
		t.Errorf("slot 0 queue %d after its worker took it, want 0", q.Length)
	}
}

func TestSharedQueue(t *testing.T) {
	t.Parallel()
	const backlog, want = 64, 20
	tm := startMaster(t, prefork.Config{Workers: 1, Mode: prefork.ModeShared, Backlog: backlog, Timeout: 2 * time.Minute, BootTimeout: 20 * time.Second}, "")
	w := tm.waitReady(t, 1, 20*time.Second)[0]
	stopWorker(t, w.PID)
	pc := newPendingConns(t, tm.Addrs()[0].String())
	pc.open(want)
	var qs []prefork.ListenQueue
	testutil.EventuallyTrue(t, 20*time.Second, fmt.Sprintf("%d connections queued", want), func() bool {
		qs = tm.ListenQueues()
		return len(qs) == 1 && qs[0].Length == want
	})
	if q := qs[0]; !q.Shared || q.Limit != backlog {
		t.Errorf("shared queue %+v, want Shared and limit %d", q, backlog)
	}
	if ws := tm.Workers(); len(ws) != 1 || ws[0].QueueLength != want || ws[0].QueueLimit != backlog {
		t.Errorf("Workers %+v, want queue %d of %d", ws, want, backlog)
	}
	syscall.Kill(w.PID, syscall.SIGCONT)
	testutil.EventuallyTrue(t, 20*time.Second, "the queued connections answered", func() bool {
		_, waiting, _, errs := pc.state()
		return waiting == 0 || len(errs) > 0
	})
	if _, _, answered, errs := pc.state(); len(errs) > 0 || answered[0] != want {
		t.Errorf("answered %v (errors %v), want %d by slot 0", answered, errs, want)
	}
}

func TestListenQueuesAfterStop(t *testing.T) {
	t.Parallel()
	m, err := prefork.NewMaster(prefork.Config{Workers: 3, Addrs: []string{"127.0.0.1:0", "127.0.0.1:0"}, Backlog: 16})
	if err != nil {
		t.Fatal(err)
	}
	qs := m.ListenQueues()
	if len(qs) != 3 {
		t.Fatalf("queues %+v, want one per slot", qs)
	}
	for i, q := range qs {
		// Two addresses: each slot has two sockets, and the figures are their sums.
		if q.Slot != i || q.Shared || q.Length != 0 || q.Limit != 32 {
			t.Errorf("queue %d: %+v, want slot %d, 0 of 32", i, q, i)
		}
	}
	m.Close()
	if qs := m.ListenQueues(); qs != nil {
		t.Errorf("queues after Close: %+v, want none", qs)
	}
}

// A master's accept queues, per slot, as read from the kernel.
func ExampleMaster_ListenQueues() {
	m, err := prefork.NewMaster(prefork.Config{Workers: 2, Addrs: []string{"127.0.0.1:0"}, Backlog: 128})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	for _, q := range m.ListenQueues() {
		fmt.Printf("slot %d: %d waiting, backlog %d\n", q.Slot, q.Length, q.Limit)
	}
	// Output:
	// slot 0: 0 waiting, backlog 128
	// slot 1: 0 waiting, backlog 128
}
