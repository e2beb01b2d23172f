package server

import (
	"context"
	"errors"
	"net"
)

// Server is a herd program started by Start, serving in the background:
// the in-process counterpart of httptest.Server for a whole server, admin
// listener and run directory included. Its methods are safe for
// concurrent use.
type Server struct {
	st     started
	cancel context.CancelFunc
	done   chan struct{} // closed when the run ended
	err    error         // the run's result, once done is closed
}

// Start runs the program cfg describes, as Run does, in the background, and
// returns once it serves: the App is built and serving (with Workers >= 1,
// every worker of the start-up is ready), the admin endpoints answer, and
// the addresses are bound, so that a test can start it on 127.0.0.1:0 and
// ask the Server where it is. A configuration error (errors.Is(err,
// ErrConfig)), an App that fails (ErrApp) or any other failure to start is
// returned, with nothing left running.
//
// The program stops when ctx is done, when the process gets SIGTERM or
// SIGINT, or when Shutdown is called; it drains as Run does. With Workers
// >= 1 the workers are this executable started again, so it must call Run,
// Main or Start with the same App when it is a worker: a test binary
// serves with Workers == 0.
func Start(ctx context.Context, cfg Config, app App) (*Server, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &Server{cancel: cancel, done: make(chan struct{})}
	up := make(chan started, 1)
	go func() {
		defer close(s.done)
		s.err = runWith(ctx, cfg, app, runEnv{onStart: func(st started) { up <- st }})
		cancel()
	}()
	select {
	case s.st = <-up:
		return s, nil
	case <-s.done:
		if s.err == nil {
			s.err = errors.New("server: stopped before it served")
		}
		return nil, s.err
	}
}

// Addrs returns the application's addresses as bound (the port the kernel
// chose for port 0), in the order of Config.Bind.
func (s *Server) Addrs() []net.Addr { return append([]net.Addr(nil), s.st.addrs...) }

// URL is "http://host:port" of the application's first TCP address
// ("https://" with Config.TLSCert), or "http://" and the path of its first
// unix socket when it has no TCP address.
func (s *Server) URL() string {
	for _, a := range s.st.addrs {
		if a.Network() == "tcp" {
			if s.st.tls {
				return "https://" + a.String()
			}
			return "http://" + a.String()
		}
	}
	return "http://" + s.st.addrs[0].String()
}

// AdminAddr returns the admin listener's address (/metrics, /healthz,
// /workers), or nil when Config.MetricsBind is "off".
func (s *Server) AdminAddr() net.Addr { return s.st.admin }

// RunDir returns the run's private directory of metric files, inside
// Config.MetricsDir; it is removed when the program stops.
func (s *Server) RunDir() string { return s.st.runDir }

// Shutdown stops the program as SIGTERM does: it stops accepting, lets the
// requests in flight finish and the App's OnShutdown functions run within
// the graceful timeout, and removes the run directory. It returns the
// run's error (nil after a clean stop), or ctx's error if ctx ends first
// (the program goes on stopping).
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait waits until the program stops by itself (a signal, the ctx given
// to Start, a fatal error) or by Shutdown, and returns the run's error.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}
