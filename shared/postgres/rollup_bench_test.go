package postgres_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// BenchmarkRollup measures the daily aggregation over ROLLUP_BENCH_ROWS raw
// rows (default 10,000,000) spread evenly over the 30 days before today:
//
//   - ceiling_s: one plain INSERT INTO scratch SELECT ... GROUP BY day,
//     user_id, endpoint, api_key_id over all the rows, computing the same
//     columns as the rollup (sum(quantity), sum(quantity) FILTER 4xx/5xx,
//     sum of both byte columns, sum(latency_ms),
//     percentile_disc(ARRAY[0.5,0.95]) WITHIN GROUP (ORDER BY latency_ms),
//     max(latency_ms), count(*)), with the same work_mem as
//     aggregate_daily_usage (64MB);
//   - full_s: the job's own path recomputing all 30 days into an empty
//     rollup (every day dirty, 2 workers), and full_1worker_s the same with
//     1 worker;
//   - incr_s: a run after 1 % more events spread over 3 of the days (the
//     days of the users who sent them dirty, as the record path leaves
//     them: here nearly every user's);
//   - backdated_s: a run after 35 backdated events of one user, one on
//     each day of the default backfill window, written by the record path
//     (postgres.EventStore), which marks that user's 35 days;
//     other_rows_rewritten counts the other users' rollup rows that run
//     rewrote (goal 0) and backdated_user_days the users' days it
//     recomputed alone (30: the 5 oldest days hold no other events, and
//     a day whose rollup is empty is recomputed whole);
//   - backdated_whole_s: the same 35 days marked dirty as a whole, what
//     marks of whole days (what the record path wrote before the marks
//     per user) make the next run do for those 35 events.
//
// The ratios are full/ceiling (goal <= 1.5), incr/full (goal <= 0.10) and
// backdated/full.
func BenchmarkRollup(b *testing.B) {
	rows := 10_000_000
	if v := os.Getenv("ROLLUP_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		rows = n
	}
	ctx := context.Background()
	db := pgtest.NewDB(b)
	now := time.Now().UTC()
	db.Now = func() time.Time { return now }
	from := usage.Day(now).AddDate(0, 0, -30)
	s := postgres.NewRollupStore(db)
	if _, err := s.EnsurePartitions(ctx, from.AddDate(0, 0, -5), 5); err != nil {
		b.Fatal(err)
	}

	exec := func(q string, args ...any) {
		b.Helper()
		if _, err := db.Pool.Exec(ctx, q, args...); err != nil {
			b.Fatalf("%.60s: %v", q, err)
		}
	}
	// 1,000 users, 20 endpoints, each user with no key or one of 2 keys,
	// statuses with ~8 % 4xx and ~3 % 5xx, skewed latencies, quantity 1
	// (every 50th: 5). Rows arrive in time order, as they do in production.
	generate := func(n, offset int, start time.Time, span time.Duration) {
		exec(`INSERT INTO eco_api_usage (event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms,
			request_bytes, response_bytes, quantity, occurred_at, received_at)
		SELECT lpad(to_hex(i), 32, '0')::uuid,
			('00000000-0000-4000-8000-' || lpad(to_hex(u), 12, '0'))::uuid,
			CASE WHEN k = 0 THEN NULL ELSE ('00000000-0000-4000-9000-' || lpad(to_hex(u * 4 + k), 12, '0'))::uuid END,
			'GET /v1/resource' || (random() * 19)::int || '/{id}', 'GET',
			CASE WHEN h < 89 THEN 200 WHEN h < 93 THEN 404 WHEN h < 97 THEN 429 ELSE 503 END,
			(random() * random() * 2000)::int, (random() * 4000)::bigint, (random() * 100000)::bigint,
			CASE WHEN i % 50 = 0 THEN 5 ELSE 1 END,
			$2::timestamptz + ($4::float8 * (i - $1) / $3) * interval '1 second', now()
		FROM generate_series($1::bigint, $1::bigint + $3 - 1) AS i,
			LATERAL (SELECT (random() * 999)::int AS u, (random() * 2)::int AS k, (random() * 99)::int AS h, i AS j) x`,
			offset, start, n, span.Seconds())
	}

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		exec(`TRUNCATE eco_api_usage, eco_event_keys, eco_usage_daily, eco_usage_dirty_days, eco_usage_dirty_user_days,
			eco_usage_aggregated_days, eco_usage_counter_slots`)
		exec(`DROP TABLE IF EXISTS rollup_ceiling`)
		t0 := time.Now()
		generate(rows, 1, from, 30*24*time.Hour)
		exec(`VACUUM ANALYZE eco_api_usage`)
		b.Logf("generated %d rows in %s", rows, time.Since(t0).Round(time.Millisecond))

		// The ceiling: one plain GROUP BY of everything.
		exec(`CREATE TABLE rollup_ceiling (LIKE eco_usage_daily INCLUDING DEFAULTS)`)
		t0 = time.Now()
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rollup_ceiling (day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx,
			request_bytes, response_bytes, latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events)
		SELECT day, user_id, endpoint, api_key_id, calls, e4, e5, rq, rs, lat, p[1], p[2], mx, n FROM (
			SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, user_id, endpoint, api_key_id,
				sum(quantity)::bigint AS calls,
				coalesce(sum(quantity) FILTER (WHERE status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
				coalesce(sum(quantity) FILTER (WHERE status_code BETWEEN 500 AND 599), 0)::bigint AS e5,
				sum(request_bytes)::bigint AS rq, sum(response_bytes)::bigint AS rs, sum(latency_ms)::bigint AS lat,
				percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY latency_ms) AS p,
				max(latency_ms) AS mx, count(*) AS n
			FROM eco_api_usage GROUP BY 1, 2, 3, 4) g`); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		ceiling := time.Since(t0)

		markAll := func() { // and start from an empty rollup, as the ceiling does
			exec(`TRUNCATE eco_usage_daily, eco_usage_aggregated_days`)
			exec(`INSERT INTO eco_usage_dirty_days (day) SELECT d::date FROM generate_series($1::date, $1::date + 29, interval '1 day') d
				ON CONFLICT (day) DO UPDATE SET marked_at = now()`, from)
		}
		runTimed := func(workers int) (time.Duration, *rollup.Run) {
			t0 := time.Now()
			job, err := rollup.New(rollup.Config{Store: s, Now: func() time.Time { return now }, Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			run, err := job.RunRollup(ctx, rollup.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return time.Since(t0), run
		}

		markAll()
		full1, _ := runTimed(1)
		markAll()
		full, run := runTimed(2)
		if len(run.Days) != 30 {
			b.Fatalf("full run recomputed %d days", len(run.Days))
		}
		var same bool
		if err := db.Pool.QueryRow(ctx, `SELECT NOT EXISTS (
			(SELECT day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes,
				latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events FROM eco_usage_daily
			 EXCEPT ALL
			 SELECT day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes,
				latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events FROM rollup_ceiling)
			UNION ALL
			(SELECT day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes,
				latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events FROM rollup_ceiling
			 EXCEPT ALL
			 SELECT day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx, request_bytes, response_bytes,
				latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events FROM eco_usage_daily))`).Scan(&same); err != nil {
			b.Fatal(err)
		}
		if !same {
			b.Fatal("the rollup differs from the ceiling's GROUP BY")
		}

		// 1 % new events over 3 days, their users' days marked dirty as
		// the record path marks them.
		extra := rows / 100
		late := from.AddDate(0, 0, 10)
		generate(extra, rows+1, late, 3*24*time.Hour)
		exec(`INSERT INTO eco_usage_dirty_user_days (day, user_id, slot)
			SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date, user_id, 0 FROM eco_api_usage
			WHERE event_id >= lpad(to_hex($1::bigint), 32, '0')::uuid`, rows+1)
		incr, run := runTimed(2)
		if len(run.Days) != 3 {
			b.Fatalf("incremental run recomputed %d days", len(run.Days))
		}

		// 35 backdated events of one user, recorded by the record path.
		user := "00000000-0000-4000-8000-000000000007"
		var backdated []usage.Event
		for d := 1; d <= 35; d++ {
			backdated = append(backdated, usage.Event{Version: 1, EventID: uuid.NewString(), UserID: user,
				Endpoint: "GET /v1/resource3/{id}", Method: "GET", StatusCode: 200, LatencyMS: 12, RequestBytes: 100,
				ResponseBytes: 1000, Quantity: 1, OccurredAt: usage.Day(now).AddDate(0, 0, -d).Add(13 * time.Hour)})
		}
		if n, err := postgres.NewEventStore(db).RecordBatch(ctx, now, backdated, nil); err != nil || n != 35 {
			b.Fatalf("record the backdated events = %d, %v", n, err)
		}
		var before time.Time
		if err := db.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&before); err != nil {
			b.Fatal(err)
		}
		backdatedRun, bRun := runTimed(2)
		// The 5 days before the generated ones hold no other events: their
		// rollup is empty, and they are recomputed whole.
		if len(bRun.Days) != 35 || bRun.UserDays != 30 {
			b.Fatalf("backdated run recomputed %d days, %d users' days; want 35, 30", len(bRun.Days), bRun.UserDays)
		}
		var others, mine int64
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE user_id <> $1), count(*) FILTER (WHERE user_id = $1)
			FROM eco_usage_daily WHERE aggregated_at >= $2`, user, before).Scan(&others, &mine); err != nil {
			b.Fatal(err)
		}
		if others != 0 || mine < 35 {
			b.Fatalf("the backdated run rewrote %d rows of other users and %d of the user; want 0 and at least 35", others, mine)
		}
		// The same 35 days dirty as a whole, as the marks of days made them.
		exec(`INSERT INTO eco_usage_dirty_days (day) SELECT d::date FROM generate_series($1::date - 35, $1::date - 1, interval '1 day') d`,
			usage.Day(now))
		backdatedWhole, _ := runTimed(2)

		b.ReportMetric(ceiling.Seconds(), "ceiling_s")
		b.ReportMetric(full.Seconds(), "full_s")
		b.ReportMetric(full1.Seconds(), "full_1worker_s")
		b.ReportMetric(incr.Seconds(), "incr_s")
		b.ReportMetric(full.Seconds()/ceiling.Seconds(), "full/ceiling")
		b.ReportMetric(incr.Seconds()/full.Seconds(), "incr/full")
		b.ReportMetric(float64(rows)/full.Seconds(), "rows/s")
		b.ReportMetric(backdatedRun.Seconds(), "backdated_s")
		b.ReportMetric(backdatedRun.Seconds()/full.Seconds(), "backdated/full")
		b.ReportMetric(float64(bRun.UserDays), "backdated_user_days")
		b.ReportMetric(float64(others), "other_rows_rewritten")
		b.ReportMetric(backdatedWhole.Seconds(), "backdated_whole_s")
		b.Logf("ceiling %s, full (2 workers) %s, full (1 worker) %s, incremental %s (%d rows written), "+
			"35 backdated events of one user %s (%d users' days, %d rows of the user and %d of others rewritten), the same days whole %s",
			ceiling.Round(time.Millisecond), full.Round(time.Millisecond), full1.Round(time.Millisecond), incr.Round(time.Millisecond), run.RowsWritten,
			backdatedRun.Round(time.Millisecond), bRun.UserDays, mine, others, backdatedWhole.Round(time.Millisecond))
	}
}
