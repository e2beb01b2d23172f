package prefork_test

import (
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// newPIDRE finds the new master's pid in the old master's upgrade log lines.
var newPIDRE = regexp.MustCompile(`new_pid=(\d+)`)

// newPIDIn returns the new master's pid named by an upgrade log line.
func newPIDIn(t *testing.T, line string) int {
	t.Helper()
	m := newPIDRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no new_pid in %q", line)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// failedUpgrade sends SIGUSR2 to the master oldPID, whose new master must not become
// ready in time, waits until the old master gave up and the new one exited, and returns
// the new master's pid.
func (p *upgradeProc) failedUpgrade(t *testing.T, oldPID int) int {
	t.Helper()
	syscall.Kill(oldPID, syscall.SIGUSR2)
	line := p.waitLog(t, "upgrade failed: the new master was not ready in time; stopping it, this master keeps serving")
	p.waitLog(t, "upgrade: the failed new master exited")
	return newPIDIn(t, line)
}

// stopOwner stops the master oldPID, which owns the unix socket file sock, and checks
// that it exits 0 and removes the file.
func (p *upgradeProc) stopOwner(t *testing.T, oldPID int, sock string) {
	t.Helper()
	syscall.Kill(oldPID, syscall.SIGTERM)
	if code := p.exitCode(t, 30*time.Second); code != 0 {
		t.Errorf("old master exit status %d after SIGTERM, want 0", code)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file after the old master exited: %v, want it removed", err)
	}
}
