package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nexus/usage/migrations"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/rollup/rolluptest"
	"github.com/nexus/usage/shared/usage"
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

// TestMigrateBillingTerms upgrades a database from before 00011 holding a
// subscription and ledger rows of every status: the dry_run rows go (they
// counted as charged and kept their periods from ever being billed), and
// the status with them; the other rows keep the description they were
// sent with, and the rows tried before name the customer they were sent
// to; the subscription gets its terms history.
func TestMigrateBillingTerms(t *testing.T) {
	ctx := context.Background()
	url, sqldb, p := migrationProvider(t)
	var before int64
	for _, s := range p.ListSources() {
		if s.Version < 11 {
			before = max(before, s.Version)
		}
	}
	if _, err := p.DownTo(ctx, before); err != nil {
		t.Fatalf("down to %d: %v", before, err)
	}
	const u = "aaaaaaaa-0000-4000-8000-000000000001"
	if _, err := sqldb.ExecContext(ctx, `
		INSERT INTO eco_subscriptions (user_id, plan_id, included_calls, stripe_customer_id, period_anchor)
		VALUES ('`+u+`', 'pro', 500, 'cus_1', '2026-01-01');
		INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end, seq, included_calls, used_calls, units,
			unit_size, unit_price, amount, currency, idempotency_key, status, attempts) VALUES
		('10000000-0000-4000-8000-000000000001', '`+u+`', '2026-01-01', '2026-02-01', 0, 500, 6500, 6, 1000, 50, 300, 'usd', 'k1', 'dry_run', 0),
		('10000000-0000-4000-8000-000000000002', '`+u+`', '2026-02-01', '2026-03-01', 0, 500, 1600, 2, 1000, 50, 100, 'usd', 'k2', 'pending', 2),
		('10000000-0000-4000-8000-000000000003', '`+u+`', '2026-02-01', '2026-03-01', 1, 500, 2600, 1, 1000, 50, 50, 'usd', 'k3', 'billed', 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, url, nil); err != nil {
		t.Fatalf("up: %v", err)
	}
	rows, err := sqldb.QueryContext(ctx, `SELECT status, description, array_to_string(sent_to, ',') FROM eco_overage_ledger ORDER BY ledger_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got [][3]string
	for rows.Next() {
		var r [3]string
		if err := rows.Scan(&r[0], &r[1], &r[2]); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	want := [][3]string{
		{"pending", "API overage: 1100 calls above 500 included, period 2026-02-01 – 2026-02-28", "cus_1"},
		{"billed", "API overage adjustment 1: 2100 calls above 500 included, period 2026-02-01 – 2026-02-28", "cus_1"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ledger after 00011 = %q; want %q", got, want)
	}
	if _, err := sqldb.ExecContext(ctx, `UPDATE eco_overage_ledger SET status = 'dry_run'`); err == nil {
		t.Error("status dry_run still accepted")
	}
	var plan, overrides string
	if err := sqldb.QueryRowContext(ctx, `SELECT plan_id, overrides::text FROM eco_subscription_terms WHERE user_id = $1 AND effective_from = '2026-01-01'`, u).
		Scan(&plan, &overrides); err != nil || plan != "pro" || overrides != `{"included_calls": 500}` {
		t.Errorf("terms history = %s %s, %v", plan, overrides, err)
	}
}

// TestMigrateBillingInvariants upgrades a database from before 00013
// holding a subscription without terms (inserted by SQL) and a ledger row
// priced by the prorated rule: the subscription gets its terms from its
// columns at its anchor, the row's lines are marked prorated; and after
// 00013 a subscription cannot be left without terms. Down takes the marks
// off again.
func TestMigrateBillingInvariants(t *testing.T) {
	ctx := context.Background()
	url, sqldb, p := migrationProvider(t)
	if _, err := p.DownTo(ctx, 12); err != nil {
		t.Fatalf("down to 12: %v", err)
	}
	const u = "aaaaaaaa-0000-4000-8000-000000000002"
	if _, err := sqldb.ExecContext(ctx, `
		INSERT INTO eco_subscriptions (user_id, plan_id, included_calls, overage_unit_price, price_model, period_anchor)
		VALUES ('`+u+`', 'pro', 500, 70, 'per_unit', '2026-01-01');
		INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end, seq, included_calls, used_calls, units,
			unit_size, unit_price, amount, currency, idempotency_key, status, lines) VALUES
		('10000000-0000-4000-8000-000000000001', '`+u+`', '2026-01-01', '2026-02-01', 0, 161, 500, 0, 1000, 70, 24, 'usd', 'k1', 'billed',
			'[{"from": "2026-01-01T00:00:00Z", "to": "2026-01-11T00:00:00Z", "plan_id": "pro", "included_calls": 161, "used_calls": 500}]')`); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, url, nil); err != nil {
		t.Fatalf("up: %v", err)
	}
	var plan, overrides, lines string
	if err := sqldb.QueryRowContext(ctx, `SELECT plan_id, overrides::text FROM eco_subscription_terms WHERE user_id = $1 AND effective_from = '2026-01-01'`, u).
		Scan(&plan, &overrides); err != nil || plan != "pro" || overrides != `{"price_model": "per_unit", "included_calls": 500, "overage_unit_price": 70}` {
		t.Errorf("terms = %s %s, %v", plan, overrides, err)
	}
	if err := sqldb.QueryRowContext(ctx, `SELECT lines->0->>'prorated' FROM eco_overage_ledger`).Scan(&lines); err != nil || lines != "true" {
		t.Errorf("the line is marked prorated: %q, %v", lines, err)
	}
	if _, err := sqldb.ExecContext(ctx, `DELETE FROM eco_subscription_terms WHERE user_id = $1`, u); err == nil ||
		!strings.Contains(err.Error(), "would have no terms from its period anchor on") {
		t.Errorf("deleting the terms: %v; want refused", err)
	}
	if _, err := p.DownTo(ctx, 12); err != nil {
		t.Fatalf("down to 12 again: %v", err)
	}
	if err := sqldb.QueryRowContext(ctx, `SELECT lines::text FROM eco_overage_ledger`).Scan(&lines); err != nil || strings.Contains(lines, "prorated") {
		t.Errorf("lines after down: %s, %v", lines, err)
	}
}

// TestMigrateEventKeysBackfill upgrades a database holding raw events and
// quarantine rows to the event key store (00009): the ids of the events
// already recorded are remembered, so that a redelivery after the upgrade,
// even re-stamped, is a duplicate; quarantine rows duplicated by earlier
// redeliveries stay (they have no key) and do not stop the upgrade; a
// month retention dropped before it stays dropped.
func TestMigrateEventKeysBackfill(t *testing.T) {
	ctx := context.Background()
	url, sqldb, p := migrationProvider(t)
	if _, err := p.DownTo(ctx, 8); err != nil {
		t.Fatalf("down to 8: %v", err)
	}
	user := uuid.NewString()
	var events []usage.Event
	now := time.Now().UTC()
	for i := range 3 {
		id, _ := uuid.NewV7()
		events = append(events, usage.Event{Version: 1, EventID: id.String(), UserID: user, Endpoint: "GET /x", Method: "GET",
			StatusCode: 200, Quantity: 1, OccurredAt: now.Add(-time.Duration(i) * time.Hour)})
		if _, err := sqldb.ExecContext(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code, latency_ms,
			request_bytes, response_bytes, quantity, occurred_at) VALUES ($1, $2, 'GET /x', 'GET', 200, 1, 1, 1, 1, $3)`,
			id.String(), user, events[i].OccurredAt); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := sqldb.ExecContext(ctx, `INSERT INTO eco_rejected_events (source, message_id, reason, body) VALUES ('record', 'm1', 'r', 'b')`); err != nil {
			t.Fatal(err)
		}
	}
	// A month aggregated, then dropped by retention before the upgrade.
	gone := time.Date(2020, 5, 1, 0, 0, 0, 0, time.UTC)
	if _, err := sqldb.ExecContext(ctx, `INSERT INTO eco_usage_aggregated_days (day, aggregated_at) VALUES ($1, now())`, gone.AddDate(0, 0, 9)); err != nil {
		t.Fatal(err)
	}
	// Up to 9, which backfills the key store, and on to the schema the
	// record path writes today.
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range events {
		events[i].OccurredAt = events[i].OccurredAt.Add(-time.Minute)
	}
	n, err := postgres.NewEventStore(db).RecordBatch(ctx, events, nil)
	if err != nil || n != 0 {
		t.Errorf("redelivery after the upgrade = %d, %v; want every event a duplicate", n, err)
	}
	late := events[0]
	late.EventID, late.OccurredAt = uuid.NewString(), gone.AddDate(0, 0, 20)
	if _, err := postgres.NewEventStore(db).RecordBatch(ctx, []usage.Event{late}, nil); usage.ErrorField(err) != "occurred_at" {
		t.Errorf("an event of the month dropped before the upgrade: %v; want refused naming occurred_at", err)
	}
}

// TestMigrateEndpointCapDown steps 00010 (the endpoint cap) down and up over
// a rollup it folded: its aggregate_daily_usage defaults the cap to
// rollup.DefaultMaxEndpointsPerDay, its Down restores 00009's function
// exactly (as a database stepped up to 9 defines it), whose next recompute
// unfolds the day, and its Up applies again and folds it again.
func TestMigrateEndpointCapDown(t *testing.T) {
	ctx := context.Background()
	url, sqldb, p := migrationProvider(t)
	defs := func() []string {
		t.Helper()
		rows, err := sqldb.QueryContext(ctx, `SELECT pg_get_functiondef(oid) FROM pg_proc WHERE proname = 'aggregate_daily_usage' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	open := func() *postgres.DB {
		t.Helper()
		db, err := postgres.Open(ctx, postgres.Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	if got := defs(); len(got) != 1 || !strings.Contains(got[0], fmt.Sprintf("p_max_endpoints integer DEFAULT %d", rollup.DefaultMaxEndpointsPerDay)) {
		t.Fatalf("at 10, aggregate_daily_usage = %q; want one function whose cap defaults to %d", got, rollup.DefaultMaxEndpointsPerDay)
	}

	// A user's day of three endpoints, folded under a cap of 1.
	db := open()
	now := time.Now().UTC()
	d := usage.Day(now).AddDate(0, 0, -1)
	if _, err := postgres.NewRollupStore(db).EnsurePartitions(ctx, d, 1); err != nil {
		t.Fatal(err)
	}
	user := uuid.NewString()
	var events []usage.Event
	for i, endpoint := range []string{"GET /a", "GET /a", "GET /b", "GET /c"} {
		events = append(events, usage.Event{Version: 1, EventID: uuid.NewString(), UserID: user, Endpoint: endpoint, Method: "GET",
			StatusCode: 200, LatencyMS: int64(10 * i), RequestBytes: 1, ResponseBytes: 2, Quantity: 1, OccurredAt: d.Add(time.Duration(i+1) * time.Hour)})
	}
	recordEvents(t, db, events)
	if _, _, err := postgres.NewRollupStore(db).RecomputeDay(ctx, rollup.DirtyDay{Day: d}, 0, 1, 1, false); err != nil {
		t.Fatalf("recompute under a cap of 1: %v", err)
	}
	if diff := cmp.Diff(rolluptest.Rollup(events, 1), dailyUsage(t, db)); diff != "" {
		t.Fatalf("folded rollup (-want +got):\n%s", diff)
	}
	db.Close()

	if _, err := p.DownTo(ctx, 9); err != nil {
		t.Fatalf("down to 9: %v", err)
	}
	down := defs()
	if len(down) != 1 {
		t.Fatalf("after down to 9: %d functions aggregate_daily_usage; want 1", len(down))
	}
	db = open()
	if _, err := db.Pool.Exec(ctx, `SELECT aggregate_daily_usage($1)`, d); err != nil {
		t.Fatalf("00009's aggregate_daily_usage(day): %v", err)
	}
	if diff := cmp.Diff(rolluptest.Rollup(events, 0), dailyUsage(t, db)); diff != "" {
		t.Errorf("after down to 9, the recompute does not unfold the day (-want +got):\n%s", diff)
	}
	checkSummaries(t, db)
	db.Close()

	if _, err := p.DownTo(ctx, 8); err != nil {
		t.Fatalf("down to 8: %v", err)
	}
	if _, err := p.UpTo(ctx, 9); err != nil {
		t.Fatalf("up to 9: %v", err)
	}
	if diff := cmp.Diff(defs(), down); diff != "" {
		t.Errorf("00010's Down does not restore 00009's aggregate_daily_usage (-00009 +00010 down):\n%s", diff)
	}

	// Up again, to the latest version, whose store the recompute is.
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	db = open()
	if _, _, err := postgres.NewRollupStore(db).RecomputeDay(ctx, rollup.DirtyDay{Day: d}, 0, 1, 1, false); err != nil {
		t.Fatalf("recompute under a cap of 1 after up again: %v", err)
	}
	if diff := cmp.Diff(rolluptest.Rollup(events, 1), dailyUsage(t, db)); diff != "" {
		t.Errorf("folded rollup after up again (-want +got):\n%s", diff)
	}
	checkSummaries(t, db)
}

// TestMigrateDownRestoresEachVersion steps the migrations up one at a time
// from nothing, noting the schema at each version; then, for each version,
// it takes a database up from nothing to the next one and steps it down
// once: each Down section
// must give back the schema its version had (a function body restored from
// an older migration that differs from it fails here).
func TestMigrateDownRestoresEachVersion(t *testing.T) {
	ctx := context.Background()
	_, db, p := migrationProvider(t)
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down to 0: %v", err)
	}
	sources := p.ListSources()
	up := map[int64]map[string]string{}
	for _, s := range sources {
		if _, err := p.UpTo(ctx, s.Version); err != nil {
			t.Fatalf("up to %d: %v", s.Version, err)
		}
		up[s.Version] = schemaOf(t, db)
	}
	for i := len(sources) - 2; i >= 0; i-- {
		v, next := sources[i].Version, sources[i+1].Version
		_, db, p := migrationProvider(t)
		if _, err := p.DownTo(ctx, 0); err != nil {
			t.Fatalf("down to 0: %v", err)
		}
		if _, err := p.UpTo(ctx, next); err != nil {
			t.Fatalf("up to %d: %v", next, err)
		}
		if _, err := p.DownTo(ctx, v); err != nil {
			t.Fatalf("down to %d: %v", v, err)
		}
		if diff := cmp.Diff(up[v], schemaOf(t, db)); diff != "" {
			t.Errorf("%d down: the schema is not version %d's (-up +down):\n%s", next, v, diff)
		}
	}
}

// schemaOf returns the public schema's functions, columns, constraints and
// indexes by name, each with its definition.
func schemaOf(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query(`
		SELECT 'function ' || p.oid::regprocedure::text, pg_get_functiondef(p.oid)
		FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
		UNION ALL
		SELECT 'column ' || c.relname || '.' || a.attname,
			format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END ||
			coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
			AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> 'eco_schema_migrations'
		UNION ALL
		SELECT 'constraint ' || c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
		FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
		WHERE c.relnamespace = 'public'::regnamespace AND NOT c.relispartition AND c.relname <> 'eco_schema_migrations'
		UNION ALL
		SELECT 'index ' || i.indexname, i.indexdef
		FROM pg_indexes i JOIN pg_class c ON c.relname = i.tablename AND c.relnamespace = 'public'::regnamespace
		WHERE i.schemaname = 'public' AND NOT c.relispartition AND i.tablename <> 'eco_schema_migrations'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		out[name] = def
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMigrateRecordSlotsDown steps 00012 (record slots, dirty marks per
// user) down and up over live counters held in two slots and users' dirty
// marks: down, each user's day is one counter row with the slots' sums
// (bytes saturated) and the marked days are dirty as a whole; up again,
// the counters read the same through the view, in slot 0.
func TestMigrateRecordSlotsDown(t *testing.T) {
	ctx := context.Background()
	_, db, p := migrationProvider(t)
	const u = "aaaaaaaa-0000-4000-8000-000000000001"
	if _, err := db.ExecContext(ctx, `INSERT INTO eco_usage_counter_slots (user_id, day, slot, calls, errors_4xx, errors_5xx, request_bytes, response_bytes) VALUES
		($1, '2026-03-01', 0, 5, 1, 0, 9223372036854775000, 10),
		($1, '2026-03-01', 3, 7, 0, 2, 1000, 20),
		($1, '2026-03-02', 1, 4, 0, 0, 1, 1)`, u); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO eco_usage_dirty_user_days (day, user_id, slot) VALUES ('2026-03-01', $1, 0), ('2026-03-01', $1, 3)`, u); err != nil {
		t.Fatal(err)
	}
	counters := func() string {
		t.Helper()
		var s string
		if err := db.QueryRowContext(ctx, `SELECT string_agg(format('%s %s %s %s %s %s', day, calls, errors_4xx, errors_5xx, request_bytes, response_bytes), '; ' ORDER BY day)
			FROM eco_usage_counters`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	const want = "2026-03-01 12 1 2 9223372036854775807 30; 2026-03-02 4 0 0 1 1"
	if got := counters(); got != want {
		t.Fatalf("counters through the view = %q; want %q", got, want)
	}
	if _, err := p.DownTo(ctx, 11); err != nil {
		t.Fatalf("down to 11: %v", err)
	}
	if got := counters(); got != want {
		t.Errorf("counters after down = %q; want %q", got, want)
	}
	var dirty string
	if err := db.QueryRowContext(ctx, `SELECT string_agg(day::text, ',' ORDER BY day) FROM eco_usage_dirty_days`).Scan(&dirty); err != nil || dirty != "2026-03-01" {
		t.Errorf("dirty days after down = %q, %v; want 2026-03-01", dirty, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if got := counters(); got != want {
		t.Errorf("counters after up again = %q; want %q", got, want)
	}
	var slots int
	if err := db.QueryRowContext(ctx, `SELECT count(DISTINCT slot) FROM eco_usage_counter_slots`).Scan(&slots); err != nil || slots != 1 {
		t.Errorf("%d slots after up again, %v; want 1 (slot 0)", slots, err)
	}
}
