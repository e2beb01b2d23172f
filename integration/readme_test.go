package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeMinimalProgramCompiles extracts the minimal program from
// README.md and builds it, so the README cannot drift from the API.
func TestReadmeMinimalProgramCompiles(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- readme-minimal"
	i := strings.Index(string(readme), marker)
	if i < 0 {
		t.Fatal("README.md has no readme-minimal marker")
	}
	rest := string(readme[i:])
	start := strings.Index(rest, "```go\n")
	if start < 0 {
		t.Fatal("no ```go block after the marker")
	}
	rest = rest[start+len("```go\n"):]
	end := strings.Index(rest, "\n```")
	if end < 0 {
		t.Fatal("unterminated ```go block")
	}
	// The program must be inside the module to resolve its imports; a
	// directory starting with "_" is ignored by ./... patterns.
	dir, err := os.MkdirTemp(".", "_readme")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(rest[:end+1]), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "app"), "./"+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("the README's minimal program does not build: %v\n%s", err, out)
	}
}
