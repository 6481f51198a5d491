package soak

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/testkit"
)

var (
	soakEvents = flag.Int("soak.events", 3000, "events TestSoak sends")
	soakSeed   = flag.Uint64("soak.seed", 1, "TestSoak's seed")
)

// TestSoak is a short fault soak (see the package doc) inside make test:
// 3,000 events through the queue and POST /v1/events, three kills
// of the record function in mid-batch, a restart of moto_server, and a
// PostgreSQL outage of 30 s, which at the soak's redelivery schedule
// (the deployed one compressed 60 times) stands for 30 minutes: twice
// what the queue rode out before (5 receives × 185 s). Some events sent
// during it are 10 s inside the backfill window's edge. Three messages
// of an earlier outage wait in the DLQ, moved back by POST
// /v1/admin/redrive at the end. It fails on any difference, listing the
// first ones: an event not recorded exactly once, one quarantined for
// its age, a message the run sent to the DLQ.
func TestSoak(t *testing.T) {
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	_, err = rie.Find(root, os.Getenv)
	testkit.Require(t, err, "the Lambda emulator")
	// The soak restarts PostgreSQL and moto_server: it gets its own, so
	// that the other packages' tests, running meanwhile, keep theirs.
	pgtest.Require(t, "NEXUS_TEST_DATABASE_URL", "PostgreSQL")
	pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	dir, names := os.Getenv("NEXUS_LAMBDA_DIR"), rie.FunctionDirs(root)
	if _, ok := rie.PrebuiltBootstraps(dir, names); !ok {
		dir = t.TempDir()
		t.Log("building the functions (NEXUS_LAMBDA_DIR holds none; make test builds them first)")
		if _, errs := rie.BuildBootstraps(context.Background(), root, names, dir); len(errs) > 0 {
			t.Fatalf("build: %v", errs)
		}
	}
	// Nothing inside is timed: the run may take what go test's -timeout allows.
	ctx := testkit.Context(t)
	svc, err := StartServices(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	tally := NewTally()
	logw := testWriter{t}
	st, stop, err := StartStack(ctx, StackOptions{Root: root, Bootstraps: dir, Log: logw, Level: slog.LevelError, Tally: tally,
		Getenv: svc.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	rep, err := Run(ctx, st, Config{Events: *soakEvents, Seed: *soakSeed, Kills: 3, Rate: 400,
		RestartPostgres: true, RestartMoto: true, Outage: 30 * time.Second, Restart: RestartCommand(svc.Getenv), Tally: tally,
		Logger: slog.New(slog.NewTextHandler(logw, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Log("\n" + b.String())
	if !rep.OK() {
		t.Errorf("the soak found %d differences (listed above)", rep.Mismatched)
	}
	if rep.Kills == 0 || rep.PostgresRestarts != 1 || rep.MotoRestarts != 1 {
		t.Errorf("faults: %d kills, %d PostgreSQL and %d moto_server restarts; want some kills and one restart each", rep.Kills, rep.PostgresRestarts, rep.MotoRestarts)
	}
	if rep.PostgresDown < 30*time.Second || rep.EdgeEvents == 0 || rep.DeadLettersPlaced != 3 || rep.Redriven < 3 {
		t.Errorf("outage %s with %d events at the window's edge, %d messages placed in the DLQ and %d redriven; want 30 s, some, 3 and 3",
			rep.PostgresDown, rep.EdgeEvents, rep.DeadLettersPlaced, rep.Redriven)
	}
}

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
