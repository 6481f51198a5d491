package rie

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFunctionDirs(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{"b": `lambda.Start(h.Handle)`, "a": `lambda.Start(h.Handle)`} {
		if err := os.MkdirAll(filepath.Join(dir, "functions", name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "functions", name, "main.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if build := FunctionDirs(dir); !cmp.Equal(build, []string{"a", "b"}) {
		t.Errorf("FunctionDirs = %v; want [a b]", build)
	}
}
