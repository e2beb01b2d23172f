package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverProc is one started server under test (the herd app or a peer),
// with its whole process tree.
type serverProc struct {
	cmd   *exec.Cmd
	log   *tailBuffer
	done  chan struct{} // closed when the root process has been waited for
	err   error         // from Wait, valid after done
	pfs   procFS
	admin *adminClient // herd only
	url   string       // http://addr
}

// startServer starts argv (prefixed by taskset when cpus is not empty) in
// its own process group. It is killed if herd-bench dies.
func startServer(argv, env []string, cpus cpuList, pfs procFS) (*serverProc, error) {
	if len(cpus) > 0 {
		argv = append([]string{"taskset", "-c", cpus.String()}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	log := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
	}
	s := &serverProc{cmd: cmd, log: log, done: make(chan struct{}), pfs: pfs}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

func (s *serverProc) pid() int { return s.cmd.Process.Pid }

// exited reports whether the root process has ended, with its error.
func (s *serverProc) exited() (bool, error) {
	select {
	case <-s.done:
		if s.err == nil {
			return true, errors.New("server exited")
		}
		return true, fmt.Errorf("server exited: %w", s.err)
	default:
		return false, nil
	}
}

// waitHerdReady polls the admin listener's /workers (never the
// application: readiness probes would be counted as requests) until
// workers processes are ready.
func (s *serverProc) waitHerdReady(ctx context.Context, workers int) error {
	return s.poll(ctx, func(ctx context.Context) (bool, string) {
		ws, err := s.admin.workers(ctx)
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, w := range ws {
			if w.State == "ready" {
				ready++
			}
		}
		return ready == workers && len(ws) == workers, fmt.Sprintf("%d of %d workers ready", ready, workers)
	})
}

// waitPeerReady polls GET /healthz on fresh connections until it has
// answered 200 with distinct bodies workers times (a prefork peer answers
// its pid, so every worker is known to serve), or once when workers is 1.
func (s *serverProc) waitPeerReady(ctx context.Context, workers int) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	seen := map[string]bool{}
	return s.poll(ctx, func(ctx context.Context) (bool, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/healthz", nil)
		if err != nil {
			return false, err.Error()
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, "GET /healthz: " + resp.Status
		}
		seen[string(body)] = true
		return len(seen) >= workers, fmt.Sprintf("%d of %d workers answered /healthz", len(seen), workers)
	})
}

// poll calls check every 20 ms until it reports done, the context ends,
// or the server exits.
func (s *serverProc) poll(ctx context.Context, check func(context.Context) (bool, string)) error {
	var last string
	for {
		if gone, err := s.exited(); gone {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, state := check(cctx)
		cancel()
		if ok {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %s (%w)", last, context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the server: SIGTERM to the root, then after grace SIGKILL to
// its process group and to every process of its tree still alive. It
// returns when the whole tree is gone (zombies count as gone: the init
// process may reap them late).
func (s *serverProc) stop(grace time.Duration) {
	tree, err := s.pfs.tree(s.pid())
	if err != nil {
		// The root is gone already: kill what is left of its process group.
		syscall.Kill(-s.pid(), syscall.SIGKILL)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(grace):
	}
	deadline := time.Now().Add(grace)
	for {
		var alive []procStat
		for _, p := range tree {
			if s.pfs.alive(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(-s.pid(), syscall.SIGKILL)
			for _, p := range alive {
				syscall.Kill(p.PID, syscall.SIGKILL)
			}
			deadline = time.Now().Add(grace)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-s.done:
	case <-time.After(grace):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it. Safe for concurrent use.
type tailBuffer struct {
	max int
	mu  sync.Mutex // guards b
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
