package prefork

import (
	"bytes"
	"time"

	"golang.org/x/sys/unix"
)

// Scaling down in ModeReusePort. The kernel spreads new connections over every socket of a
// SO_REUSEPORT group, and closing a socket resets the connections queued on it, unless
// net.ipv4.tcp_migrate_req is on, in which case the kernel moves them to another socket of
// the group. So, when a slot is removed:
//
//   - with tcp_migrate_req on, the master closes its copy of the slot's sockets at once; the
//     queue migrates when the retiring worker closes the last copy;
//   - otherwise the master attaches a classic BPF program to the group (steering) that
//     spreads new connections over the first n sockets only (rxhash % n), keeps the removed
//     slot's socket open (parked, reused by the next SIGTTIN), and stops the retiring worker
//     after steerGrace, so that it accepts what was queued before. Socket i of the group is
//     slot i's socket because the master opens them in slot order and never closes one while
//     steering (a closed socket is replaced by the group's last one);
//   - if the program cannot be attached, the socket is closed: the connections queued on it
//     at that moment are reset, which the master logs.
//
// The program is detached again when no slot is parked.

// steerGrace is how long a removed slot's worker keeps accepting after steering.
const steerGrace = 250 * time.Millisecond

func (m *Master) tcpMigrateReq() bool {
	b, err := m.env.readFile("/proc/sys/net/ipv4/tcp_migrate_req")
	return err == nil && string(bytes.TrimSpace(b)) == "1"
}

// steerProgram returns "return rxhash % n": the index of the socket in the group.
func steerProgram(n int) []unix.SockFilter {
	const skfAdRxhash = 0xfffff000 + 32 // SKF_AD_OFF + SKF_AD_RXHASH
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdRxhash},
		{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(n)},
		{Code: unix.BPF_RET | unix.BPF_A},
	}
}

// steer attaches or detaches the steering program after s.n changed.
func (s *supervisor) steer() {
	if s.m.shared != nil || s.m.migrate || s.noSteer || len(s.slots) == 0 {
		return
	}
	group := s.slots[0].fds // one socket of each address's group
	if s.n >= len(s.slots) {
		if s.steered {
			for _, fd := range group {
				unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
			}
			s.steered = false
		}
		return
	}
	prog := steerProgram(s.n)
	fprog := &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	for _, fd := range group {
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, fprog); err != nil {
			s.log.Warn("cannot steer connections away from removed worker slots; their sockets are closed, "+
				"which resets the connections queued on them (net.ipv4.tcp_migrate_req=1 avoids that)", "err", err)
			s.noSteer = true
			if s.steered {
				for _, fd := range group {
					unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
				}
			}
			s.steered = false
			return
		}
	}
	if !s.steered {
		s.log.Info("steering new connections to the active worker slots (net.ipv4.tcp_migrate_req is off)", "workers", s.n)
	}
	s.steered = true
}

// closeSlotSockets closes the master's copy of a removed slot's sockets.
func (s *supervisor) closeSlotSockets(sl *slot) {
	if sl.fds == nil || s.m.shared != nil {
		return
	}
	s.m.closeSlotFDs(sl.index)
	sl.fds = nil
	s.noSteer = true // the group's order is lost
	if !s.m.migrate {
		s.log.Warn("closed a removed worker slot's socket: connections queued on it are reset", "worker", sl.index)
	}
}
