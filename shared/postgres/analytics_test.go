package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

// TestUserDailyFollowsRollup checks that eco_usage_user_daily follows every
// kind of write to eco_usage_daily: insert, upsert, update and delete.
func TestUserDailyFollowsRollup(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	ctx := context.Background()
	const u = "aaaaaaaa-0000-4000-8000-000000000001"
	exec := func(sql string) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	summary := func() (rows int, calls, e4 int64) {
		t.Helper()
		if err := db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(calls), 0), coalesce(sum(errors_4xx), 0) FROM eco_usage_user_daily`).Scan(&rows, &calls, &e4); err != nil {
			t.Fatal(err)
		}
		return
	}
	const cols = `(day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes,
		latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events)`
	exec(`INSERT INTO eco_usage_daily ` + cols + ` VALUES
		('2026-03-01', '` + u + `', 'GET /a', NULL, 10, 1, 0, 1, 1, 1, 1, 1, 1, 10),
		('2026-03-01', '` + u + `', 'GET /b', NULL, 5, 1, 0, 1, 1, 1, 1, 1, 1, 5),
		('2026-03-02', '` + u + `', 'GET /a', NULL, 7, 0, 0, 1, 1, 1, 1, 1, 1, 7)`)
	if n, c, e := summary(); n != 2 || c != 22 || e != 2 {
		t.Fatalf("after insert: %d rows, %d calls, %d errors; want 2, 22, 2", n, c, e)
	}
	// A recomputation as aggregate_daily_usage may write it.
	exec(`INSERT INTO eco_usage_daily ` + cols + ` VALUES ('2026-03-01', '` + u + `', 'GET /a', NULL, 12, 3, 0, 1, 1, 1, 1, 1, 1, 12)
		ON CONFLICT (day, user_id, endpoint, api_key_id) DO UPDATE SET calls = excluded.calls, errors_4xx = excluded.errors_4xx`)
	if n, c, e := summary(); n != 2 || c != 24 || e != 4 {
		t.Fatalf("after upsert: %d rows, %d calls, %d errors; want 2, 24, 4", n, c, e)
	}
	exec(`UPDATE eco_usage_daily SET calls = calls + 1 WHERE day = '2026-03-02'`)
	if _, c, _ := summary(); c != 25 {
		t.Fatalf("after update: %d calls; want 25", c)
	}
	exec(`DELETE FROM eco_usage_daily WHERE day = '2026-03-02'`)
	if n, c, _ := summary(); n != 1 || c != 17 {
		t.Fatalf("after delete: %d rows, %d calls; want 1, 17", n, c)
	}
	var rebuilt int64
	if err := db.Pool.QueryRow(ctx, `SELECT refresh_usage_user_daily('2026-03-01', '2026-03-31')`).Scan(&rebuilt); err != nil || rebuilt != 1 {
		t.Fatalf("refresh_usage_user_daily = %d, %v; want 1", rebuilt, err)
	}
}

// TestPutPlanConcurrent checks that concurrent plan changes of one user
// leave an unbroken audit chain: each row's old is the previous row's new.
func TestPutPlanConcurrent(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	s := postgres.NewAnalyticsStore(db)
	ctx := context.Background()
	const u = "bbbbbbbb-0000-4000-8000-000000000002"
	plans := []string{"pro", "enterprise", "free", "pro", "enterprise", "free", "pro", "enterprise"}
	var wg sync.WaitGroup
	for i, p := range plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			burst := i + 1
			if _, err := s.PutPlan(ctx, usage.PlanChange{UserID: u, PlanID: p, Overrides: usage.Overrides{Burst: &burst}, Who: "ops"}); err != nil {
				t.Errorf("PutPlan: %v", err)
			}
		}()
	}
	wg.Wait()
	rows, err := db.Pool.Query(ctx, `SELECT old, new FROM eco_plan_audit WHERE user_id = $1 ORDER BY audit_id`, u)
	if err != nil {
		t.Fatal(err)
	}
	var prev, old, cur map[string]any
	n := 0
	for rows.Next() {
		if err := rows.Scan(&old, &cur); err != nil {
			t.Fatal(err)
		}
		if n == 0 && old != nil {
			t.Errorf("first audit row has old %v; want null", old)
		}
		if n > 0 && (old == nil || old["burst"] != prev["burst"]) {
			t.Errorf("audit row %d: old %v does not match the previous new %v", n, old, prev)
		}
		prev = cur
		n++
	}
	if n != len(plans) {
		t.Errorf("%d audit rows; want %d", n, len(plans))
	}
	if _, err := s.PutPlan(ctx, usage.PlanChange{UserID: u, PlanID: "platinum"}); usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != "plan_id" {
		t.Errorf("unknown plan: %v; want invalid naming plan_id", err)
	}
}
