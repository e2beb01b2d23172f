package server

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/herdhttp/herd/prefork"
)

// Binary upgrades (SIGUSR2 to the master; see prefork's package documentation). Beside
// prefork's sockets, the master hands the new master:
//
//   - the admin listener, so that /metrics and /healthz answer throughout;
//   - the run directory, so that the old workers' counter files stay and the merged
//     counters do not reset: from then on it is the new master's, which removes it at its
//     exit, and the old master leaves it in place;
//   - the worker exit totals, so that herd_worker_exits_total continues.
const (
	handoverAdmin  = "admin"
	handoverRunDir = "run-dir"
	handoverExits  = "worker-exits"
)

// inheritance is what this master took over from the one it replaces; the zero value (not
// started by an upgrade) takes over nothing.
type inheritance struct {
	upgraded bool
	admin    net.Listener // nil: the old master had none
	runDir   string
	exits    map[prefork.ExitReason]uint64
}

// inherit reads what the old master handed over, if this process is a new master.
func inherit() (*inheritance, error) {
	h, ok, err := prefork.Inherited()
	if err != nil || !ok {
		return &inheritance{}, err
	}
	in := &inheritance{upgraded: true, runDir: h.Values[handoverRunDir]}
	for name, l := range h.Listeners {
		if name == handoverAdmin {
			in.admin = l
		} else {
			l.Close()
		}
	}
	if err := checkInheritedRunDir(in.runDir); err != nil {
		in.close()
		return nil, err
	}
	if v := h.Values[handoverExits]; v != "" {
		if err := json.Unmarshal([]byte(v), &in.exits); err != nil {
			in.close()
			return nil, fmt.Errorf("upgrade: bad worker exit totals: %v", err)
		}
	}
	return in, nil
}

func (in *inheritance) close() {
	if in.admin != nil {
		in.admin.Close()
	}
}

// checkInheritedRunDir checks the run directory handed over, as makeRunDir made it: a real
// directory of this user's, mode 0700.
func checkInheritedRunDir(dir string) error {
	if dir == "" {
		return errors.New("upgrade: the old master handed over no run directory")
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("upgrade: the run directory %s is gone", dir)
		}
		return fmt.Errorf("upgrade: run directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("upgrade: %s is not a private run directory of this user (mode %v)", dir, fi.Mode())
	}
	return nil
}

// makeRunDir returns the inherited run directory, or creates this run's (see makeRunDir).
func (in *inheritance) makeRunDir(parent string) (string, error) {
	if in.upgraded {
		return in.runDir, nil
	}
	return makeRunDir(parent)
}

// ownsRunDir reports whether the master must remove the run directory as it exits: it
// created it or took it over (m nil: the master did not get that far), and did not hand it
// over to a new master.
func (in *inheritance) ownsRunDir(m *prefork.Master) bool {
	switch {
	case m == nil:
		return !in.upgraded
	case m.HandedOver():
		return false
	case in.upgraded:
		return m.TookOver()
	}
	return true
}

// listenAdmin returns the admin listener to serve (its connections capped,
// with TLS when sec says so) and the socket under it, which an upgrade hands
// over: the inherited one, or a new one at addr; nil, nil when addr is "off".
func (in *inheritance) listenAdmin(addr string, sec *adminSecurity) (serve, raw net.Listener, err error) {
	raw = in.admin
	if addr == "off" {
		in.close()
		return nil, nil, nil
	}
	if raw == nil {
		if raw, err = net.Listen("tcp", addr); err != nil {
			return nil, nil, fmt.Errorf("-metrics-bind: %w", err)
		}
	}
	serve = limitConns(raw, adminMaxConns())
	if sec != nil && sec.tls != nil {
		serve = tls.NewListener(serve, sec.tls)
	}
	return serve, raw, nil
}

// exitCounts returns the worker exit totals to continue from.
func (in *inheritance) exitCounts() *exitCounts {
	c := &exitCounts{n: map[prefork.ExitReason]uint64{}}
	for r, n := range in.exits {
		c.n[r] = n
	}
	return c
}

// handover returns prefork's Config.Handover: the run directory, the admin socket (raw may
// be nil) and the exit totals so far.
func handover(dir string, raw net.Listener, exits *exitCounts) func() (prefork.Handover, error) {
	return func() (prefork.Handover, error) {
		exits.mu.Lock()
		b, err := json.Marshal(exits.n)
		exits.mu.Unlock()
		if err != nil {
			return prefork.Handover{}, err
		}
		h := prefork.Handover{
			Values: map[string]string{handoverRunDir: dir, handoverExits: string(b)},
		}
		if raw != nil {
			h.Listeners = map[string]net.Listener{handoverAdmin: raw}
		}
		return h, nil
	}
}

// refuseUpgrades logs and ignores SIGUSR2 in single-process mode (-workers 0), until stop is
// called: there is no master to replace, and the signal's default action would end the
// process.
func refuseUpgrades(log *slog.Logger) (stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-c:
				log.Warn("upgrade refused: a binary upgrade (SIGUSR2) needs a master (-workers 1 or more); serving on")
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(c)
		close(done)
		<-finished
	}
}
