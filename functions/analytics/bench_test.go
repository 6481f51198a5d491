package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

// benchEndpoints is how many endpoints each user calls every day.
const benchEndpoints = 10

func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

func benchUser(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", i) }

// buildRollup fills a fresh database with users × days × benchEndpoints rows
// of eco_usage_daily ending today, the per-user summaries from it, 35 days of
// live counters per user, and subscriptions (10 % pro, 1 % enterprise).
//
// It is a fixture, so it takes shortcuts that change nothing for reads: the
// rollup table is UNLOGGED (no WAL for gigabytes of rows), its indexes are
// built after the load, and the summary trigger is bypassed during the bulk
// insert (refresh_usage_user_daily fills the summary afterwards, as the
// migration documents for bulk loads).
func buildRollup(b *testing.B, db *postgres.DB, users, days int, today time.Time) {
	ctx := context.Background()
	start := time.Now()
	exec := func(sql string, args ...any) {
		b.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	var uniq string
	if err := db.Pool.QueryRow(ctx, `SELECT conname FROM pg_constraint WHERE conrelid = 'eco_usage_daily'::regclass AND contype = 'u'`).Scan(&uniq); err != nil {
		b.Fatal(err)
	}
	exec(`ALTER TABLE eco_usage_daily SET UNLOGGED`)
	exec(`ALTER TABLE eco_usage_daily DROP CONSTRAINT ` + pgx.Identifier{uniq}.Sanitize())
	exec(`DROP INDEX eco_usage_daily_user_day_idx`)
	exec(`CREATE TABLE bench_users AS SELECT i, ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid AS user_id
		FROM generate_series(1, $1) i`, users)

	first := today.AddDate(0, 0, -(days - 1))
	// Two loaders (the machine has two cores), each a run of days.
	errs := make(chan error, 2)
	half := days / 2
	for w := 0; w < 2; w++ {
		from, to := first, first.AddDate(0, 0, half-1)
		if w == 1 {
			from, to = first.AddDate(0, 0, half), today
		}
		go func() {
			errs <- pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO eco_usage_daily (day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx,
						request_bytes, response_bytes, latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events)
					SELECT d::date, u.user_id, 'GET /v1/resource' || e || '/{id}', NULL, c, c / 50, c / 200,
						c * 200, c * 2000, c * 40, 30, 80 + e * 10, 400, c
					FROM generate_series($1::date, $2::date, interval '1 day') d
					CROSS JOIN bench_users u
					CROSS JOIN generate_series(0, $3 - 1) e
					CROSS JOIN LATERAL (SELECT 1 + ((u.i * 7919 + extract(doy FROM d)::int * 31 + e * 131) % 200)::bigint AS c) k`,
					from, to, benchEndpoints)
				return err
			})
		}()
	}
	for w := 0; w < 2; w++ {
		if err := <-errs; err != nil {
			b.Fatalf("load rollup: %v", err)
		}
	}
	b.Logf("loaded %d rollup rows in %s", users*days*benchEndpoints, time.Since(start).Round(time.Second))
	exec(`SET maintenance_work_mem = '1GB'`)
	exec(`ALTER TABLE eco_usage_daily ADD CONSTRAINT ` + pgx.Identifier{uniq}.Sanitize() + ` UNIQUE NULLS NOT DISTINCT (day, user_id, endpoint, api_key_id)`)
	exec(`CREATE INDEX eco_usage_daily_user_day_idx ON eco_usage_daily (user_id, day)`)
	b.Logf("indexed in %s", time.Since(start).Round(time.Second))

	// The per-user summaries, a calendar month at a time (the month rows
	// are rebuilt whole) on two connections.
	months := make(chan [2]time.Time, 16)
	for m := time.Date(first.Year(), first.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(today); m = m.AddDate(0, 1, 0) {
		months <- [2]time.Time{m, m.AddDate(0, 1, -1)}
	}
	close(months)
	for w := 0; w < 2; w++ {
		go func() {
			for r := range months {
				if _, err := db.Pool.Exec(ctx, `SELECT refresh_usage_user_daily($1, $2)`, r[0], r[1]); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < 2; w++ {
		if err := <-errs; err != nil {
			b.Fatalf("refresh summary: %v", err)
		}
	}
	exec(`INSERT INTO eco_usage_counters (user_id, day, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, updated_at)
		SELECT u.user_id, d::date, 1000 + u.i % 100, 10, 2, 100000, 1000000, d + interval '1 hour'
		FROM bench_users u CROSS JOIN generate_series($1::date - 34, $1::date, interval '1 day') d`, today)
	exec(`INSERT INTO eco_subscriptions (user_id, plan_id, period_anchor)
		SELECT user_id, CASE WHEN i % 100 = 0 THEN 'enterprise' ELSE 'pro' END,
			date_trunc('day', $1::timestamptz - (i % 28) * interval '1 day')
		FROM bench_users WHERE i % 10 = 0`, today)
	exec(`VACUUM ANALYZE eco_usage_user_daily`)
	exec(`VACUUM ANALYZE eco_usage_user_monthly`)
	exec(`VACUUM ANALYZE eco_usage_counters`)
	exec(`ANALYZE eco_usage_daily`)
	exec(`ANALYZE eco_subscriptions`)
	b.Logf("fixture ready in %s", time.Since(start).Round(time.Second))
}

// BenchmarkAnalytics times the handler on GET /v1/usage, GET
// /v1/usage/daily (30 days) and GET /v1/admin/top-users over a rollup of
// NEXUS_BENCH_USERS (10,000) users × NEXUS_BENCH_DAYS (365) days × 10
// endpoints, each beside its bare SQL statement in the same run, and
// reports p50 and p99 in milliseconds. Goals: user routes p99 < 5 ms and
// within 1.5 × the bare query; top users < 100 ms.
func BenchmarkAnalytics(b *testing.B) {
	users := envInt(b, "NEXUS_BENCH_USERS", 10_000)
	days := envInt(b, "NEXUS_BENCH_DAYS", 365)
	today := usage.Day(time.Now())
	now := today.Add(12 * time.Hour)
	db := pgtest.NewDB(b)
	db.Now = func() time.Time { return now }
	buildRollup(b, db, users, days, today)

	verifier, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: testIssuer, Audience: testAudience,
		Algorithms: []string{"HS256"}, HMACSecret: testSecret, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	store := postgres.NewAnalyticsStore(db)
	h := &Handler{Usage: store, Admin: store, Auth: &auth.Authenticator{JWT: verifier},
		Now: func() time.Time { return now }}
	sign := func(user string, admin bool) string {
		s, err := auth.Sign(testSecret, testIssuer, testAudience, user, admin, now.Add(-time.Minute), time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		return "Bearer " + s
	}
	from := today.AddDate(0, 0, -29)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return benchUser(1 + rng.IntN(users)) }

	type route struct {
		name     string
		samples  int
		target   func(user string) (string, string) // path, authorization
		bare     func(user string) error
		goalP99  time.Duration
		maxRatio float64
	}
	drain := func(sql string, args ...any) error {
		rows, err := db.Pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		rows.Close()
		return rows.Err()
	}
	admin := sign(benchUser(0), true)
	routes := []route{
		{"usage", 2000,
			func(u string) (string, string) { return "/v1/usage", sign(u, false) },
			func(u string) error { return drain(postgres.AnalyticsSQL.Summary, u, today) },
			5 * time.Millisecond, 1.5},
		{"daily30", 1000,
			func(u string) (string, string) {
				return "/v1/usage/daily?from=" + day(from) + "&to=" + day(today), sign(u, false)
			},
			func(u string) error { return drain(postgres.AnalyticsSQL.Daily, u, from, today, today) },
			5 * time.Millisecond, 1.5},
		{"top-users", 30,
			func(string) (string, string) {
				return "/v1/admin/top-users?by=calls&limit=10&from=" + day(from) + "&to=" + day(today), admin
			},
			func(string) error { return drain(postgres.AnalyticsSQL.TopUsersByCalls, from, today, today, 10, now) },
			100 * time.Millisecond, 0},
	}
	if os.Getenv("NEXUS_BENCH_EXPLAIN") != "" {
		u := benchUser(1 + users/2)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{postgres.AnalyticsSQL.Summary, []any{u, today}},
			{postgres.AnalyticsSQL.Daily, []any{u, from, today, today}},
			{postgres.AnalyticsSQL.TopUsersByCalls, []any{from, today, today, 10, now}},
		} {
			rows, err := db.Pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q.sql, q.args...)
			if err != nil {
				b.Fatal(err)
			}
			plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("plan:\n%s", strings.Join(plan, "\n"))
		}
	}
	b.ResetTimer()
	for _, rt := range routes {
		b.Run(rt.name, func(b *testing.B) {
			for n := 0; n < b.N; n++ {
				handler := make([]time.Duration, 0, rt.samples)
				bare := make([]time.Duration, 0, rt.samples)
				for i := 0; i < rt.samples+rt.samples/10; i++ {
					u := pick()
					path, authz := rt.target(u)
					req := request("GET", path, map[string]string{"Authorization": authz}, "")
					var dh, ds time.Duration
					handle := func() {
						t0 := time.Now()
						resp, _ := h.Handle(ctx, req)
						dh = time.Since(t0)
						if resp.StatusCode != 200 {
							b.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Body)
						}
					}
					query := func() {
						t0 := time.Now()
						if err := rt.bare(u); err != nil {
							b.Fatal(err)
						}
						ds = time.Since(t0)
					}
					// Both read the same user's rows; whichever goes second
					// finds them warmer, so they take turns.
					if i%2 == 0 {
						handle()
						query()
					} else {
						query()
						handle()
					}
					if i >= rt.samples/10 { // the first tenth warms caches
						handler, bare = append(handler, dh), append(bare, ds)
					}
				}
				hp50, hp99 := percentiles(handler)
				sp50, sp99 := percentiles(bare)
				b.ReportMetric(ms(hp50), "p50-ms")
				b.ReportMetric(ms(hp99), "p99-ms")
				b.ReportMetric(ms(sp50), "sql-p50-ms")
				b.ReportMetric(ms(sp99), "sql-p99-ms")
				b.ReportMetric(float64(hp99)/float64(sp99), "p99-ratio")
				b.Logf("%s: handler p50 %s p99 %s; bare SQL p50 %s p99 %s (goal p99 < %s%s)", rt.name, hp50, hp99, sp50, sp99, rt.goalP99,
					map[bool]string{true: fmt.Sprintf(", ≤ %.1f × SQL", rt.maxRatio), false: ""}[rt.maxRatio > 0])
			}
		})
	}
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*99/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
