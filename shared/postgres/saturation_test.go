package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// TestSumsSaturate: raw rows whose bytes add up past the bigint maximum
// (rows written before the bounds, or enough of them) are aggregated with
// their bytes saturated at the maximum in the rollup, the per-user daily
// summary and the analytics over several days, while calls stay exact:
// no sum the system keeps or returns fails.
func TestSumsSaturate(t *testing.T) {
	const maxBigint = 9223372036854775807
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	user := uuid.NewString()
	days := []time.Time{usage.Day(rollupNow).AddDate(0, 0, -3), usage.Day(rollupNow).AddDate(0, 0, -2)}
	for _, d := range days {
		for _, endpoint := range []string{"GET /a", "GET /a", "GET /b"} {
			if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code, latency_ms,
				request_bytes, response_bytes, quantity, occurred_at) VALUES ($1, $2, $3, 'GET', 200, 2147483647, $4, $4, 1000000, $5)`,
				uuid.NewString(), user, endpoint, int64(maxBigint), d.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := s.RecomputeDay(ctx, rollup.DirtyDay{Day: d}, 0, 1, rollup.DefaultMaxEndpointsPerDay, false); err != nil {
			t.Fatalf("recompute %s: %v", d.Format(time.DateOnly), err)
		}
	}
	var calls, rq, rs, lat int64
	if err := db.Pool.QueryRow(ctx, `SELECT calls, request_bytes, response_bytes, latency_sum_ms FROM eco_usage_daily
		WHERE user_id = $1 AND day = $2 AND endpoint = 'GET /a'`, user, days[0]).Scan(&calls, &rq, &rs, &lat); err != nil {
		t.Fatal(err)
	}
	if calls != 2_000_000 || rq != maxBigint || rs != maxBigint || lat != 2*2147483647 {
		t.Errorf("rollup row = %d calls, %d, %d bytes, %d ms; want 2000000 calls, bytes saturated, latency summed", calls, rq, rs, lat)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT calls, request_bytes FROM eco_usage_user_daily WHERE user_id = $1 AND day = $2`,
		user, days[0]).Scan(&calls, &rq); err != nil {
		t.Fatal(err)
	}
	if calls != 3_000_000 || rq != maxBigint {
		t.Errorf("user's day = %d calls, %d bytes; want 3000000 calls, bytes saturated", calls, rq)
	}

	a := postgres.NewAnalyticsStore(db)
	r := usage.DayRange{From: days[0], To: days[1]}
	rows, err := a.EndpointBreakdown(ctx, report.BreakdownFilter{UserID: user, Range: r, Limit: 10})
	if err != nil {
		t.Fatalf("EndpointBreakdown: %v", err)
	}
	if len(rows) != 2 || rows[0].Calls != 4_000_000 || rows[0].RequestBytes != maxBigint || rows[1].ResponseBytes != maxBigint {
		t.Errorf("breakdown = %+v; want GET /a with 4000000 calls, bytes saturated", rows)
	}
	daily, err := a.DailyUsage(ctx, user, r, rollupNow)
	if err != nil || len(daily) != 2 || daily[0].RequestBytes != maxBigint || daily[1].Calls != 3_000_000 {
		t.Errorf("DailyUsage = %+v, %v; want two saturated days", daily, err)
	}
	if _, err := a.AdminSummary(ctx, r, rollupNow); err != nil {
		t.Errorf("AdminSummary: %v", err)
	}
}
