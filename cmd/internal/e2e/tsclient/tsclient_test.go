package tsclient_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/testkit"
)

// TestTypeScript runs the package's suite and the example's test, side by
// side, each against its own stack. Both need the package installed and
// built first.
func TestTypeScript(t *testing.T) {
	node, npm := requireNode(t)
	root := repoRoot(t)
	requireServices(t, root)
	example := filepath.Join(root, "examples", "nextjs")

	ctx := testkit.Context(t)
	// The example's install links the package's directory, so it runs
	// beside the package's install and build; its build needs both.
	type installed struct {
		out string
		err error
		d   time.Duration
	}
	exampleCI := make(chan installed, 1)
	go func() {
		t0 := time.Now()
		out, err := npmCI(ctx, example, npm)
		exampleCI <- installed{out, err, time.Since(t0)}
	}()
	pkg := preparePackage(ctx, t, root, npm)
	ci := <-exampleCI
	if ci.err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", example, ci.err, tail(ci.out, 30000))
	}
	t.Logf("examples/nextjs: npm ci in %.1f s", ci.d.Seconds())

	t.Run("package", func(t *testing.T) {
		t.Parallel()
		st := startStack(ctx, t, root, "tspkg")
		out := npmRun(ctx, t, pkg, npm, stackEnv(st), "test")
		summary(t, "clients/typescript", out)
	})
	t.Run("nextjs", func(t *testing.T) {
		t.Parallel()
		st := startStack(ctx, t, root, "tsnext")
		out := npmRun(ctx, t, example, node, stackEnv(st), "--test", "--test-concurrency=1", "test/app.test.mjs")
		summary(t, "examples/nextjs", out)
	})
}

// BenchmarkWithUsage runs the package's benchmark (npm run bench,
// test/bench.ts) against a stack of its own: the wrapper's added latency
// per request besides the check, and the check's round trip. make bench
// runs it once.
func BenchmarkWithUsage(b *testing.B) {
	_, npm := requireNode(b)
	root := repoRoot(b)
	requireServices(b, root)
	ctx := testkit.Context(b)
	pkg := preparePackage(ctx, b, root, npm)
	st := startStack(ctx, b, root, "tsbench")
	b.ResetTimer()
	for range b.N {
		out := npmRun(ctx, b, pkg, npm, stackEnv(st), "run", "--silent", "bench")
		// Whole, on standard output: a benchmark's log keeps 10 lines.
		fmt.Print(out)
	}
}

// preparePackage installs the package's dependencies from its lockfile and
// builds it; it returns its directory.
func preparePackage(ctx context.Context, tb testing.TB, root, npm string) string {
	tb.Helper()
	pkg := filepath.Join(root, "clients", "typescript")
	start := time.Now()
	if out, err := npmCI(ctx, pkg, npm); err != nil {
		tb.Fatalf("npm ci in %s: %v\n%s", pkg, err, tail(out, 30000))
	}
	npmRun(ctx, tb, pkg, npm, nil, "run", "build")
	tb.Logf("clients/typescript: npm ci (when not installed already) and build in %.1f s", time.Since(start).Seconds())
	return pkg
}

// requireNode returns node's and npm's paths: Node.js 20.9 or later (Next.js
// 16's floor; the package needs 20). Without them the test skips, or fails
// under CI=true.
func requireNode(t testing.TB) (node, npm string) {
	t.Helper()
	fail := func(format string, args ...any) { t.Helper(); testkit.Missing(t, format, args...) }
	node, err := exec.LookPath("node")
	if err != nil {
		fail("node is not on PATH, so the TypeScript package and the Next.js example are not tested: install Node.js 20.9 or later (%v)", err)
	}
	npm, err = exec.LookPath("npm")
	if err != nil {
		fail("npm is not on PATH, so the TypeScript package and the Next.js example are not tested (%v)", err)
	}
	out, err := exec.Command(node, "--version").Output()
	m := regexp.MustCompile(`^v(\d+)\.(\d+)`).FindSubmatch(out)
	if err != nil || m == nil {
		fail("node --version: %v (%q)", err, out)
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	if major < 20 || (major == 20 && minor < 9) {
		fail("node is %s; the package and Next.js 16 need 20.9 or later", bytes.TrimSpace(out))
	}
	return node, npm
}

func requireServices(t testing.TB, root string) {
	t.Helper()
	_, err := rie.Find(root, os.Getenv)
	testkit.Require(t, err, "the Lambda emulator")
	pgtest.Require(t, "NEXUS_TEST_DATABASE_URL", "PostgreSQL")
	pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// startStack starts a stack of the test's own (free ports, its own
// database, queues and stage, a 1 s batching window) and stops it when the
// test ends.
func startStack(ctx context.Context, t testing.TB, root, name string) *devstack.State {
	t.Helper()
	admin := os.Getenv("NEXUS_TEST_DATABASE_URL")
	db := fmt.Sprintf("%s_%d", name, os.Getpid())
	t.Cleanup(func() { dropDatabase(admin, db) })
	logger := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := devstack.Start(ctx, devstack.Config{Root: root, Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", PlatformAddr: "127.0.0.1:0", ReceiverAddr: "127.0.0.1:0",
		DatabaseName: db, Bootstraps: os.Getenv("NEXUS_LAMBDA_DIR"), Stage: fmt.Sprintf("%s%d", name, os.Getpid()),
		BatchWindow: time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	st := s.State()
	for fn, status := range st.Functions {
		if status != "running" {
			t.Fatalf("functions/%s is %s, not running", fn, status)
		}
	}
	return st
}

// stackEnv names the stack to the node tests; CI passes through, so that a
// missing stack fails there.
func stackEnv(st *devstack.State) []string {
	return []string{"NEXUS_DEV_ADMIN=" + st.AdminURL, "NEXT_TELEMETRY_DISABLED=1"}
}

// npmRun runs npm (or node) in dir and fails the test with its output when
// it fails; it returns the output.
func npmRun(ctx context.Context, t testing.TB, dir, bin string, env []string, args ...string) string {
	t.Helper()
	out, err := npmExec(ctx, dir, bin, env, args...)
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), dir, err, tail(out, 30000))
	}
	return out
}

// npmCI installs dir's dependencies from its lockfile (npm ci), unless
// they were installed from it already: node_modules/.package-lock.json,
// which npm writes, is newer than package-lock.json (make node installs
// them while make test builds).
func npmCI(ctx context.Context, dir, npm string) (string, error) {
	lock, err1 := os.Stat(filepath.Join(dir, "package-lock.json"))
	done, err2 := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err1 == nil && err2 == nil && done.ModTime().After(lock.ModTime()) {
		return "", nil
	}
	return npmExec(ctx, dir, npm, nil, "ci", "--prefer-offline", "--no-audit", "--no-fund")
}

// npmExec runs npm (or node) in dir and returns its output.
func npmExec(ctx context.Context, dir, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// summary logs the node test runner's diagnostics and totals.
func summary(t *testing.T, what, out string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "not ok ") || strings.HasPrefix(l, "# ") {
			if !strings.Contains(l, "# Subtest") {
				lines = append(lines, l)
			}
		}
	}
	t.Logf("%s:\n%s", what, strings.Join(lines, "\n"))
	if !strings.Contains(out, "# fail 0") {
		t.Errorf("%s: the node test runner reported failures", what)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func dropDatabase(admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, admin); err == nil {
		_, _ = conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize()))
		conn.Close(ctx)
	}
}

// testLog sends the stack's warnings to the test log.
type testLog struct{ t testing.TB }

var logMu sync.Mutex

func (l testLog) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testLog{}
