package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// Mkdir makes the directory name under base with exactly mode (the umask
// does not apply) and returns its path.
func Mkdir(t testing.TB, base, name string, mode os.FileMode) string {
	t.Helper()
	d := filepath.Join(base, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}
