package prefork

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSelfPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "v1", "app")
	other := filepath.Join(dir, "other")
	link := filepath.Join(dir, "app")
	if err := os.Mkdir(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{exe, other} {
		if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv("PATH", dir)
	for _, tc := range []struct{ argv0, want string }{
		{link, link},       // a link is kept, so that switching it is followed
		{"./app", link},    // relative to the working directory
		{"app", link},      // looked up in PATH
		{other, exe},       // another binary: the kernel's answer
		{"missing", exe},   // not found
		{"", exe},          // no argv[0]
		{"./missing", exe}, // not there
		{exe, exe},         // the binary itself
	} {
		e := newStdEnv()
		e.executable = func() (string, error) { return exe, nil }
		e.args = func() []string { return []string{tc.argv0, "-flag"} }
		if got := selfPath(e); got != tc.want {
			t.Errorf("argv[0] %q: selfPath %q, want %q", tc.argv0, got, tc.want)
		}
	}
}
