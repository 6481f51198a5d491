package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

func testEnv(vars map[string]string) *env.Env {
	return env.New(context.Background(), func(k string) string { return vars[k] })
}

// TestSetup refuses bad configuration before anything connects.
func TestSetup(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, bad := range []map[string]string{
		{},
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "0"},
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "ninety"},
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "soon"},
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "46d", "RETENTION_DAYS": "400"},
	} {
		if _, err := setup(ctx, testEnv(bad), logger); err == nil {
			t.Errorf("setup(%v): no error", bad)
		}
	}
}

// TestSetupRefusesRetentionShorterThanBackfill: raw events must outlast the
// backfill window by usage.BackfillMargin (5 days), or a late event would
// land in a month retention dropped. The refusal names RETENTION_DAYS and
// the days needed.
func TestSetupRefusesRetentionShorterThanBackfill(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, tt := range []struct {
		vars map[string]string
		need string
	}{
		{map[string]string{"RETENTION_DAYS": "30"}, "40"},                           // default 35d + 5
		{map[string]string{"RETENTION_DAYS": "39"}, "40"},                           // one day short
		{map[string]string{"RETENTION_DAYS": "20", "BACKFILL_WINDOW": "16d"}, "21"}, // the function's own window
		{map[string]string{"RETENTION_DAYS": "49", "BACKFILL_WINDOW": "1080h"}, "50"},
	} {
		tt.vars["DATABASE_URL"] = "postgres://x"
		_, err := setup(ctx, testEnv(tt.vars), logger)
		if err == nil || !strings.Contains(err.Error(), "RETENTION_DAYS") || !strings.Contains(err.Error(), "at least "+tt.need+" days") {
			t.Errorf("setup(%v) = %v; want RETENTION_DAYS refused, at least %s days", tt.vars, err, tt.need)
		}
	}
	for _, ok := range []map[string]string{
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "40"},
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "21", "BACKFILL_WINDOW": "16d"},
	} {
		if _, err := setup(ctx, testEnv(ok), logger); err != nil {
			t.Errorf("setup(%v) = %v; want accepted", ok, err)
		}
	}
}

// TestSetupRefusesRetentionBeyondTheCalendar: a retention of more days than
// a date can go back (a "keep everything" of 9223372036854775807) is
// refused, naming RETENTION_DAYS: its cutoff wrapped around to tomorrow,
// and every aggregated raw partition was dropped.
func TestSetupRefusesRetentionBeyondTheCalendar(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, days := range []string{"36501", "1000000000000000", "9223372036854775807"} {
		vars := map[string]string{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": days}
		_, err := setup(ctx, testEnv(vars), logger)
		if err == nil || !strings.HasPrefix(err.Error(), "RETENTION_DAYS: ") || !strings.Contains(err.Error(), "at most 36500 days") {
			t.Errorf("setup(RETENTION_DAYS=%s) = %v; want RETENTION_DAYS refused, at most 36500 days", days, err)
		}
	}
	vars := map[string]string{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "36500"}
	if _, err := setup(ctx, testEnv(vars), logger); err != nil {
		t.Errorf("setup(RETENTION_DAYS=36500) = %v; want accepted", err)
	}
}

// TestSetupRefusesEndpointCap: MAX_ENDPOINTS_PER_DAY must be a whole number
// from 1 to rollup.MaxEndpointsPerDayLimit; anything else stops the function
// at start with an error naming the variable and what it must be.
func TestSetupRefusesEndpointCap(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, tt := range []struct{ value, want string }{
		{"0", "between 1 and 100000, not 0"},
		{"100001", "between 1 and 100000, not 100001"},
		{"-5", "a non-negative integer"},
		{"lots", "a non-negative integer"},
		{"1e3", "a non-negative integer"},
	} {
		vars := map[string]string{"DATABASE_URL": "postgres://x", "MAX_ENDPOINTS_PER_DAY": tt.value}
		_, err := setup(ctx, testEnv(vars), logger)
		if err == nil || !strings.HasPrefix(err.Error(), "MAX_ENDPOINTS_PER_DAY: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("setup(MAX_ENDPOINTS_PER_DAY=%s) = %v; want refused naming the variable, %q", tt.value, err, tt.want)
		}
	}
	for _, ok := range []string{"1", "1000", "100000"} {
		if _, err := setup(ctx, testEnv(map[string]string{"DATABASE_URL": "postgres://x", "MAX_ENDPOINTS_PER_DAY": ok}), logger); err != nil {
			t.Errorf("setup(MAX_ENDPOINTS_PER_DAY=%s) = %v; want accepted", ok, err)
		}
	}
}

// TestSetupWithDatabase wires the handler from an environment to a real
// database and runs it: a run recomputes the day the record path left
// dirty, a backfill the range it is given, and both are logged as job runs.
// The rollup's SQL over many events is shared/postgres's
// (TestRollup_MatchesBruteForce, TestRollup_Backfill).
func TestSetupWithDatabase(t *testing.T) {
	url := pgtest.NewURL(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := setup(ctx, testEnv(map[string]string{"DATABASE_URL": url}), logger)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	config := func(h *Handler) rollup.Config { return h.Rollup.(*rollup.Job).Config() }
	if c := config(h); c.RetentionDays != rollup.DefaultRetentionDays || c.MaxEndpointsPerDay != rollup.DefaultMaxEndpointsPerDay || c.Workers != 2 || h.Now == nil {
		t.Errorf("job = %+v", c)
	}
	h, err = setup(ctx, testEnv(map[string]string{"DATABASE_URL": url, "MAX_ENDPOINTS_PER_DAY": "250"}), logger)
	if err != nil || config(h).MaxEndpointsPerDay != 250 {
		t.Errorf("setup with MAX_ENDPOINTS_PER_DAY=250: %+v, %v", h, err)
	}
	h, err = setup(ctx, testEnv(map[string]string{"DATABASE_URL": url, "RETENTION_DAYS": "30", "BACKFILL_WINDOW": "7d"}), logger)
	if err != nil || config(h).RetentionDays != 30 {
		t.Errorf("setup with RETENTION_DAYS=30, BACKFILL_WINDOW=7d: %+v, %v", h, err)
	}

	db, err := postgres.Open(ctx, postgres.Config{URL: url, ExecMode: pgtest.Proxy()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	today := usage.Day(time.Now())
	if _, err := postgres.NewRollupStore(db).EnsurePartitions(ctx, today.AddDate(0, -2, 0), 5); err != nil {
		t.Fatal(err)
	}
	// Two raw events of today, the day dirty, as left by the record path.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code, latency_ms,
		request_bytes, response_bytes, quantity, occurred_at) VALUES
		('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222', 'GET /v1/x', 'GET', 200, 10, 1, 2, 1, $1),
		('11111111-1111-4111-8111-111111111112', '22222222-2222-4222-8222-222222222222', 'GET /v1/x', 'GET', 500, 30, 1, 2, 2, $1)`,
		today); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_usage_dirty_days (day) VALUES ($1)`, today); err != nil {
		t.Fatal(err)
	}
	out, err := h.Handle(ctx, json.RawMessage(`{}`))
	if err != nil || out.DaysRecomputed != 1 || out.RowsWritten != 1 {
		t.Fatalf("first run = %+v, %v; want 1 day, 1 row", out, err)
	}
	var calls, e5, p50, p95 int64
	if err := db.Pool.QueryRow(ctx, `SELECT calls, errors_5xx, latency_p50_ms, latency_p95_ms FROM eco_usage_daily WHERE day = $1`, today).
		Scan(&calls, &e5, &p50, &p95); err != nil {
		t.Fatal(err)
	}
	if calls != 3 || e5 != 2 || p50 != 10 || p95 != 30 {
		t.Errorf("rollup = calls %d, 5xx %d, p50 %d, p95 %d; want 3, 2, 10, 30", calls, e5, p50, p95)
	}
	backfill := fmt.Sprintf(`{"from":%q,"to":%q}`, today.AddDate(0, 0, -2).Format(time.DateOnly), today.Format(time.DateOnly))
	if out, err := h.Handle(ctx, json.RawMessage(backfill)); err != nil || out.DaysRecomputed != 3 {
		t.Errorf("backfill %s = %+v, %v; want 3 days", backfill, out, err)
	}
	if runs := pgtest.Count(t, db, `SELECT count(*) FROM eco_job_runs WHERE job = 'aggregate' AND outcome = 'succeeded'`); runs != 2 {
		t.Errorf("succeeded job runs = %d; want 2", runs)
	}
}
