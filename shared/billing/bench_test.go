package billing_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/stripebill"
)

// timedLedger adds up the time spent in the ledger store (across
// workers), in all and per method.
type timedLedger struct {
	billing.LedgerStore
	ns   atomic.Int64
	mu   sync.Mutex
	each map[string]time.Duration
}

// took adds the time since t to method's.
func (l *timedLedger) took(method string, t time.Time) {
	d := time.Since(t)
	l.ns.Add(int64(d))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.each == nil {
		l.each = map[string]time.Duration{}
	}
	l.each[method] += d
}

func (l *timedLedger) BillableSubscriptions(ctx context.Context) ([]*billing.BillableSubscription, error) {
	defer l.took("BillableSubscriptions", time.Now())
	return l.LedgerStore.BillableSubscriptions(ctx)
}
func (l *timedLedger) PeriodStates(ctx context.Context, p []billing.UserPeriod) ([]billing.PeriodState, error) {
	defer l.took("PeriodStates", time.Now())
	return l.LedgerStore.PeriodStates(ctx, p)
}
func (l *timedLedger) InsertLedgerEntries(ctx context.Context, e []*billing.LedgerEntry, p []billing.Progress, now time.Time) (int, error) {
	defer l.took("InsertLedgerEntries", time.Now())
	return l.LedgerStore.InsertLedgerEntries(ctx, e, p, now)
}
func (l *timedLedger) PromoteDueTerms(ctx context.Context, now time.Time) (int, error) {
	defer l.took("PromoteDueTerms", time.Now())
	return l.LedgerStore.PromoteDueTerms(ctx, now)
}
func (l *timedLedger) OpenRun(ctx context.Context, rep *billing.RunReport, now, started time.Time) (int64, error) {
	defer l.took("OpenRun", time.Now())
	return l.LedgerStore.OpenRun(ctx, rep, now, started)
}
func (l *timedLedger) CloseRun(ctx context.Context, id int64, rep *billing.RunReport, at time.Time, err error) error {
	defer l.took("CloseRun", time.Now())
	return l.LedgerStore.CloseRun(ctx, id, rep, at, err)
}
func (l *timedLedger) ClaimPending(ctx context.Context, r billing.ClaimRequest) ([]*billing.LedgerEntry, error) {
	defer l.took("ClaimPending", time.Now())
	return l.LedgerStore.ClaimPending(ctx, r)
}
func (l *timedLedger) MarkBilled(ctx context.Context, items []billing.Billed, now time.Time) error {
	defer l.took("MarkBilled", time.Now())
	return l.LedgerStore.MarkBilled(ctx, items, now)
}
func (l *timedLedger) MarkRetry(ctx context.Context, id, reason string, now time.Time) error {
	defer l.took("MarkRetry", time.Now())
	return l.LedgerStore.MarkRetry(ctx, id, reason, now)
}
func (l *timedLedger) MarkFailed(ctx context.Context, id, reason string, now time.Time) error {
	defer l.took("MarkFailed", time.Now())
	return l.LedgerStore.MarkFailed(ctx, id, reason, now)
}

const benchSubscriptions = 10_000

// seedBench creates n pro subscriptions anchored on 1 February, each over
// its quota in February, under the four price models in turn (per unit,
// package, graduated and volume tiers, by override), and every tenth
// upgraded to enterprise on 15 February (two segments: enterprise's price
// with pro's 100,000 included calls, by override, so that the period's
// calls above them are billed at enterprise's price).
func seedBench(b *testing.B, e *testEnv, n int) {
	ctx := context.Background()
	const tiers = `[{"up_to": 10000, "unit_price": 50}, {"up_to": null, "unit_price": 20, "flat_price": 100}]`
	// The subscriptions and their terms in one transaction: the database
	// gives a subscription committed without terms terms of its own.
	tx, err := e.db.Pool.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `INSERT INTO eco_subscriptions (user_id, plan_id, price_model, price_tiers,
			stripe_customer_id, stripe_subscription_id, period_anchor)
		SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
			CASE WHEN i % 10 = 0 THEN 'enterprise' ELSE 'pro' END,
			(ARRAY['per_unit', 'package', 'graduated', 'volume'])[i % 4 + 1],
			CASE WHEN i % 4 >= 2 THEN $3::jsonb END,
			'cus_b' || i, 'sub_b' || i, $2
		FROM generate_series(1, $1) i`, n, anchor, tiers)
	if err != nil {
		b.Fatal(err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at)
		SELECT s.user_id, t.effective_from, t.plan_id,
			jsonb_strip_nulls(jsonb_build_object('price_model', s.price_model, 'tiers', s.price_tiers,
				'included_calls', CASE WHEN t.plan_id = 'enterprise' THEN 100000 END)), t.change, t.effective_from
		FROM eco_subscriptions s
		CROSS JOIN LATERAL (VALUES (s.period_anchor, 'pro', 'start'),
			(CASE WHEN s.plan_id = 'enterprise' THEN s.period_anchor + interval '14 days' END, 'enterprise', 'upgrade')) t(effective_from, plan_id, change)
		WHERE t.effective_from IS NOT NULL`)
	if err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	_, err = e.db.Pool.Exec(ctx, `INSERT INTO eco_usage_counters (user_id, day, calls)
		SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, d::date, 4000 + i % 100
		FROM generate_series(1, $1) i, generate_series('2026-02-01'::date, '2026-02-28'::date, '1 day') d`, n)
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOverageRun closes 10,000 subscriptions (one February period each,
// all over quota, mixed price models, a tenth upgraded mid-period): a dry
// run (database only; it needs no stripe-mock), then against stripe-mock
// without a client-side limit and at a limit of 250 requests/s. It reports
// the run time, Stripe calls per second and the database time per
// subscription (time inside the ledger store, summed over workers).
func BenchmarkOverageRun(b *testing.B) {
	cases := []struct {
		name   string
		dryRun bool
		rps    float64
	}{
		{name: "dry-run", dryRun: true},
		{name: "stripe-mock-unlimited"},
		{name: "stripe-mock-limit-250rps", rps: 250},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var runTime, dbTime time.Duration
			var calls int
			each := map[string]time.Duration{}
			for range b.N {
				b.StopTimer()
				var biller billing.Biller
				if !c.dryRun {
					mock := pgtest.Require(b, "NEXUS_TEST_STRIPE_URL", "stripe-mock")
					biller = stripebill.New(stripebill.Config{Key: "sk_test_123", URL: mock, MaxNetworkRetries: 2, RequestsPerSecond: c.rps})
				}
				e := newEnv(b, biller)
				seedBench(b, e, benchSubscriptions)
				tl := &timedLedger{LedgerStore: e.ledger}
				e.configure(func(c *billing.Config) { c.Ledger = tl })
				b.StartTimer()
				start := time.Now()
				rep, err := e.run(runAt)
				runTime += time.Since(start)
				b.StopTimer()
				if err != nil {
					b.Fatalf("run: %v", err)
				}
				want := 0
				if !c.dryRun {
					want = benchSubscriptions
				}
				if rep.Periods != benchSubscriptions || rep.Billed != want || rep.PlannedRows != benchSubscriptions || rep.PlanErrors != 0 {
					b.Fatalf("report %+v; want %d periods and rows, %d billed", rep, benchSubscriptions, want)
				}
				calls += rep.StripeCalls
				dbTime += time.Duration(tl.ns.Load())
				for k, v := range tl.each {
					each[k] += v
				}
			}
			n := float64(b.N)
			b.ReportMetric(runTime.Seconds()/n, "run_s")
			b.ReportMetric(float64(benchSubscriptions)*n/runTime.Seconds(), "subs/s")
			if calls > 0 {
				b.ReportMetric(float64(calls)/runTime.Seconds(), "stripe_calls/s")
			}
			b.ReportMetric(float64(dbTime.Microseconds())/(n*benchSubscriptions), "db_µs/sub")
			for _, m := range []string{"BillableSubscriptions", "PeriodStates", "InsertLedgerEntries", "ClaimPending", "MarkBilled"} {
				if each[m] > 0 {
					b.ReportMetric(float64(each[m].Microseconds())/(n*benchSubscriptions), m+"_µs/sub")
				}
			}
		})
	}
}
