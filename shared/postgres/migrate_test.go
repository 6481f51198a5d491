package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nexus/usage/migrations"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/pressly/goose/v3"
)

// migrationProvider returns a migrated test database and a goose provider
// over it, to step the migrations down and up.
func migrationProvider(t *testing.T) (string, *sql.DB, *goose.Provider) {
	t.Helper()
	url := pgtest.NewURL(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithTableName("eco_schema_migrations"))
	if err != nil {
		t.Fatal(err)
	}
	return url, db, p
}

// TestMigrateDownAndUp rolls every migration back on a migrated database
// (each Down section must run) and applies them all again.
func TestMigrateDownAndUp(t *testing.T) {
	ctx := context.Background()
	url, db, p := migrationProvider(t)
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down to 0: %v", err)
	}
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'eco\_%' AND tablename <> 'eco_schema_migrations'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("after down to 0: %d tables, %v; want none", tables, err)
	}
	applied, err := postgres.Migrate(ctx, url, nil)
	if err != nil {
		t.Fatalf("up again: %v", err)
	}
	if want := len(p.ListSources()); len(applied) != want {
		t.Errorf("up again applied %d migrations; want %d", len(applied), want)
	}
}

// TestMigrateUserMonthlyBackfill upgrades a database holding rollup rows to
// the month rows (00007): the summaries must equal the rollup afterwards.
func TestMigrateUserMonthlyBackfill(t *testing.T) {
	ctx := context.Background()
	url, sqldb, p := migrationProvider(t)
	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatalf("down to 6: %v", err)
	}
	if _, err := sqldb.ExecContext(ctx, `INSERT INTO eco_usage_daily (day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx,
			request_bytes, response_bytes, latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events)
		SELECT d::date, ('aaaaaaaa-0000-4000-8000-' || lpad(to_hex(u), 12, '0'))::uuid, 'GET /' || e, NULL,
			u * e + extract(day FROM d)::int, e, u % 3, 1, 1, 1, 1, 10 * e, 1, 1
		FROM generate_series('2026-01-20'::date, '2026-03-10'::date, interval '3 days') d,
			generate_series(1, 5) u, generate_series(1, 3) e`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatalf("up to 7: %v", err)
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkSummaries(t, db)
}
