package integration

// The command lines that herd's users copy: the deployment examples of
// examples/deploy and the gunicorn migration guide may only name flags that
// bin/hello has. The files of each tool are checked in systemd_test.go,
// kubernetes_test.go, promtool_test.go and grafana_test.go.

import (
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// deployDir holds the deployment examples, relative to this package.
const deployDir = "../examples/deploy"

// helloFlagNames lists the flags of bin/hello from its -h output.
func helloFlagNames(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(helloBin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("hello -h: %v\n%s", err, out)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	if len(names) < 5 {
		t.Fatalf("hello -h lists only %d flags:\n%s", len(names), out)
	}
	return names
}

// flagArgs splits "-name=value" and "-name value" arguments into a map,
// failing on a flag hello does not have.
func flagArgs(t *testing.T, args []string, known map[string]bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("argument %q is not a flag", a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		val := ""
		if j := strings.IndexByte(name, '='); j >= 0 {
			name, val = name[:j], name[j+1:]
		} else if i+1 < len(args) {
			i++
			val = args[i]
		}
		if !known[name] {
			t.Errorf("flag -%s is not a flag of hello", name)
		}
		out[name] = val
	}
	return out
}

// withOverrides replaces or adds flags in args so that a deployment's
// command line can run on loopback in a test.
func withOverrides(args []string, over map[string]string) []string {
	var out []string
	seen := map[string]bool{}
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		inline := strings.Contains(name, "=")
		if inline {
			name = name[:strings.IndexByte(name, '=')]
		}
		if v, ok := over[name]; ok {
			out = append(out, "-"+name+"="+v)
			seen[name] = true
			if !inline {
				i++
			}
			continue
		}
		out = append(out, args[i])
		if !inline && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	keys := make([]string, 0, len(over))
	for k := range over {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !seen[k] {
			out = append(out, "-"+k+"="+over[k])
		}
	}
	return out
}

// TestMigrationGuideFlagsExist: every herd flag the gunicorn migration
// guide mentions is a flag of bin/hello.
func TestMigrationGuideFlagsExist(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/migrating-from-gunicorn.md")
	if err != nil {
		t.Fatal(err)
	}
	known := helloFlagNames(t)
	exporterFlags := map[string]bool{"dir": true, "bind": true, "log-format": true}
	n := 0
	// herd flags appear in code spans as `-name` or `-name value`.
	for _, m := range regexp.MustCompile("`(herd-exporter |hello |bin/hello )?-([a-z][a-z-]*)[ =`]").FindAllStringSubmatch(string(b), -1) {
		n++
		if m[1] == "herd-exporter " {
			if !exporterFlags[m[2]] {
				t.Errorf("the guide mentions herd-exporter -%s, which does not exist", m[2])
			}
			continue
		}
		if !known[m[2]] && !exporterFlags[m[2]] {
			t.Errorf("the guide mentions -%s, which is no flag of hello", m[2])
		}
	}
	if n < 5 {
		t.Errorf("the guide mentions only %d flags", n)
	}
}
