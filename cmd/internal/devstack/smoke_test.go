package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/testkit"
)

// TestSmoke starts the local stack as make dev does (on free ports, with a
// database of its own) and drives it with scripts/smoke.sh: the AWS CLI →
// moto_server → poller → record under the emulator → PostgreSQL, then
// analytics, aggregate, overage and the ledger, and the sample platform
// API behind the metering. Then it runs every command the banner prints,
// as printed.
func TestSmoke(t *testing.T) {
	root := testRoot(t)
	requireRIE(t, root)
	admin := pgtest.Require(t, "NEXUS_TEST_DATABASE_URL", "PostgreSQL")
	pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	for _, tool := range []string{"aws", "curl", "jq", "psql", "python3"} {
		testkit.RequireTool(t, tool, "scripts/smoke.sh needs it")
	}
	// Built before the deadline starts: it bounds the stack and the script.
	bins := testBootstrapDir(t, root)
	name := fmt.Sprintf("devstack_smoke_%d", os.Getpid())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize()))
			conn.Close(ctx)
		}
	})
	ctx := testkit.Context(t)
	logger := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := Start(ctx, Config{Root: root, Template: "template.yaml", Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", PlatformAddr: "127.0.0.1:0", ReceiverAddr: "127.0.0.1:0",
		DatabaseName: name, Bootstraps: bins, Stage: fmt.Sprintf("smoke%d", os.Getpid()), BatchWindow: time.Second,
		FunctionLog: testLog{t}}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	t.Logf("devstack ready in %.1fs", st.Ready().Seconds())

	for fn, status := range st.State().Functions {
		if status != "running" {
			t.Fatalf("functions/%s is %s, not running", fn, status)
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "smoke.sh"))
	cmd.Env = append(os.Environ(), "SMOKE_ADMIN="+st.State().AdminURL)
	out, err := cmd.CombinedOutput()
	t.Logf("scripts/smoke.sh:\n%s", out)
	if err != nil {
		t.Fatalf("scripts/smoke.sh: %v", err)
	}
	t.Run("banner commands", func(t *testing.T) { runBannerCommands(ctx, t, st) })
}
