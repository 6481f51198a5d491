package rie

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// HostBuildFlags are the flags of every host build of this module: the
// Makefile's (HOSTBUILD, for make dev and make test) and BuildBootstraps,
// the devstack's fallback build, use the same ones, so that the
// bootstraps, the devstack and the migrator share one build cache entry per
// package instead of compiling each package once per flag set. CGO is off
// as in SAM's build of a provided.al2023 function; lambda.norpc drops
// aws-lambda-go's unused RPC mode; without DWARF debug information a cold
// build takes about a seventh less CPU (stack traces keep their lines).
var HostBuildFlags = []string{"-trimpath", "-gcflags=all=-dwarf=false", "-tags", "lambda.norpc", "-ldflags=-w"}

// BuildBootstraps compiles the functions (functions/<name>) of the module
// at root for this machine in one go build, which schedules their packages
// across the cores itself, into out/<name>. When the joint build fails, each
// function is built alone to tell which ones do not build. It returns the
// binaries by name and the build error of each function that failed.
func BuildBootstraps(ctx context.Context, root string, names []string, out string) (map[string]string, map[string]error) {
	bins, errs := map[string]string{}, map[string]error{}
	if len(names) == 0 {
		return bins, errs
	}
	pkgs := make([]string, len(names))
	for i, n := range names {
		pkgs[i] = "./functions/" + n
	}
	if err := goBuild(ctx, root, out+string(filepath.Separator), pkgs...); err == nil {
		for _, n := range names {
			bins[n] = filepath.Join(out, n)
		}
		return bins, errs
	}
	for _, n := range names {
		bin := filepath.Join(out, n)
		if err := goBuild(ctx, root, bin, "./functions/"+n); err != nil {
			errs[n] = err
			continue
		}
		bins[n] = bin
	}
	return bins, errs
}

// goBuild runs go build -o out with HostBuildFlags in root.
func goBuild(ctx context.Context, root, out string, pkgs ...string) error {
	args := append(append([]string{"build"}, HostBuildFlags...), append([]string{"-o", out}, pkgs...)...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, bytes.TrimSpace(msg))
	}
	return nil
}

// FunctionDirs lists the functions of the module at root:
// functions/*/main.go, by name, sorted.
func FunctionDirs(root string) []string {
	mains, _ := filepath.Glob(filepath.Join(root, "functions", "*", "main.go"))
	names := make([]string, 0, len(mains))
	for _, m := range mains {
		names = append(names, filepath.Base(filepath.Dir(m)))
	}
	sort.Strings(names)
	return names
}

// PrebuiltBootstraps returns the binaries of the functions in dir (as make
// dev and make test build them, dir/<name>), or ok false when dir is empty
// or one is missing.
func PrebuiltBootstraps(dir string, names []string) (bins map[string]string, ok bool) {
	if dir == "" {
		return nil, false
	}
	bins = map[string]string{}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if !fileExists(p) {
			return nil, false
		}
		bins[n] = p
	}
	return bins, true
}
