package prefork

import (
	"bytes"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Steering (ModeReusePort). The kernel spreads new connections over every socket of a
// SO_REUSEPORT group, whether a worker accepts on it or not: a slot whose worker crashed, is
// booting, or is in respawn backoff would hold its share of new connections until it has a
// worker again, and a removed slot (SIGTTOU) forever. Closing such a socket is no answer:
// that resets the connections queued on it (unless net.ipv4.tcp_migrate_req is on).
//
// So the master attaches a classic BPF program to each group (SO_ATTACH_REUSEPORT_CBPF)
// that sends new connections only to the sockets of the slots that have a ready worker,
// and detaches it when every slot is ready. Socket i of a group is slot i's socket because
// the master opens them in slot order and never closes one while steering (the kernel
// would move the group's last socket into the hole). A removed slot's socket is kept
// (parked, reused by the next SIGTTIN), and its worker is stopped only steerGrace after the
// steering changed, so that it accepts what was queued before.
//
// The program hashes the packet's rxhash, or, when the device gave none, the client's port,
// and maps the hash to one of the serving slots.
//
// If the program cannot be attached, the master stops steering for good and closes a
// removed slot's socket, which resets the connections queued on it unless tcp_migrate_req
// is on; it logs that.

// steerGrace is how long a removed slot's worker keeps accepting after steering.
const steerGrace = 250 * time.Millisecond

// maxSteerSlots bounds the jump table to BPF_MAXINSNS (4096) instructions.
const maxSteerSlots = 2000

func (m *Master) tcpMigrateReq() bool {
	b, err := m.env.readFile("/proc/sys/net/ipv4/tcp_migrate_req")
	return err == nil && string(bytes.TrimSpace(b)) == "1"
}

// steerProgram returns a program that returns one of serving (socket indices), or false if
// serving is too long.
func steerProgram(serving []int) ([]unix.SockFilter, bool) {
	const (
		skfAdRxhash = 0xfffff000 + 32 // SKF_AD_OFF + SKF_AD_RXHASH
		netOff      = 0xfff00000      // SKF_NET_OFF: offsets from the network header
	)
	k := len(serving)
	prog := []unix.SockFilter{
		/* 0 */ {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdRxhash},
		/* 1 */ {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0, Jt: 0, Jf: 7}, // hash: to 9
		/* 2 */ {Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: netOff}, // IP version
		/* 3 */ {Code: unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K, K: 4},
		/* 4 */ {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 6, Jt: 0, Jf: 2},
		/* 5 */ {Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: netOff + 40}, // IPv6: source port
		/* 6 */ {Code: unix.BPF_JMP | unix.BPF_JA, K: 2}, // to 9
		/* 7 */ {Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: netOff}, // X = IPv4 header length
		/* 8 */ {Code: unix.BPF_LD | unix.BPF_H | unix.BPF_IND, K: netOff}, // IPv4: source port
		// Mix (client ports are mostly even), then pick.
		/* 9 */ {Code: unix.BPF_ALU | unix.BPF_MUL | unix.BPF_K, K: 0x9E3779B1},
		/* 10 */ {Code: unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K, K: 16},
		/* 11 */ {Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(k)},
	}
	identity := true
	for i, v := range serving {
		identity = identity && v == i
	}
	if identity {
		return append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_A}), true
	}
	if k > maxSteerSlots {
		return nil, false
	}
	for i, v := range serving[:k-1] {
		prog = append(prog,
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(i), Jt: 0, Jf: 1},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: uint32(v)})
	}
	return append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: uint32(serving[k-1])}), true
}

// servingSlots returns the indices of the active slots that have a ready worker.
func (s *supervisor) servingSlots() []int {
	var out []int
	for _, sl := range s.slots[:s.n] {
		if (sl.active != nil && sl.active.state == StateReady) || (sl.successor != nil && sl.successor.state == StateReady) {
			out = append(out, sl.index)
		}
	}
	return out
}

// steer brings the steering program up to date.
func (s *supervisor) steer() {
	if s.m.shared != nil || s.noSteer || s.stopping || len(s.slots) == 0 {
		return
	}
	serving := s.servingSlots()
	if s.steerKnown && slices.Equal(serving, s.steeredTo) {
		return
	}
	s.steerKnown, s.steeredTo = true, serving
	if len(serving) == 0 || len(serving) == len(s.slots) {
		s.detachSteering()
		return
	}
	prog, ok := steerProgram(serving)
	if !ok {
		s.detachSteering()
		return
	}
	fprog := &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	for _, fd := range s.slots[0].fds { // one socket of each address's group
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, fprog); err != nil {
			s.log.Warn("cannot steer new connections to the serving worker slots: a slot without a worker "+
				"holds its share of new connections until it has one again, and a removed slot's socket is "+
				"closed, which resets the connections queued on it", "err", err, "tcp_migrate_req", s.m.migrate)
			s.detachSteering()
			s.noSteer = true
			return
		}
	}
	s.steered = true
}

func (s *supervisor) detachSteering() {
	if !s.steered {
		return
	}
	for _, fd := range s.slots[0].fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
	}
	s.steered = false
}

// closeSlotSockets closes the master's copy of a removed slot's sockets (only when the
// master cannot steer).
func (s *supervisor) closeSlotSockets(sl *slot) {
	if sl.fds == nil || s.m.shared != nil {
		return
	}
	s.m.closeSlotFDs(sl.index)
	sl.fds = nil
	if !s.m.migrate {
		s.log.Warn("closed a removed worker slot's socket: connections queued on it are reset "+
			"(net.ipv4.tcp_migrate_req=1 would hand them over)", "worker", sl.index)
	}
}
