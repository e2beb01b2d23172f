package server

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLogFileReopensAfterRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	l, err := openLogFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte("one\n"))
	if reopened, err := l.Reopen(); reopened || err != nil {
		t.Fatalf("Reopen before any rotation: %v, %v; want no-op", reopened, err)
	}
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("two\n")) // still the rotated file, as with any logger before the signal
	if reopened, err := l.Reopen(); !reopened || err != nil {
		t.Fatalf("Reopen after rotation: %v, %v", reopened, err)
	}
	l.Write([]byte("three\n"))
	for file, want := range map[string]string{p + ".1": "one\ntwo\n", p: "three\n"} {
		b, _ := os.ReadFile(file)
		if string(b) != want {
			t.Errorf("%s = %q, want %q", filepath.Base(file), b, want)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != accessLogMode {
		t.Errorf("new log mode %v, want %v", fi.Mode().Perm(), os.FileMode(accessLogMode))
	}
}
