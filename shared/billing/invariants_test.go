package billing_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file hold billing to the invariants of
// docs/overage.md over PostgreSQL and the stripetest fake: late usage as
// late as the deployment's backfill window allows, restores of the
// database, and subscriptions without terms.

// validatedFake is the stripetest fake, which keeps the items and the
// idempotency keys, with stripe-mock, the harness's, validating every
// request first.
func validatedFake(t *testing.T) *stripetest.Server {
	fake := stripetest.New(t)
	fake.Upstream = pgtest.Require(t, "NEXUS_TEST_STRIPE_URL", "stripe-mock")
	return fake
}

// adminExec runs a statement on the test server's maintenance database.
func adminExec(tb testing.TB, sql string) {
	tb.Helper()
	admin := pgtest.Require(tb, "NEXUS_TEST_DATABASE_URL", "PostgreSQL")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

func databaseName(tb testing.TB, u string) string {
	p, err := url.Parse(u)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimPrefix(p.Path, "/")
}

// restorable is a test env whose database can be copied (a dump) and put
// back (a restore), as an operator restores a database from a backup.
type restorable struct {
	*testEnv
	url   string
	dumps int
}

func newRestorable(t *testing.T, biller billing.Biller) *restorable {
	r := &restorable{testEnv: &testEnv{t: t}, url: pgtest.NewURL(t)}
	r.open()
	r.b = mustNew(t, billing.Config{Ledger: r.ledger, Biller: biller, Logger: testkit.Logger(), Clock: func() time.Time { return runAt }})
	return r
}

func (r *restorable) open() {
	db, err := postgres.Open(context.Background(), postgres.Config{URL: r.url, MaxConns: 8, NoJIT: true})
	if err != nil {
		r.t.Fatalf("open: %v", err)
	}
	r.db, r.ledger = db, postgres.NewLedgerStore(db)
	if r.b != nil {
		r.configure(func(c *billing.Config) { c.Ledger = r.ledger })
	}
}

// dump copies the database and returns the copy's name.
func (r *restorable) dump() string {
	name := fmt.Sprintf("%s_d%d", databaseName(r.t, r.url), r.dumps)
	r.dumps++
	r.db.Close()
	adminExec(r.t, fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, name, databaseName(r.t, r.url)))
	r.t.Cleanup(func() { adminExec(r.t, fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)) })
	r.open()
	return name
}

// restore replaces the database with the copy dump.
func (r *restorable) restore(dump string) {
	r.db.Close()
	adminExec(r.t, fmt.Sprintf(`DROP DATABASE %q WITH (FORCE)`, databaseName(r.t, r.url)))
	adminExec(r.t, fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, databaseName(r.t, r.url), dump))
	r.open()
}

// itemsPerRow counts Stripe's items by (user, period, seq).
func itemsPerRow(fake *stripetest.Server) map[string]int {
	out := map[string]int{}
	for _, it := range fake.Items() {
		out[it.Metadata["user_id"]+" "+it.Metadata["period_start"]+" "+it.Metadata["seq"]]++
	}
	return out
}

// TestRestoreReplansWithoutChargingTwice: the fifth case. The
// database is restored to a dump taken before February was billed; two
// days later (Stripe has forgotten the key) the run plans February again.
// The row it plans is the same row to Stripe (its id and key derive from
// user, period and seq), the run finds the item the first plan created
// and bills the row with it: one item, not two.
func TestRestoreReplansWithoutChargingTwice(t *testing.T) {
	fake := validatedFake(t)
	r := newRestorable(t, fakeBiller(fake.URL))
	e := r.testEnv
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	before := r.dump()
	if _, err := e.run(runAt); err != nil {
		t.Fatal(err)
	}
	r.restore(before)
	fake.ForgetKeys()
	if _, err := e.run(runAt.Add(48 * time.Hour)); err != nil {
		t.Fatalf("run after the restore: %v", err)
	}
	row := e.rows()[userID(1)+"/0"]
	items := fake.Items()
	if n := itemsPerRow(fake)[userID(1)+" 2026-02-01 0"]; n != 1 || len(items) != 1 || row == nil || row.Status != billing.LedgerBilled ||
		row.StripeObjectID != items[0].ID || row.Amount != 2500 {
		t.Errorf("%d items for the row, row %+v; want one item, the row billed with it", n, row)
	}
}

// TestRestoreOfARowNeverClaimed: the dump holds February's row
// planned and never claimed (no attempt, sent to no customer); after it
// the row was billed. Restored, two days later, the row is looked up
// before anything is created: one item.
func TestRestoreOfARowNeverClaimed(t *testing.T) {
	fake := validatedFake(t)
	r := newRestorable(t, fakeBiller(fake.URL))
	e := r.testEnv
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	// A run plans the row, and stops before it bills.
	ctx := context.Background()
	subs, err := e.ledger.BillableSubscriptions(ctx)
	if err != nil || len(subs) != 1 {
		t.Fatalf("subscriptions = %v, %v", subs, err)
	}
	states, err := e.ledger.PeriodStates(ctx, []billing.UserPeriod{{UserID: userID(1), Period: february}})
	if err != nil {
		t.Fatal(err)
	}
	planned, err := e.b.DraftPeriod(subs[0], states[0], runAt)
	if err != nil || planned == nil {
		t.Fatalf("DraftPeriod = %+v, %v", planned, err)
	}
	if _, err := e.ledger.InsertLedgerEntries(ctx, []*billing.LedgerEntry{planned}, nil, runAt); err != nil {
		t.Fatal(err)
	}
	if row := e.rows()[userID(1)+"/0"]; row == nil || row.Status != billing.LedgerPending || row.Attempts != 0 {
		t.Fatalf("row = %+v; want pending, never claimed", row)
	}
	dump := r.dump()
	if _, err := e.run(runAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r.restore(dump)
	fake.ForgetKeys()
	if _, err := e.run(runAt.Add(49 * time.Hour)); err != nil {
		t.Fatalf("run after the restore: %v", err)
	}
	if n := itemsPerRow(fake)[userID(1)+" 2026-02-01 0"]; n != 1 || e.rows()[userID(1)+"/0"].Status != billing.LedgerBilled {
		t.Errorf("%d items for the row, row %+v; want one, billed", n, e.rows()[userID(1)+"/0"])
	}
}

// TestRestoreLostUsage: restored to a dump taken before some of
// February's calls were recorded, and billed by a run before the lost
// calls come back (the producers send them again): the item February's
// first plan created is adopted, the shortfall noted as a credit for
// review, and once the calls are back the period is billed what it owes,
// in Stripe and in the ledger alike, each row of it at most once.
func TestRestoreLostUsage(t *testing.T) {
	fake := validatedFake(t)
	r := newRestorable(t, fakeBiller(fake.URL))
	e := r.testEnv
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 120_000})
	before := r.dump()
	e.addCalls(userID(1), time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC), 30_000)
	if _, err := e.run(runAt); err != nil { // 150,000 calls: 25.00
		t.Fatal(err)
	}
	r.restore(before)
	fake.ForgetKeys()
	if _, err := e.run(runAt.Add(48 * time.Hour)); err != nil { // 120,000 calls: 10.00
		t.Fatal(err)
	}
	e.addCalls(userID(1), time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC), 30_000) // sent again
	e.addCalls(userID(1), time.Date(2026, 2, 21, 0, 0, 0, 0, time.UTC), 1_000)  // and a late call more
	for _, at := range []time.Time{runAt.Add(72 * time.Hour), runAt.Add(96 * time.Hour)} {
		if _, err := e.run(at); err != nil {
			t.Fatal(err)
		}
	}
	var stripe int64
	for k, n := range itemsPerRow(fake) {
		if n != 1 {
			t.Errorf("%d items for %s", n, k)
		}
	}
	for _, it := range fake.Items() {
		stripe += it.Amount
	}
	var billed int64
	for _, row := range e.rows() {
		if row.Status == billing.LedgerBilled {
			billed += row.Amount
		}
	}
	if stripe != 2550 || billed != 2550 {
		t.Errorf("Stripe holds %d, the ledger billed %d; want 2,550 (151,000 calls: 51 packages) in both; rows %v", stripe, billed, e.rows())
	}
}

// TestRunLateUsageWithinTheBackfillWindow: the fourth case. The
// deployment accepts events up to 45 days late (BACKFILL_WINDOW), and the
// run's default lookback, the overage function's (functions/overage's
// TestSetupWithDatabase), covers the longest window: a call for the last
// day of February recorded 43 days after the period ended is billed.
func TestRunLateUsageWithinTheBackfillWindow(t *testing.T) {
	fake := validatedFake(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	if _, err := e.run(runAt); err != nil {
		t.Fatal(err)
	}
	e.addCalls(userID(1), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), 2_000)
	late := february.End.Add(43*24*time.Hour + 30*time.Minute)
	if _, err := e.run(late); err != nil {
		t.Fatal(err)
	}
	if items := fake.Items(); len(items) != 2 || items[1].Amount != 100 {
		t.Errorf("items %+v; want February's and the late calls' adjustment of 2 packages", items)
	}
}

// TestRunLateUsageAfterTheWindowIsLowered: calls recorded under a 45-day
// backfill window for a period that ended 43 days before stay billable
// after the window is lowered to 35 days: the run's default lookback (what
// the overage function runs with, whatever BACKFILL_WINDOW says now) is
// the longest window's. A lookback of the window in force (40 days) left
// them unbilled, with nothing to say so.
func TestRunLateUsageAfterTheWindowIsLowered(t *testing.T) {
	fake := validatedFake(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	if _, err := e.run(runAt); err != nil {
		t.Fatal(err)
	}
	// Recorded at 43 days, the 45-day window in force; lowered to 35
	// days before the next run.
	e.addCalls(userID(1), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), 2_000)
	late := february.End.Add(43*24*time.Hour + 30*time.Minute)
	if _, err := e.run(late); err != nil {
		t.Fatal(err)
	}
	if items := fake.Items(); len(items) != 2 || items[1].Amount != 100 {
		t.Errorf("items %+v; want February's and the late calls' adjustment of 2 packages", items)
	}
}

// TestRunSubscriptionWithoutTerms: the seventh case. A
// subscription inserted by SQL (migrated from another system) with no
// terms history gets its first terms from its columns when the
// transaction commits (shared/postgres's TestSubscriptionTermsCover),
// and is billed under them.
func TestRunSubscriptionWithoutTerms(t *testing.T) {
	ctx := context.Background()
	fake := validatedFake(t)
	e := newEnv(t, fakeBiller(fake.URL))
	if _, err := e.db.Pool.Exec(ctx, `INSERT INTO eco_subscriptions (user_id, plan_id, included_calls, stripe_customer_id, period_anchor)
		VALUES ($1, 'pro', 50000, 'cus_1', $2)`, userID(1), anchor); err != nil {
		t.Fatal(err)
	}
	e.addCalls(userID(1), time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), 60_000)
	if _, err := e.run(runAt); err != nil {
		t.Fatal(err)
	}
	if items := fake.Items(); len(items) != 1 || items[0].Amount != 500 {
		t.Errorf("items %+v; want 10 packages above the 50,000 included", items)
	}
}

// TestRunReportsUnpricedSubscriptions: subscriptions the run cannot
// price (no terms: written with the database's triggers off, as a restore
// tool may; a period in two currencies: terms written by hand) are
// reported in the run's report and summary (eco_job_runs) and logged as
// errors, loudly (the overage function makes the report's count the metric
// OverageUnpricedSubscriptions: its TestHandleReportsMetrics); the others
// are billed.
func TestRunReportsUnpricedSubscriptions(t *testing.T) {
	ctx := context.Background()
	fake := validatedFake(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(2), plan: usage.PlanPro, customer: "cus_2", used: 150_000})
	tx, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO eco_subscriptions (user_id, plan_id, stripe_customer_id, period_anchor) VALUES ($1, 'pro', 'cus_1', $2)`,
		userID(1), anchor); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	e.addCalls(userID(1), time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), 150_000)
	// User 3's February bills in USD, then EUR: terms written around the
	// plan changes, which refuse them.
	e.seed(sub{user: userID(3), plan: usage.PlanPro, customer: "cus_3", used: 150_000})
	if _, err := e.db.Pool.Exec(ctx, `INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at)
		VALUES ($1, '2026-02-15', 'pro', '{"currency": "eur"}', 'upgrade', '2026-02-15')`, userID(3)); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	e.configure(func(c *billing.Config) { c.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	rep, err := e.run(runAt)
	if err != nil {
		t.Fatal(err)
	}
	var unpriced int
	var summary string
	if err := e.db.Pool.QueryRow(ctx, `SELECT (detail->>'unpriced')::int, detail->>'unpriced_subscriptions'
		FROM eco_job_runs WHERE job = 'overage' ORDER BY run_id DESC LIMIT 1`).Scan(&unpriced, &summary); err != nil ||
		unpriced != 2 || !strings.Contains(summary, `{"reason": "the subscription has no terms history: its usage cannot be priced", "user_id": "`+userID(1)+`"}`) ||
		!strings.Contains(summary, `{"reason": "the period from 2026-02-01: the period bills in usd and eur; a period is billed in one currency", "user_id": "`+userID(3)+`"}`) {
		t.Errorf("run summary: %d unpriced, %s, %v; want user 1 (no terms history) and user 3 (two currencies)", unpriced, summary, err)
	}
	if rep.Unpriced != 2 || strings.Count(logs.String(), `"level":"ERROR","msg":"overage subscription not priced"`) != 2 {
		t.Errorf("report: %d unpriced; want 2, each logged as an error:\n%s", rep.Unpriced, logs.String())
	}
	if len(fake.Items()) != 1 {
		t.Errorf("%d items; want user 2's", len(fake.Items()))
	}
}
