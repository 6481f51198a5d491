package billing_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file bill over PostgreSQL against stripe-mock (or no
// Stripe at all, a dry run): the invoice items sent and the ledger rows kept.

// TestRunStripeMock bills a mix of plans and usages against stripe-mock
// and checks every invoice item sent.
func TestRunStripeMock(t *testing.T) {
	mock := pgtest.Require(t, "NEXUS_TEST_STRIPE_URL", "stripe-mock")
	proxy := stripetest.NewRecorder(t, mock)
	e := newEnv(t, fakeBiller(proxy.URL))
	e.seed(
		sub{user: userID(1), plan: usage.PlanFree, customer: "cus_free", used: 5000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_below", used: 50_000},
		sub{user: userID(3), plan: usage.PlanPro, customer: "cus_at", used: 100_000},
		sub{user: userID(4), plan: usage.PlanPro, customer: "cus_above1", used: 100_001},
		sub{user: userID(5), plan: usage.PlanPro, customer: "cus_above2", used: 250_500},
		sub{user: userID(6), plan: usage.PlanEnterprise, customer: "cus_ent", used: 10_002_000},
		sub{user: userID(7), plan: usage.PlanPro, customer: "cus_override", used: 201_000, overrides: usage.Overrides{
			IncludedCalls: ptr(int64(200_000)), OverageUnitSize: ptr(int64(500)), OverageUnitPrice: ptr(int64(100)), Currency: ptr("eur")}},
		sub{user: userID(8), plan: usage.PlanEnterprise, customer: "cus_ent_below", used: 9_000_000},
	)
	rep, err := e.run(runAt)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Subscriptions != 7 || rep.Billed != 4 {
		t.Errorf("report = %+v; want 7 subscriptions (free excluded), 4 billed", rep)
	}
	type want struct {
		amount   int64
		currency string
		desc     string
	}
	head := "API overage, 2026-02-01 – 2026-02-28: "
	wants := map[string]want{
		"cus_above1":   {50, "usd", head + "Pro, 100,001 calls, 100,000 included: 1 × 1,000 calls at 0.50 USD = 0.50 USD"},
		"cus_above2":   {151 * 50, "usd", head + "Pro, 250,500 calls, 100,000 included: 151 × 1,000 calls at 0.50 USD = 75.50 USD"},
		"cus_ent":      {40, "usd", head + "Enterprise, 10,002,000 calls, 10,000,000 included: 2 × 1,000 calls at 0.20 USD = 0.40 USD"},
		"cus_override": {200, "eur", head + "Pro, 201,000 calls, 200,000 included: 2 × 500 calls at 1.00 EUR = 2.00 EUR"},
	}
	rows := e.rows()
	got := map[string]stripetest.Request{}
	for _, r := range posts(proxy.Requests()) {
		got[r.Form.Get("customer")] = r
	}
	if n := len(posts(proxy.Requests())); n != len(wants) {
		t.Errorf("sent %d invoice items; want %d", n, len(wants))
	}
	// The run reconciled the ledger with the items created since the
	// oldest period it may plan rows for started (the lookback and 31 days
	// before the run): no lookup of its own rows, new in Stripe.
	since := strconv.FormatInt(runAt.Add(-billing.DefaultLookback-31*24*time.Hour).Unix(), 10)
	for _, r := range proxy.Requests() {
		if r.Method == http.MethodGet && (r.Path != "/v1/invoiceitems" || r.Status != http.StatusOK || r.Form.Get("created[gte]") != since ||
			r.Form.Get("customer") != "") {
			t.Errorf("list %+v; want every item created since %s", r, since)
		}
	}
	users := map[string]string{"cus_above1": userID(4), "cus_above2": userID(5), "cus_ent": userID(6), "cus_override": userID(7)}
	for cus, w := range wants {
		r, ok := got[cus]
		if !ok {
			t.Errorf("no invoice item for %s", cus)
			continue
		}
		f := r.Form
		f.Set("idempotency_key", r.Key)
		row := rows[users[cus]+"/0"]
		checks := map[string]string{
			"amount": strconv.FormatInt(w.amount, 10), "currency": w.currency, "description": w.desc,
			"subscription":        "sub_" + strings.TrimPrefix(cus, "cus_"),
			"period[start]":       strconv.FormatInt(february.Start.Unix(), 10),
			"period[end]":         strconv.FormatInt(february.End.Unix()-1, 10),
			"metadata[ledger_id]": row.ID, "metadata[user_id]": users[cus],
			"metadata[period_start]": "2026-02-01", "metadata[seq]": "0",
			"idempotency_key": "nexus-overage-" + users[cus] + "-20260201-0",
		}
		for k, v := range checks {
			if f.Get(k) != v {
				t.Errorf("%s: %s = %q; want %q", cus, k, f.Get(k), v)
			}
		}
		if row.Status != billing.LedgerBilled || row.StripeObjectID == "" || row.Amount != w.amount || row.Attempts != 1 {
			t.Errorf("%s: ledger row = %+v; want billed, amount %d, 1 attempt", cus, row, w.amount)
		}
	}
	for _, u := range []int{2, 3, 8} {
		if r := rows[userID(u)+"/0"]; r == nil || r.Status != billing.LedgerSkipped || r.Amount != 0 || r.Note == "" {
			t.Errorf("user %d: ledger row = %+v; want skipped with 0 amount and a note", u, r)
		}
	}
	if r := rows[userID(1)+"/0"]; r != nil {
		t.Errorf("free user has a ledger row: %+v", r)
	}
	// A second run changes nothing.
	if _, err := e.run(runAt.Add(time.Hour)); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if n := len(posts(proxy.Requests())); n != len(wants) {
		t.Errorf("after a rerun %d invoice items were sent; want %d", n, len(wants))
	}
}

// posts returns the POSTs of requests.
func posts(requests []stripetest.Request) []stripetest.Request {
	var out []stripetest.Request
	for _, r := range requests {
		if r.Method == http.MethodPost {
			out = append(out, r)
		}
	}
	return out
}

// TestDryRunThenRealRun: dry runs report what a real run would bill
// and write no ledger row, so the first real run bills every period once,
// those older than the lookback included (a stack that ran without a
// Stripe key for months), and a second real run bills nothing more.
func TestDryRunThenRealRun(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_2", used: 10})
	// user 3 has been on pro since October; November was over quota.
	ctx := context.Background()
	oct := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)
	if err := postgres.NewSubscriptionStore(e.db).PutSubscription(ctx, &usage.Subscription{UserID: userID(3), PlanID: usage.PlanPro,
		StripeCustomerID: "cus_3", PeriodAnchor: oct}); err != nil {
		t.Fatal(err)
	}
	e.addCalls(userID(3), time.Date(2025, 11, 5, 0, 0, 0, 0, time.UTC), 103_000)
	e.addCalls(userID(3), time.Date(2026, 2, 5, 0, 0, 0, 0, time.UTC), 100_500)

	for _, at := range []time.Time{runAt, runAt.Add(24 * time.Hour)} {
		rep, err := e.dryRun(at)
		if err != nil || !rep.DryRun || rep.StripeCalls != 0 {
			t.Fatalf("dry run = %+v, %v", rep, err)
		}
		// What a real run would write: user 1's February (2,500), user 2's
		// (nothing above quota), user 3's five periods (November 150,
		// February 50, three with nothing).
		if rep.PlannedRows != 7 || !cmp.Equal(rep.Due, []billing.Amount{{Currency: "usd", Amount: 2500 + 150 + 50}}) {
			t.Errorf("dry run planned %d rows, due %+v; want 7 rows, 27.00 USD", rep.PlannedRows, rep.Due)
		}
	}
	if rows := e.rows(); len(rows) != 0 {
		t.Fatalf("dry runs wrote %d ledger rows; want none", len(rows))
	}
	rep, err := e.run(runAt.Add(48 * time.Hour))
	if err != nil || rep.Billed != 3 {
		t.Fatalf("real run = %+v, %v; want 3 billed", rep, err)
	}
	if _, err := e.run(runAt.Add(72 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, it := range fake.Items() {
		got[it.Metadata["user_id"]+" "+it.Metadata["period_start"]] += it.Amount
	}
	want := map[string]int64{userID(1) + " 2026-02-01": 2500, userID(3) + " 2025-11-01": 150, userID(3) + " 2026-02-01": 50}
	if d := cmp.Diff(want, got); d != "" || len(fake.Items()) != 3 {
		t.Errorf("invoice items (-want +got):\n%s", d)
	}
	var n, skipped int
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'skipped') FROM eco_overage_ledger`).Scan(&n, &skipped); err != nil ||
		n != 7 || skipped != 4 {
		t.Errorf("%d ledger rows, %d skipped, %v; want 7, 4 skipped (user 2, user 3's October, December, January)", n, skipped, err)
	}
	var runs, dry int
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE outcome = 'succeeded'), count(*) FILTER (WHERE (detail->>'dry_run')::boolean)
		FROM eco_job_runs WHERE job = 'overage'`).Scan(&runs, &dry); err != nil || runs != 4 || dry != 2 {
		t.Errorf("job runs: %d succeeded, %d dry, %v; want 4 and 2", runs, dry, err)
	}
}
