package dashboard

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nexus/usage/shared/testkit"
)

// TestBuildMatchesSources builds web/ afresh (npm ci, then npm run build
// into a temporary directory) and checks that the committed dist/ holds the
// same bytes. Without npm it is skipped, except under CI=true, where dist/
// must be checked.
func TestBuildMatchesSources(t *testing.T) {
	npm := testkit.RequireTool(t, "npm", "dist/ is checked against web/ with it")
	if testing.Short() && !testkit.CI() {
		t.Skip("-short: dist/ is not rebuilt")
	}
	t.Parallel()

	web := filepath.Join(t.TempDir(), "web")
	if err := copyTree(filepath.Join("..", "..", "web"), web); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "dist")
	// No deadline: npm ci may have to download the packages.
	run(t, web, npm, "ci", "--prefer-offline", "--no-audit", "--no-fund")
	run(t, web, npm, "run", "build", "--", out)

	built, err := readDir(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := readDir("dist")
	if err != nil {
		t.Fatal(err)
	}
	const fix = "rebuild with `cd web && npm ci && npm run build` and commit shared/dashboard/dist"
	names := slices.Concat(slices.Collect(maps.Keys(built)), slices.Collect(maps.Keys(committed)))
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		b, inBuild := built[name]
		c, inDist := committed[name]
		switch {
		case !inDist:
			t.Errorf("the build writes %s, which dist/ lacks; %s", name, fix)
		case !inBuild:
			t.Errorf("dist/ holds %s, which the build does not write; remove it", name)
		case !bytes.Equal(b, c):
			t.Errorf("dist/%s differs from a fresh build (%d bytes committed, %d built, first difference at byte %d); %s",
				name, len(c), len(b), firstDiff(b, c), fix)
		}
	}
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v in %s: %v\n%s", filepath.Base(name), args, dir, err, out)
	}
}

// copyTree copies the files under src to dst, leaving out node_modules.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && d.Name() == "node_modules":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return fmt.Errorf("copy %s: not a regular file", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// readDir reads every file of a flat directory.
func readDir(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		files[e.Name()] = b
	}
	return files, nil
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
