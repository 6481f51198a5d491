package rie

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestHostBuildFlagsAreTheMakefiles fails when the devstack's fallback
// build and the Makefile's host build (make host) drift apart: then every
// package the two share would be compiled and cached once per flag set.
func TestHostBuildFlagsAreTheMakefiles(t *testing.T) {
	makeCmd, err := exec.LookPath("make")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("make is not installed")
		}
		t.Skip("make is not installed")
	}
	cmd := exec.Command(makeCmd, "-n", "-s", "--no-print-directory", "-C", "../../..", "host", "GO=go")
	cmd.Env = append(os.Environ(), "MAKEFLAGS=", "MAKELEVEL=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make -n host: %v", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 3 || !cmp.Equal(fields[:3], []string{"CGO_ENABLED=0", "go", "build"}) {
		t.Fatalf("make host runs %q; want CGO_ENABLED=0 go build ...", out)
	}
	var flags []string
	for _, f := range fields[3:] {
		if f == "-o" {
			break
		}
		flags = append(flags, f)
	}
	if diff := cmp.Diff(HostBuildFlags, flags); diff != "" {
		t.Errorf("HostBuildFlags differ from the Makefile's HOSTBUILD (-want +got):\n%s", diff)
	}
}
