package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
)

// TestProxyModeClosesRuns holds the fault that made every aggregate and
// overage run fail behind RDS Proxy (template.yaml's default): in pgx's
// exec mode a []byte parameter is sent as bytea, and the runs' jsonb
// details were []byte ("invalid input syntax for type json"). It opens the
// database in that mode whatever the pass, so a plain go test run holds it
// too; make test's proxy pass runs every other PostgreSQL test that way.
func TestProxyModeClosesRuns(t *testing.T) {
	db, err := postgres.Open(context.Background(), postgres.Config{URL: pgtest.NewURL(t), MaxConns: 2, ExecMode: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

	rollups := postgres.NewRollupStore(db)
	id, err := rollups.OpenRun(ctx, "a", at)
	if err != nil {
		t.Fatalf("rollup OpenRun: %v", err)
	}
	run := &rollup.Run{JobRunID: id, Days: []time.Time{at.Truncate(24 * time.Hour)}, RowsWritten: 3}
	if err := rollups.CloseRun(ctx, run, at.Add(time.Second), nil); err != nil {
		t.Errorf("rollup CloseRun: %v", err)
	}
	if err := rollups.CloseRun(ctx, run, at.Add(time.Second), errors.New("it broke")); err != nil {
		t.Errorf("rollup CloseRun of a failed run: %v", err)
	}
	if _, err := rollups.SkippedRun(ctx, "b", "a", at); err != nil {
		t.Errorf("rollup SkippedRun: %v", err)
	}

	ledger := postgres.NewLedgerStore(db)
	rep := &billing.RunReport{}
	id, err = ledger.OpenRun(ctx, rep, at, at)
	if err != nil {
		t.Fatalf("billing OpenRun: %v", err)
	}
	if err := ledger.CloseRun(ctx, id, rep, at.Add(time.Second), nil); err != nil {
		t.Errorf("billing CloseRun: %v", err)
	}

	var outcomes []string
	rows, err := db.Pool.Query(ctx, `SELECT outcome FROM eco_job_runs ORDER BY run_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			t.Fatal(err)
		}
		outcomes = append(outcomes, o)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"failed", "skipped", "succeeded"}; len(outcomes) != 3 || outcomes[0] != want[0] || outcomes[1] != want[1] || outcomes[2] != want[2] {
		t.Errorf("outcomes = %v; want %v", outcomes, want)
	}
}
