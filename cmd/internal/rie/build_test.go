package rie

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nexus/usage/shared/testkit"
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
// build, the Makefile's host build (make host) and with-services.sh's
// migrator build drift apart: then every package they share would be
// compiled and cached once per flag set.
func TestHostBuildFlagsAreTheMakefiles(t *testing.T) {
	makeCmd := testkit.RequireTool(t, "make", "the Makefile's flags are read with make -n")
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
	// with-services.sh's own migrator build, when make did not build one.
	script, err := os.ReadFile("../../../scripts/with-services.sh")
	if err != nil {
		t.Fatal(err)
	}
	_, run, ok := strings.Cut(string(script), "CGO_ENABLED=0 go run ")
	run, _, found := strings.Cut(run, " ./cmd/migrate")
	if !ok || !found {
		t.Fatal("scripts/with-services.sh has no CGO_ENABLED=0 go run ... ./cmd/migrate")
	}
	if diff := cmp.Diff(HostBuildFlags, strings.Fields(run)); diff != "" {
		t.Errorf("HostBuildFlags differ from with-services.sh's go run of the migrator (-want +got):\n%s", diff)
	}
}
