package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// TestPlanChangeHistory drives one user through the kinds of change and
// reads back the subscription, its pending downgrade and the terms
// history each leaves.
func TestPlanChangeHistory(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	clock := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return clock }
	ctx := context.Background()
	s := postgres.NewAnalyticsStore(db)
	subs := postgres.NewSubscriptionStore(db)
	const u = "cccccccc-0000-4000-8000-000000000003"
	put := func(plan string, o usage.Overrides) *report.PlanChanged {
		t.Helper()
		c, err := s.PutPlan(ctx, report.PlanChange{UserID: u, PlanID: plan, Overrides: o, Who: "ops"})
		if err != nil {
			t.Fatalf("PutPlan(%s): %v", plan, err)
		}
		return c
	}
	history := func() []string {
		t.Helper()
		h, err := subs.History(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range h {
			out = append(out, e.From.Format(time.RFC3339)+" "+e.PlanID+" "+e.Change)
		}
		return out
	}
	feb1, mar1 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	if c := put("pro", usage.Overrides{}); c.Change != usage.ChangeStart || !c.EffectiveAt.Equal(feb1) || !c.PeriodAnchor.Equal(feb1) {
		t.Errorf("first plan = %+v", c)
	}
	clock = time.Date(2026, 2, 10, 14, 0, 0, 0, time.UTC)
	if c := put("enterprise", usage.Overrides{}); c.Change != usage.ChangeUpgrade || !c.EffectiveAt.Equal(clock) || c.PlanID != "enterprise" {
		t.Errorf("upgrade = %+v", c)
	}
	clock = time.Date(2026, 2, 12, 8, 0, 0, 0, time.UTC)
	c := put("pro", usage.Overrides{})
	if c.Change != usage.ChangeDowngrade || !c.EffectiveAt.Equal(mar1) || c.PlanID != "enterprise" || c.Next == nil || c.Next.PlanID != "pro" {
		t.Errorf("downgrade = %+v", c)
	}
	want := []string{"2026-02-01T00:00:00Z pro start", "2026-02-10T14:00:00Z enterprise upgrade", "2026-03-01T00:00:00Z pro downgrade"}
	if got := history(); !equal(got, want) {
		t.Errorf("history = %v; want %v", got, want)
	}
	// Asking for the terms in force again cancels the downgrade.
	if c := put("enterprise", usage.Overrides{}); c.Change != usage.ChangeSame || c.Next != nil {
		t.Errorf("same = %+v", c)
	}
	if got := history(); !equal(got, want[:2]) {
		t.Errorf("history after same = %v; want %v", got, want[:2])
	}
	// A downgrade to free with a tiered price override pending, read by the
	// limiter's subscription read; the terms in force switch at its time.
	graduated := usage.PriceGraduated
	o := usage.Overrides{PriceModel: &graduated, Tiers: []usage.Tier{{UpTo: ptr(int64(1000)), UnitPrice: 5}, {UnitPrice: 1}}}
	put("free", o)
	sub, err := postgres.NewRateStore(db).Subscription(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if sub.At(mar1.Add(-time.Second)).ID != "enterprise" || sub.At(mar1).ID != "free" || len(sub.Next.Effective.Tiers) != 2 ||
		sub.Next.Effective.PriceModel != usage.PriceGraduated {
		t.Errorf("subscription = %+v, next %+v", sub, sub.Next)
	}
	// After the period's end the next change first makes free current.
	var promoted int
	if err := db.Pool.QueryRow(ctx, `SELECT promote_due_terms($1)`, mar1.Add(time.Hour)).Scan(&promoted); err != nil || promoted != 1 {
		t.Fatalf("promote_due_terms = %d, %v", promoted, err)
	}
	sub, _ = subs.Subscription(ctx, u)
	if sub.PlanID != "free" || sub.Next != nil || sub.Effective.PriceModel != usage.PriceGraduated || sub.Effective.Tiers[1].UnitPrice != 1 {
		t.Errorf("after promotion = %+v", sub)
	}
}

// TestPriceValidatedOnWrite: prices are checked in Go and again by the
// schema's constraints.
func TestPriceValidatedOnWrite(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	ctx := context.Background()
	s := postgres.NewAnalyticsStore(db)
	const u = "dddddddd-0000-4000-8000-000000000004"
	volume := usage.PriceVolume
	for _, tt := range []struct {
		name  string
		o     usage.Overrides
		field string
	}{
		{"volume without tiers", usage.Overrides{PriceModel: &volume}, "tiers"},
		{"tiers on a package price", usage.Overrides{Tiers: []usage.Tier{{UnitPrice: 1}}}, "tiers"},
		{"bounds not rising", usage.Overrides{PriceModel: &volume, Tiers: []usage.Tier{{UpTo: ptr(int64(5))}, {UpTo: ptr(int64(5))}, {}}}, "tiers[1].up_to"},
	} {
		if _, err := s.PutPlan(ctx, report.PlanChange{UserID: u, PlanID: "pro", Overrides: tt.o}); usage.ErrorField(err) != tt.field {
			t.Errorf("%s: %v; want a field error naming %s", tt.name, err, tt.field)
		}
	}
	for _, tiers := range []string{`[]`, `[{"up_to": 10, "unit_price": 1}]`, `[{"up_to": null, "unit_price": 1}, {"up_to": null, "unit_price": 1}]`,
		`[{"up_to": 10, "unit_price": -1}, {"up_to": null, "unit_price": 1}]`, `[{"up_to": 10, "unit_price": 1}, {"up_to": 5, "unit_price": 1}, {"up_to": null, "unit_price": 1}]`,
		`{"up_to": null}`, `[{"up_to": null, "unit_price": "1"}]`} {
		_, err := db.Pool.Exec(ctx, `INSERT INTO eco_plans (plan_id, name, included_calls, hard_limit, rate_per_second, burst, price_model, price_tiers)
			VALUES ('bad', 'Bad', 0, false, 1, 1, 'volume', $1::jsonb)`, tiers)
		if usage.ErrorCode(postgres.FormatError(err)) != usage.CodeInvalid {
			t.Errorf("tiers %s: %v; want refused by a check", tiers, err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_plans (plan_id, name, included_calls, hard_limit, rate_per_second, burst, price_model, price_tiers)
		VALUES ('scale', 'Scale', 0, false, 1, 1, 'graduated', '[{"up_to": 10, "unit_price": 1}, {"up_to": null, "unit_price": 0, "flat_price": 5}]')`); err != nil {
		t.Errorf("valid tiers refused: %v", err)
	}
}

// TestSubscriptionTermsCover: a subscription inserted by SQL without terms
// gets them at commit, from its own columns at its anchor; a change that
// would leave a subscription without terms from its anchor on is refused at
// commit (eco_subscription_terms_cover).
func TestSubscriptionTermsCover(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	ctx := context.Background()
	const u = "eeeeeeee-0000-4000-8000-000000000005"
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_subscriptions (user_id, plan_id, included_calls, overage_unit_price, price_model, period_anchor)
		VALUES ($1, 'pro', 500, 70, 'per_unit', '2026-01-01')`, u); err != nil {
		t.Fatal(err)
	}
	var plan, overrides, change, by string
	if err := db.Pool.QueryRow(ctx, `SELECT plan_id, overrides::text, change, requested_by FROM eco_subscription_terms
		WHERE user_id = $1 AND effective_from = '2026-01-01'`, u).Scan(&plan, &overrides, &change, &by); err != nil {
		t.Fatalf("the terms of a subscription inserted without them: %v", err)
	}
	if want := `{"price_model": "per_unit", "included_calls": 500, "overage_unit_price": 70}`; plan != "pro" || overrides != want || change != "start" || by != "database" {
		t.Errorf("terms = %s %s %s %s; want pro %s start database", plan, overrides, change, by, want)
	}
	for _, tt := range []struct{ name, sql string }{
		{"terms deleted", `DELETE FROM eco_subscription_terms WHERE user_id = $1`},
		{"anchor moved before them", `UPDATE eco_subscriptions SET period_anchor = '2025-12-01' WHERE user_id = $1`},
	} {
		if _, err := db.Pool.Exec(ctx, tt.sql, u); usage.ErrorCode(postgres.FormatError(err)) != usage.CodeInvalid {
			t.Errorf("%s: %v; want refused by a check at commit", tt.name, err)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

// TestBurstBeyondTheColumnRefused: a burst beyond the integer column the
// subscription's terms take it into is refused when the change is asked
// for, naming it. A downgrade keeps its overrides as JSON until the
// period's end, so one such burst was accepted, and then every billing
// run stopped at promote_due_terms, unable to make it current.
func TestBurstBeyondTheColumnRefused(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	clock := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return clock }
	ctx := context.Background()
	s := postgres.NewAnalyticsStore(db)
	const u = "dddddddd-0000-4000-8000-000000000005"
	if _, err := s.PutPlan(ctx, report.PlanChange{UserID: u, PlanID: "enterprise", Who: "ops"}); err != nil {
		t.Fatal(err)
	}
	clock = time.Date(2026, 2, 12, 8, 0, 0, 0, time.UTC)
	for _, plan := range []string{"pro", "enterprise"} { // a downgrade, an upgrade
		_, err := s.PutPlan(ctx, report.PlanChange{UserID: u, PlanID: plan, Overrides: usage.Overrides{Burst: ptr(3_000_000_000)}, Who: "ops"})
		if usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != "burst" {
			t.Errorf("%s with a burst of 3,000,000,000: %v; want CodeInvalid naming burst", plan, err)
		}
	}
	if _, err := postgres.NewLedgerStore(db).PromoteDueTerms(ctx, time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)); err != nil {
		t.Errorf("the billing run's promotion at the period's end: %v", err)
	}
}
