package prefork_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// An old master that handed over exits only once the new master has taken over: until then
// it waits, its workers gone, so the pidfile (and systemd's main pid) never names a master
// that has exited. The new master here holds its take-over back until a gate file exists.
func TestOldMasterExitsOnlyAfterTheNewMasterTookOver(t *testing.T) {
	t.Parallel()
	gate := filepath.Join(t.TempDir(), "take-over")
	p := startUpgradable(t, masterSpec{Workers: 2, GracefulTimeout: 20 * time.Second, TakeOverGate: gate}, false)
	oldPID := p.cmd.Process.Pid
	p.waitReady(t, 2)
	if err := syscall.Kill(oldPID, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "upgrade: waiting for the new master to take over")
	if got := p.pidfilePID(); got != oldPID {
		t.Errorf("pidfile names %d while the old master waits, want it, %d", got, oldPID)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t, 30*time.Second); code != 0 {
		t.Errorf("old master exit status %d, want 0", code)
	}
	if got := p.pidfilePID(); got == 0 || got == oldPID {
		t.Errorf("pidfile names %d as the old master exits, want the new master", got)
	}
}
