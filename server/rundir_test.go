package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMetricsDirPolicy(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	private := mk("private", 0o700)
	shared := mk("shared", 0o755)
	sticky := mk("sticky", 0o777|os.ModeSticky)
	worldWritable := mk("ww", 0o777)
	groupWritable := mk("gw", 0o770)
	link := filepath.Join(base, "link")
	os.Symlink(private, link)
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)

	cases := []struct {
		dir  string
		want string // "" accepted, else a word of the error
	}{
		{private, ""},
		{shared, ""},
		{sticky, ""},
		{worldWritable, "sticky"},
		{groupWritable, "sticky"},
		{link, "symbolic link"},
		{file, "not a directory"},
		{filepath.Join(base, "missing"), "does not exist"},
	}
	if os.Geteuid() == 0 {
		other := mk("other", 0o755)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ dir, want string }{other, "owned by uid 65534"})
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.dir), func(t *testing.T) {
			t.Parallel()
			err := checkMetricsParent(tc.dir)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("accepted, want an error about %q", tc.want)
			case err != nil && (!strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "-metrics-dir: ")):
				t.Errorf("error %q does not start with -metrics-dir or mention %q", err, tc.want)
			}
		})
	}
}

func TestRunDirIsPrivate(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	os.Chmod(parent, 0o777|os.ModeSticky)
	dir, err := makeRunDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 || filepath.Dir(dir) != parent {
		t.Errorf("run dir %s: mode %v, want a 0700 directory in %s", dir, fi.Mode(), parent)
	}
	if _, err := makeRunDir(filepath.Join(parent, "nope")); err == nil {
		t.Error("a missing parent was accepted")
	}
}
