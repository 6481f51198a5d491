package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file change plans mid-period through the admin's
// statement (AnalyticsStore.PutPlan, behind PUT /v1/admin/users/{id}/plan)
// and bill over PostgreSQL against the stripetest fake: usage is billed
// under the terms in force when it happened.

// planEnv is a test env whose database clock the plan changes read.
type planEnv struct {
	*testEnv
	clock time.Time
}

func newPlanEnv(t *testing.T, fake *stripetest.Server) *planEnv {
	return newPlanEnvAt(t, fake.URL)
}

// newPlanEnvAt is newPlanEnv billing through the Stripe API at url.
func newPlanEnvAt(t *testing.T, url string) *planEnv {
	e := &planEnv{testEnv: newEnv(t, fakeBiller(url))}
	e.db.Now = func() time.Time { return e.clock }
	return e
}

// put changes user's plan (with overrides, when given) at the instant at.
func (e *planEnv) put(user, plan string, at time.Time, o ...usage.Overrides) *report.PlanChanged {
	e.t.Helper()
	e.clock = at
	var ov usage.Overrides
	if len(o) > 0 {
		ov = o[0]
	}
	c, err := postgres.NewAnalyticsStore(e.db).PutPlan(context.Background(), report.PlanChange{UserID: user, PlanID: plan, Overrides: ov, Who: "ops"})
	if err != nil {
		e.t.Fatalf("PutPlan(%s): %v", plan, err)
	}
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE eco_subscriptions SET stripe_customer_id = 'cus_' || $2 WHERE user_id = $1`,
		user, user[len(user)-2:]); err != nil {
		e.t.Fatal(err)
	}
	return c
}

type item struct {
	Amount      int64
	Seq         string
	Description string
}

func itemsOf(fake *stripetest.Server) []item {
	var out []item
	for _, it := range fake.Items() {
		out = append(out, item{it.Amount, it.Metadata["seq"], it.Description})
	}
	return out
}

// TestRunDowngradeMidPeriod: pro → free asked for on 12 February takes
// effect on 1 March. February's calls, before and after the request, are
// billed on pro; March's on free, which bills nothing.
func TestRunDowngradeMidPeriod(t *testing.T) {
	fake := stripetest.New(t)
	e := newPlanEnv(t, fake)
	u := userID(1)
	e.put(u, usage.PlanPro, time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC))
	e.addCalls(u, time.Date(2026, 2, 5, 0, 0, 0, 0, time.UTC), 90_000)
	c := e.put(u, usage.PlanFree, time.Date(2026, 2, 12, 10, 0, 0, 0, time.UTC))
	if c.Change != usage.ChangeDowngrade || !c.EffectiveAt.Equal(february.End) {
		t.Fatalf("change = %s at %v; want a downgrade at the period's end", c.Change, c.EffectiveAt)
	}
	e.addCalls(u, time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC), 60_000)
	e.addCalls(u, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), 5_000)
	for _, at := range []time.Time{time.Date(2026, 2, 13, 0, 30, 0, 0, time.UTC), runAt, time.Date(2026, 4, 2, 0, 30, 0, 0, time.UTC)} {
		if _, err := e.run(at); err != nil {
			t.Fatalf("run at %v: %v", at, err)
		}
	}
	want := []item{{2500, "0", "API overage, 2026-02-01 – 2026-02-28: Pro, 150,000 calls, 100,000 included: 50 × 1,000 calls at 0.50 USD = 25.00 USD"}}
	if d := cmp.Diff(want, itemsOf(fake)); d != "" {
		t.Errorf("invoice items (-want +got):\n%s", d)
	}
	// Free took over on 1 March (promoted by the runs).
	sub, _ := postgres.NewSubscriptionStore(e.db).Subscription(context.Background(), u)
	if sub.PlanID != usage.PlanFree || sub.Next != nil {
		t.Errorf("subscription after the period = %s, next %+v; want free", sub.PlanID, sub.Next)
	}
}

// TestRunUpgradeMidPeriod: pro → enterprise on 10 February at 14:00
// takes effect at once and closes pro's segment (1–9 February, the change
// day going to enterprise), billed on pro's terms by the first run after
// its grace, as pro would bill those calls for the whole period: 150,000
// calls against pro's 100,000 included, 50 packages at 0.50. At the
// period's end enterprise's segment is billed: 10,151,000 calls in the
// period against enterprise's 10,000,000 included, of which 50,000 were
// billed on pro: 101,000 more, the period's billable calls 50,001 to
// 151,000 at 0.20 a package. Late calls on a pro day are billed on pro's
// terms.
func TestRunUpgradeMidPeriod(t *testing.T) {
	fake := stripetest.New(t)
	e := newPlanEnv(t, fake)
	u := userID(1)
	e.put(u, usage.PlanPro, time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC))
	e.addCalls(u, time.Date(2026, 2, 5, 0, 0, 0, 0, time.UTC), 150_000)
	upgradeAt := time.Date(2026, 2, 10, 14, 0, 0, 0, time.UTC)
	if c := e.put(u, usage.PlanEnterprise, upgradeAt); c.Change != usage.ChangeUpgrade || !c.EffectiveAt.Equal(upgradeAt) {
		t.Fatalf("change = %s at %v; want an upgrade at once", c.Change, c.EffectiveAt)
	}
	e.addCalls(u, time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), 1_000)
	e.addCalls(u, time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC), 10_000_000)
	run := func(at time.Time) {
		t.Helper()
		if _, err := e.run(at); err != nil {
			t.Fatalf("run at %v: %v", at, err)
		}
	}
	run(time.Date(2026, 2, 10, 20, 0, 0, 0, time.UTC)) // within the segment's grace: nothing
	if n := len(fake.Items()); n != 0 {
		t.Fatalf("%d items within the grace period", n)
	}
	run(time.Date(2026, 2, 11, 0, 30, 0, 0, time.UTC))
	run(runAt)
	e.addCalls(u, time.Date(2026, 2, 6, 0, 0, 0, 0, time.UTC), 1_000)
	run(runAt.Add(24 * time.Hour))
	run(runAt.Add(48 * time.Hour))
	head := "2026-02-01 – 2026-02-28: "
	want := []item{
		{2500, "0", "API overage, " + head + "Pro 2026-02-01 – 2026-02-09, 150,000 calls, 100,000 included: 50 × 1,000 calls at 0.50 USD = 25.00 USD"},
		{2020, "1", "API overage adjustment 1, 2026-02-01 – 2026-02-28: Enterprise 2026-02-10 – 2026-02-28, 10,001,000 calls (10,151,000 in the period so far), " +
			"10,000,000 included: billable calls 50,001 – 151,000 of the period: 151 × 1,000 calls at 0.20 USD = 30.20 USD, less 10.00 USD for the first 50,000: 20.20 USD"},
		{50, "2", "API overage adjustment 2, " + head + "Pro 2026-02-01 – 2026-02-09, 151,000 calls, 100,000 included: 51 × 1,000 calls at 0.50 USD = 25.50 USD; less 25.00 USD charged before"},
	}
	if d := cmp.Diff(want, itemsOf(fake)); d != "" {
		t.Errorf("invoice items (-want +got):\n%s", d)
	}
}

// TestRunUpgradeInAPeriodStartingInTheDay: a subscription migrated by SQL
// anchored at 14:00 (1 February) has periods that count whole days, from
// the day of their start to the day before their end's, as the limiter
// and the live counters do: the 60,000 calls of 1 February are the
// period's. An upgrade on 10 February (a new price, the same included
// calls) bills them on the old terms: 10,000 above the 50,000 included, 10
// packages at 0.50. They used to be billed by nobody, the first segment
// starting at 14:00 and the day at midnight; without the upgrade, the
// same period billed them.
func TestRunUpgradeInAPeriodStartingInTheDay(t *testing.T) {
	fake := stripetest.New(t)
	e := newPlanEnv(t, fake)
	u := userID(1)
	start := time.Date(2026, 2, 1, 14, 0, 0, 0, time.UTC)
	if _, err := e.db.Pool.Exec(context.Background(), `INSERT INTO eco_subscriptions (user_id, plan_id, included_calls, stripe_customer_id, period_anchor)
		VALUES ($1, 'pro', 50000, 'cus_01', $2)`, u, start); err != nil {
		t.Fatal(err)
	}
	e.addCalls(u, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), 60_000)
	price := int64(100)
	included := int64(50_000)
	e.put(u, usage.PlanPro, time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC), usage.Overrides{IncludedCalls: &included, OverageUnitPrice: &price})
	e.addCalls(u, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 5_000) // the next period's first day
	if _, err := e.run(time.Date(2026, 3, 3, 0, 30, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	want := []item{{500, "0", "API overage, 2026-02-01 – 2026-03-01: Pro 2026-02-01 – 2026-02-09, 60,000 calls, 50,000 included: 10 × 1,000 calls at 0.50 USD = 5.00 USD; " +
		"Pro 2026-02-10 – 2026-03-01, 0 calls (60,000 in the period so far), 50,000 included: nothing above the included calls"}}
	if d := cmp.Diff(want, itemsOf(fake)); d != "" {
		t.Errorf("invoice items (-want +got):\n%s", d)
	}
}
