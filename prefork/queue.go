package prefork

import "golang.org/x/sys/unix"

// Listen queues. The master holds every listening socket (see listen.go), so it can read how
// many connections wait on each to be accepted: for a socket in the LISTEN state, TCP_INFO
// reports the accept queue's current length in tcpi_unacked and its limit, the backlog given
// to listen(2) (capped at net.core.somaxconn), in tcpi_sacked. In ModeReusePort each slot has
// its own queue, so a worker that stopped accepting (stopped, stuck, blocked) shows as a
// growing queue in its slot alone; in ModeShared the one queue is everybody's.

// ListenQueue is the accept queue of one slot's sockets (ModeReusePort) or of the sockets
// every worker shares (ModeShared, socket activation). With several addresses, a slot has one
// socket per address and the figures are their sums.
type ListenQueue struct {
	Slot   int  `json:"slot"`   // the worker slot; 0 when Shared
	Shared bool `json:"shared"` // the queue of the sockets every worker shares
	Length int  `json:"length"` // connections accepted by the kernel, waiting for a worker to accept them
	Limit  int  `json:"limit"`  // the backlog: the most that can wait; more are refused or dropped
}

// ListenQueues reads the accept queues of the master's listening sockets from the kernel:
// in ModeReusePort one per slot whose sockets the master holds, a removed slot's parked
// sockets included (connections queued there before the removal wait for its return), in
// slot order; in ModeShared one, with Shared set. It returns nil once the master stopped
// (its sockets are closed) and leaves out a socket the kernel will not describe.
func (m *Master) ListenQueues() []ListenQueue {
	m.fdMu.Lock()
	defer m.fdMu.Unlock()
	if m.fdClosed {
		return nil
	}
	if m.shared != nil {
		if q, ok := readQueue(m.shared); ok {
			q.Shared = true
			return []ListenQueue{q}
		}
		return nil
	}
	out := make([]ListenQueue, 0, len(m.slotFDs))
	for i, fds := range m.slotFDs {
		if q, ok := readQueue(fds); ok {
			q.Slot = i
			out = append(out, q)
		}
	}
	return out
}

// readQueue sums the accept queues of fds; false if fds is empty or one of them is not a
// listening TCP socket (closed, or not TCP).
func readQueue(fds []int) (ListenQueue, bool) {
	var q ListenQueue
	for _, fd := range fds {
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil || ti.State != tcpListen {
			return ListenQueue{}, false
		}
		q.Length += int(ti.Unacked)
		q.Limit += int(ti.Sacked)
	}
	return q, len(fds) > 0
}

// tcpListen is TCP_LISTEN of the kernel's TCP states (tcpi_state).
const tcpListen = 10

// addQueues fills the queue fields of info (a snapshot for Workers) from the sockets: each
// worker gets its slot's queue, or in ModeShared the shared one.
func (m *Master) addQueues(info []WorkerInfo) {
	if len(info) == 0 {
		return
	}
	qs := m.ListenQueues()
	for i := range info {
		for _, q := range qs {
			if q.Shared || q.Slot == info[i].Slot {
				info[i].QueueLength, info[i].QueueLimit = q.Length, q.Limit
				break
			}
		}
	}
}
