package devstack

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/samtemplate"
	"github.com/nexus/usage/shared/testkit"
)

var (
	bootstrapOnce sync.Once
	bootstrapDir  string // the build's directory, removed by TestMain
	bootstrapBins map[string]string
	bootstrapErrs map[string]error
)

// testBootstraps returns every function's binary: those make test built
// into $NEXUS_LAMBDA_DIR before go test started, or else one build, made
// once for the whole package with no deadline, whatever the machine's load
// and the state of the build cache.
func testBootstraps(t *testing.T, root string) map[string]string {
	t.Helper()
	bootstrapOnce.Do(func() {
		names := rie.FunctionDirs(root)
		if bins, ok := rie.PrebuiltBootstraps(os.Getenv("NEXUS_LAMBDA_DIR"), names); ok {
			bootstrapBins = bins
			return
		}
		dir, err := os.MkdirTemp("", "nexus-bootstraps-")
		if err != nil {
			bootstrapErrs = map[string]error{"all": err}
			return
		}
		bootstrapDir = dir
		t.Logf("building the functions (NEXUS_LAMBDA_DIR holds none; make test builds them first)")
		bootstrapBins, bootstrapErrs = rie.BuildBootstraps(context.Background(), root, names, dir)
	})
	for n, err := range bootstrapErrs {
		t.Fatalf("build %s: %v", n, err)
	}
	return bootstrapBins
}

// testBootstrapDir is the directory of testBootstraps' binaries, for
// Config.Bootstraps.
func testBootstrapDir(t *testing.T, root string) string {
	t.Helper()
	testBootstraps(t, root)
	if bootstrapDir != "" {
		return bootstrapDir
	}
	return os.Getenv("NEXUS_LAMBDA_DIR")
}

// TestMain runs the tests once, as deployed: behind RDS Proxy
// (pgtest.MainDeployed).
func TestMain(m *testing.M) {
	code := pgtest.MainDeployed(m)
	if bootstrapDir != "" {
		os.RemoveAll(bootstrapDir)
	}
	os.Exit(code)
}

// testLog sends the functions' output to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// requireRIE returns the emulator's path: $NEXUS_RIE or bin/aws-lambda-rie.
// Without it the test skips, or fails under CI=true.
func requireRIE(t *testing.T, root string) string {
	t.Helper()
	p, err := rie.Find(root, os.Getenv)
	if err == nil {
		return p
	}
	testkit.Missing(t, "the Lambda emulator is not available: %v", err)
	return ""
}

// testTemplate reads the module's template.yaml.
func testTemplate(t *testing.T, root string) *samtemplate.Template {
	t.Helper()
	tmpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func dbURL(t *testing.T, db *postgres.DB) string {
	t.Helper()
	return db.Pool.Config().ConnConfig.ConnString()
}
