package prefork

import (
	"log/slog"
	"net"

	"golang.org/x/sys/unix"
)

// notifier speaks systemd's sd_notify protocol: datagrams of "KEY=value" lines sent to the
// unix socket named by NOTIFY_SOCKET ("@name" is an abstract socket). A nil notifier (not
// started by systemd) does nothing.
type notifier struct {
	conn *net.UnixConn
	log  *slog.Logger
}

func newNotifier(path string, log *slog.Logger) *notifier {
	if path == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		log.Warn("sd_notify: cannot connect", "socket", path, "err", err)
		return nil
	}
	return &notifier{conn: conn, log: log}
}

// send sends one state message; failures are logged, never fatal.
func (n *notifier) send(state string) {
	if n == nil {
		return
	}
	if _, err := n.conn.Write([]byte(state)); err != nil {
		n.log.Warn("sd_notify failed", "err", err)
	}
}

func (n *notifier) close() {
	if n != nil {
		n.conn.Close()
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
