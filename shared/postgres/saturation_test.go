package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/testkit"
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

// TestEventStoreHugeBytesThenNormalBatch is the reported failure: an event
// with request_bytes = response_bytes = 9223372036854775807 stored (as
// POST /v1/events let through before the bounds, or any row written before
// them), then an ordinary batch of the same user and day. The batch is
// recorded, its calls counted exactly, the byte counters saturate at the
// bigint maximum, and nothing valid is refused. The day's rollup holds the
// maximum too.
func TestEventStoreHugeBytesThenNormalBatch(t *testing.T) {
	const maxBigint = 9223372036854775807
	db := pgtest.NewDB(t)
	store := postgres.NewEventStore(db)
	ctx := context.Background()
	now := testkit.Midday()
	user := uuid.NewString()
	huge := testEvent(user, now.Add(-time.Minute), 200)
	huge.RequestBytes, huge.ResponseBytes = maxBigint, maxBigint
	if _, err := store.RecordBatch(ctx, now, []usage.Event{huge}, nil); err != nil {
		t.Fatalf("store the huge event: %v", err)
	}

	var batch []usage.Event
	for range 5 {
		batch = append(batch, testEvent(user, now.Add(-time.Minute), 200), testEvent(uuid.NewString(), now.Add(-time.Minute), 200))
	}
	if _, err := store.RecordBatch(ctx, now, batch, nil); err != nil {
		t.Fatalf("the ordinary batch was refused: %v", err)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events`); got != 0 {
		t.Errorf("%d valid events quarantined; want none", got)
	}
	today := user + " " + now.Format(time.DateOnly)
	want := pgtest.Counter{Calls: 6, Req: maxBigint, Resp: maxBigint}
	if got := pgtest.Counters(t, db)[today]; got != want {
		t.Errorf("counter = %+v; want %+v", got, want)
	}
	// Another batch of the same user and day: the counters keep moving.
	if _, err := store.RecordBatch(ctx, now, []usage.Event{testEvent(user, now.Add(-time.Minute), 200)}, nil); err != nil {
		t.Fatalf("the next batch was refused: %v", err)
	}
	if got := pgtest.Counters(t, db)[today]; got.Calls != 7 || got.Req != maxBigint {
		t.Errorf("counter after the next batch = %+v; want 7 calls, bytes saturated", got)
	}

	rollups := postgres.NewRollupStore(db)
	if _, _, err := rollups.RecomputeDay(ctx, rollup.DirtyDay{Day: usage.Day(now)}, 0, 1, rollup.DefaultMaxEndpointsPerDay, false); err != nil {
		t.Fatalf("recompute the day: %v", err)
	}
	var calls, rq, rs int64
	if err := db.Pool.QueryRow(ctx, `SELECT calls, request_bytes, response_bytes FROM eco_usage_user_daily
		WHERE user_id = $1 AND day = $2`, user, usage.Day(now)).Scan(&calls, &rq, &rs); err != nil {
		t.Fatal(err)
	}
	if calls != 7 || rq != maxBigint || rs != maxBigint {
		t.Errorf("rollup summary = %d calls, %d, %d bytes; want 7 calls, bytes saturated", calls, rq, rs)
	}
}

// TestLedgerSumsSaturate: the admin reports add ledger amounts over many
// rows (every user's periods in one currency, a user's periods over a long
// range), each within bigint but not their sum; the sums saturate at the
// bigint maximum, as the usage sums do, instead of failing the statement
// (numeric out of range for bigint).
func TestLedgerSumsSaturate(t *testing.T) {
	const maxBigint = 9223372036854775807
	ctx := context.Background()
	db := pgtest.NewDB(t)
	alice, bob := uuid.NewString(), uuid.NewString()
	for i, row := range []struct {
		user, start, status string
	}{
		{alice, "2026-01-01", "billed"}, {alice, "2026-02-01", "billed"},
		{bob, "2026-01-01", "pending"}, {bob, "2026-02-01", "pending"},
	} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end, included_calls,
			used_calls, units, unit_size, unit_price, amount, currency, idempotency_key, status)
			VALUES ($1, $2, $3::date, ($3::date + interval '1 month'), 0, 0, 0, 1, 3, 6000000000000000000, 'usd', $4, $5)`,
			uuid.NewString(), row.user, row.start, uuid.NewString(), row.status); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	a := postgres.NewAnalyticsStore(db)
	r := usage.DayRange{From: day("2026-01-01"), To: day("2026-02-28")}
	now := time.Date(2026, 3, 20, 10, 0, 0, 0, time.UTC)
	want := report.OverageTotal{Currency: "usd", Billed: maxBigint, Pending: maxBigint}
	if sum, err := a.AdminSummary(ctx, r, now); err != nil {
		t.Errorf("AdminSummary: %v", err)
	} else if len(sum.Overage) != 1 || sum.Overage[0] != want {
		t.Errorf("AdminSummary overage = %+v; want [%+v]", sum.Overage, want)
	}
	top, err := a.TopUsers(ctx, report.TopUsersFilter{Range: r, By: report.RankByOverage, Limit: 10}, now)
	if err != nil {
		t.Errorf("TopUsers by overage: %v", err)
	} else if len(top) != 2 || top[0].Overage != maxBigint || top[1].Overage != maxBigint {
		t.Errorf("TopUsers by overage = %+v; want both users at the maximum", top)
	}
}
