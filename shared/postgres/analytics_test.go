package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// TestUserDailyFollowsRollup checks that eco_usage_user_daily and
// eco_usage_user_monthly follow every kind of write to eco_usage_daily:
// insert, upsert, update and delete, in and out of day order.
func TestUserDailyFollowsRollup(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	ctx := context.Background()
	const u = "aaaaaaaa-0000-4000-8000-000000000001"
	const v = "aaaaaaaa-0000-4000-8000-000000000002"
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
	checkSummaries(t, db)
	// A recomputation as aggregate_daily_usage may write it: a day before
	// one already summarised.
	exec(`INSERT INTO eco_usage_daily ` + cols + ` VALUES ('2026-03-01', '` + u + `', 'GET /a', NULL, 12, 3, 0, 1, 1, 1, 1, 1, 1, 12)
		ON CONFLICT (day, user_id, endpoint, api_key_id) DO UPDATE SET calls = excluded.calls, errors_4xx = excluded.errors_4xx`)
	if n, c, e := summary(); n != 2 || c != 24 || e != 4 {
		t.Fatalf("after upsert: %d rows, %d calls, %d errors; want 2, 24, 4", n, c, e)
	}
	checkSummaries(t, db)
	// Days in order, one statement each (the aggregation's common case),
	// another user, and the next month.
	for _, d := range []string{"2026-03-05", "2026-03-31", "2026-04-01", "2026-04-30"} {
		exec(`INSERT INTO eco_usage_daily ` + cols + ` VALUES
			('` + d + `', '` + u + `', 'GET /a', NULL, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3),
			('` + d + `', '` + v + `', 'GET /a', NULL, 4, 0, 2, 1, 1, 1, 1, 1, 1, 4)`)
		checkSummaries(t, db)
	}
	exec(`UPDATE eco_usage_daily SET calls = calls + 1 WHERE day = '2026-03-02'`)
	if _, c, _ := summary(); c != 53 {
		t.Fatalf("after update: %d calls; want 53", c)
	}
	checkSummaries(t, db)
	// Several days of two months in one statement.
	exec(`UPDATE eco_usage_daily SET errors_4xx = errors_4xx + 1 WHERE user_id = '` + v + `'`)
	checkSummaries(t, db)
	exec(`DELETE FROM eco_usage_daily WHERE day = '2026-03-02'`)
	if n, c, _ := summary(); n != 9 || c != 45 {
		t.Fatalf("after delete: %d rows, %d calls; want 9, 45", n, c)
	}
	checkSummaries(t, db)
	exec(`DELETE FROM eco_usage_daily WHERE user_id = '` + v + `' AND day < '2026-04-01'`)
	checkSummaries(t, db)

	// A bulk load that bypasses the triggers, then the rebuild.
	exec(`BEGIN; SET LOCAL session_replication_role = replica;
		DELETE FROM eco_usage_daily WHERE day = '2026-03-05';
		INSERT INTO eco_usage_daily ` + cols + ` VALUES ('2026-03-20', '` + v + `', 'GET /c', NULL, 9, 0, 0, 1, 1, 1, 1, 1, 1, 9);
		COMMIT`)
	var rebuilt int64
	if err := db.Pool.QueryRow(ctx, `SELECT refresh_usage_user_daily('2026-03-01', '2026-03-31')`).Scan(&rebuilt); err != nil || rebuilt != 3 {
		t.Fatalf("refresh_usage_user_daily = %d, %v; want 3", rebuilt, err)
	}
	checkSummaries(t, db)
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
			if _, err := s.PutPlan(ctx, report.PlanChange{UserID: u, PlanID: p, Overrides: usage.Overrides{Burst: &burst}, Who: "ops"}); err != nil {
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
	if _, err := s.PutPlan(ctx, report.PlanChange{UserID: u, PlanID: "platinum"}); usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != "plan_id" {
		t.Errorf("unknown plan: %v; want invalid naming plan_id", err)
	}
}

// checkSummaries checks the admin reports' summaries against the rollup:
// eco_usage_user_daily is eco_usage_daily summed per user and day, and
// eco_usage_user_monthly holds, for every user and month with rollup rows,
// the month-to-date totals of every day of the month, both computed here
// from eco_usage_daily.
func checkSummaries(t *testing.T, db *postgres.DB) {
	t.Helper()
	ctx := context.Background()
	type key struct {
		day  time.Time
		user string
	}
	type totals struct{ Calls, E4, E5, Req, Resp, P95 int64 }
	collect := func(sql string) map[key]totals {
		t.Helper()
		rows, err := db.Pool.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		out := map[key]totals{}
		var k key
		var v totals
		if _, err := pgx.ForEachRow(rows, []any{&k.day, &k.user, &v.Calls, &v.E4, &v.E5, &v.Req, &v.Resp, &v.P95}, func() error {
			k.day = k.day.UTC()
			out[k] = v
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := collect(`SELECT day, user_id::text, sum(calls)::bigint, sum(errors_4xx)::bigint, sum(errors_5xx)::bigint,
		sum(request_bytes)::bigint, sum(response_bytes)::bigint, max(latency_p95_ms)::bigint FROM eco_usage_daily GROUP BY 1, 2`)
	got := collect(`SELECT day, user_id::text, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, latency_p95_ms::bigint
		FROM eco_usage_user_daily`)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("eco_usage_user_daily differs from the rollup (-want +got):\n%s", diff)
	}

	type running struct{ Calls, E4, E5 []int64 }
	wantMonths := map[key]running{}
	for k, v := range want {
		m := key{time.Date(k.day.Year(), k.day.Month(), 1, 0, 0, 0, 0, time.UTC), k.user}
		r, ok := wantMonths[m]
		if !ok {
			n := m.day.AddDate(0, 1, -1).Day()
			r = running{make([]int64, n), make([]int64, n), make([]int64, n)}
		}
		for i := k.day.Day() - 1; i < len(r.Calls); i++ {
			r.Calls[i] += v.Calls
			r.E4[i] += v.E4
			r.E5[i] += v.E5
		}
		wantMonths[m] = r
	}
	rows, err := db.Pool.Query(ctx, `SELECT month, user_id::text, calls, errors_4xx, errors_5xx FROM eco_usage_user_monthly`)
	if err != nil {
		t.Fatal(err)
	}
	gotMonths := map[key]running{}
	var k key
	var r running
	if _, err := pgx.ForEachRow(rows, []any{&k.day, &k.user, &r.Calls, &r.E4, &r.E5}, func() error {
		k.day = k.day.UTC()
		// A month whose rollup rows were all deleted keeps a row of zeros.
		if _, ok := wantMonths[k]; !ok && r.Calls[len(r.Calls)-1] == 0 && r.E4[len(r.E4)-1] == 0 && r.E5[len(r.E5)-1] == 0 {
			return nil
		}
		gotMonths[k] = r
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantMonths, gotMonths); diff != "" {
		t.Fatalf("eco_usage_user_monthly differs from the rollup (-want +got):\n%s", diff)
	}
}

// TestUserMonthlyConcurrentDays writes eight days of one month for the same
// users from eight concurrent transactions, each in two statements as a
// day's aggregation does (its rows are inserted, then updated, and each
// statement's trigger adds to the month rows): half of the users first, on
// even days the other half first. Every change must land in the month
// rows, and no two days may deadlock on them.
func TestUserMonthlyConcurrentDays(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	ctx := context.Background()
	const users = 300
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	insert := `INSERT INTO eco_usage_daily (day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx,
			request_bytes, response_bytes, latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events)
		SELECT make_date(2026, 5, $1), ('aaaaaaaa-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'GET /a', NULL,
			i + $1, $1, 1, 1, 1, 1, 1, 1, 1, 1
		FROM generate_series($2::int, $3::int) i`
	for day := 1; day <= 8; day++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			halves := [][2]int{{1, users / 2}, {users/2 + 1, users}}
			if day%2 == 0 {
				halves[0], halves[1] = halves[1], halves[0]
			}
			errs <- pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				for _, h := range halves {
					if _, err := tx.Exec(ctx, insert, day, h[0], h[1]); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, `SELECT pg_sleep(0.05)`); err != nil {
						return err
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkSummaries(t, db)
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_usage_user_monthly WHERE month = '2026-05-01' AND calls[31] > 0`).Scan(&n); err != nil || n != users {
		t.Fatalf("%d month rows, %v; want %d", n, err, users)
	}
}
