package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
)

// TestHandle_Postgres runs the handler over the real store: a normal run,
// then a backfill, and two invocations at once.
func TestHandle_Postgres(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	db.Now = func() time.Time { return testNow }
	store := postgres.NewRollupStore(db)
	if _, err := store.EnsurePartitions(ctx, testNow.AddDate(0, -2, 0), 5); err != nil {
		t.Fatal(err)
	}
	// Two raw events on the 18th, one dirty, as left by the record path.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code, latency_ms,
		request_bytes, response_bytes, quantity, occurred_at) VALUES
		('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222', 'GET /v1/x', 'GET', 200, 10, 1, 2, 1, '2031-03-18 01:00Z'),
		('11111111-1111-4111-8111-111111111112', '22222222-2222-4222-8222-222222222222', 'GET /v1/x', 'GET', 500, 30, 1, 2, 2, '2031-03-18 02:00Z');
		INSERT INTO eco_usage_dirty_days (day) VALUES ('2031-03-18')`); err != nil {
		t.Fatal(err)
	}
	job, err := rollup.New(rollup.Config{Store: store, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(job)
	out, err := h.Handle(ctx, json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if out.DaysRecomputed != 1 || out.RowsWritten != 1 {
		t.Errorf("first run = %+v; want 1 day, 1 row", out)
	}
	var calls, e5, p50, p95 int64
	if err := db.Pool.QueryRow(ctx, `SELECT calls, errors_5xx, latency_p50_ms, latency_p95_ms FROM eco_usage_daily WHERE day = '2031-03-18'`).
		Scan(&calls, &e5, &p50, &p95); err != nil {
		t.Fatal(err)
	}
	if calls != 3 || e5 != 2 || p50 != 10 || p95 != 30 {
		t.Errorf("rollup = calls %d, 5xx %d, p50 %d, p95 %d; want 3, 2, 10, 30", calls, e5, p50, p95)
	}

	out, err = h.Handle(ctx, json.RawMessage(`{"from":"2031-03-17","to":"2031-03-19"}`))
	if err != nil || out.DaysRecomputed != 3 {
		t.Errorf("backfill = %+v, %v; want 3 days", out, err)
	}

	var runs int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_job_runs WHERE job = 'aggregate' AND outcome = 'succeeded'`).Scan(&runs); err != nil || runs != 2 {
		t.Errorf("succeeded job runs = %d, %v; want 2", runs, err)
	}
}
