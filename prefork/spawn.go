package prefork

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// startProcess starts one worker process for sl in lane. It must run on the supervisor
// goroutine: its thread is the parent whose death the worker is told about.
func (s *supervisor) startProcess(sl *slot, lane byte, now time.Time) (*worker, error) {
	var status, lifeline, crash [2]int // [0] read end, [1] write end
	if err := unix.Pipe2(status[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("status pipe: %w", err)
	}
	if err := unix.Pipe2(lifeline[:], unix.O_CLOEXEC); err != nil {
		closeFDs(status[:])
		return nil, fmt.Errorf("lifeline pipe: %w", err)
	}
	if err := unix.Pipe2(crash[:], unix.O_CLOEXEC); err != nil {
		closeFDs(status[:])
		closeFDs(lifeline[:])
		return nil, fmt.Errorf("crash output pipe: %w", err)
	}
	id := workerID(sl.index, lane)
	fds := s.m.listenFDs(sl.fds)
	mk := marker{
		Version:     markerVersion,
		Slot:        sl.index,
		ID:          id,
		Master:      s.env.getpid(),
		Listeners:   len(fds),
		MaxRequests: s.maxRequests(),
		HeartbeatNS: int64(s.cfg.heartbeat),
		OrphanNS:    int64(s.cfg.OrphanTimeout),
		CrashFD:     fdFirstListen + len(fds),
		BeatExt:     true,
		Data:        s.cfg.WorkerData,
	}
	files := []uintptr{0, 1, 2, uintptr(status[1]), uintptr(lifeline[0])}
	for i := range 3 {
		if _, err := unix.FcntlInt(uintptr(i), unix.F_GETFD, 0); err != nil {
			// The master runs with a standard descriptor closed: give the worker /dev/null.
			if null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
				defer unix.Close(null)
				files[i] = uintptr(null)
			}
		}
	}
	for _, fd := range fds {
		files = append(files, uintptr(fd))
	}
	files = append(files, uintptr(crash[1]))
	attr := &syscall.ProcAttr{
		Env:   s.childEnv(mk),
		Files: files,
		Sys: &syscall.SysProcAttr{
			// A backstop for the lifeline: the worker gets SIGTERM (and so drains, as
			// after end-of-file on the lifeline) when this thread exits, which happens
			// only when the master dies.
			Pdeathsig: syscall.SIGTERM,
		},
	}
	path, gen := s.workerExe(sl)
	pid, err := s.env.forkExec(path, s.cfg.Args, attr)
	unix.Close(status[1])
	unix.Close(lifeline[0])
	unix.Close(crash[1])
	if err != nil {
		unix.Close(status[0])
		unix.Close(lifeline[1])
		unix.Close(crash[0])
		return nil, fmt.Errorf("start %s: %w", s.cfg.Path, err)
	}
	unix.SetNonblock(status[0], true) // pollable, so that Close interrupts the reader
	unix.SetNonblock(crash[0], true)
	w := &worker{
		slot:         sl,
		id:           id,
		lane:         lane,
		pid:          pid,
		gen:          gen,
		restarts:     sl.starts,
		status:       os.NewFile(uintptr(status[0]), "prefork-status-"+id),
		lifeline:     os.NewFile(uintptr(lifeline[1]), "prefork-lifeline-"+id),
		crash:        os.NewFile(uintptr(crash[0]), "prefork-crash-"+id),
		state:        StateStarting,
		started:      now,
		bootDeadline: now.Add(s.cfg.BootTimeout),
	}
	go s.readStatus(w)
	s.crashReaders.add(w.crash)
	go s.readCrash(w)
	return w, nil
}

// readStatus forwards w's status lines to the supervisor until end-of-file.
func (s *supervisor) readStatus(w *worker) {
	send := func(ev event) bool {
		select {
		case s.events <- ev:
			return true
		case <-s.done:
			return false
		}
	}
	ok := true
	readStatus(w.status, func(m statusMsg) {
		if ok {
			ok = send(event{w: w, msg: m})
		}
	})
	if ok {
		send(event{w: w, eof: true})
	}
}

func (s *supervisor) maxRequests() int {
	if s.cfg.MaxRequests == 0 {
		return 0
	}
	return s.cfg.MaxRequests + rand.IntN(s.cfg.MaxRequestsJitter+1)
}

// childEnv builds a worker's environment: the master's, minus systemd's variables (they are
// addressed to the master), plus Config.Env, the Go sizing variables and the marker.
func (s *supervisor) childEnv(mk marker) []string {
	drop := map[string]bool{
		envListenPID: true, envListenFDs: true, envListenNames: true,
		envNotify: true, envWatchdogUS: true, envWatchdogPID: true, markerEnv: true,
	}
	var extra []string
	procs := s.cfg.GOMAXPROCS
	if procs == 0 && !s.cfg.hasMaxProcs {
		procs = max(1, runtime.GOMAXPROCS(0)/s.n)
	}
	if procs > 0 {
		extra = append(extra, envGOMAXPROCS+"="+strconv.Itoa(procs))
	}
	if s.cfg.gomemlimit > 0 {
		extra = append(extra, envGOMEMLIMIT+"="+strconv.FormatInt(s.cfg.gomemlimit/int64(s.n), 10))
	}
	extra = append(extra, markerEnv+"="+mk.encode())
	return mergeEnv(s.cfg.environ, drop, s.cfg.Env, extra)
}

// mergeEnv returns base without the dropped keys, overridden by the later lists. The last
// value of a key wins, in the position of its first occurrence (libc's getenv and Go's
// os.Getenv both read the first one, so duplicates must not survive).
func mergeEnv(base []string, drop map[string]bool, overrides ...[]string) []string {
	out := make([]string, 0, len(base)+8)
	pos := map[string]int{}
	add := func(kv string) {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || drop[k] {
			return
		}
		if i, ok := pos[k]; ok {
			out[i] = kv
			return
		}
		pos[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range base {
		add(kv)
	}
	drop = nil
	for _, list := range overrides {
		for _, kv := range list {
			add(kv)
		}
	}
	return out
}
