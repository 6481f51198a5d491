package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// TestSetup refuses bad configuration before anything connects.
func TestSetup(t *testing.T) {
	ctx := context.Background()
	vars := func(m map[string]string) *env.Env {
		return env.New(ctx, func(k string) string { return m[k] })
	}
	for _, bad := range []map[string]string{
		{},
		{"DATABASE_URL": "postgres://x", "GRACE_PERIOD": "a day"},
		{"DATABASE_URL": "postgres://x", "STRIPE_MAX_RPS": "-1"},
		{"DATABASE_URL": "postgres://x", "MAX_ATTEMPTS": "x"},
		{"DATABASE_URL": "::not a url::"},
		{"DATABASE_URL": "postgres://x", "ALLOW_CLOCK_OVERRIDE": "yes please"},
	} {
		if _, err := setup(ctx, vars(bad), testkit.Logger()); err == nil {
			t.Errorf("setup(%v): no error", bad)
		}
	}
}

// TestSetupRefusesWhatItWouldNotRunWith: a setting of 0 is refused,
// naming it, rather than replaced by the default without a word (a grace
// period of 0h ran with 24h, MAX_ATTEMPTS=0 with 10), and workers beyond
// what the pool can hold are refused rather than overflowing its size.
func TestSetupRefusesWhatItWouldNotRunWith(t *testing.T) {
	ctx := context.Background()
	for name, value := range map[string]string{
		"GRACE_PERIOD":    "0h",
		"MAX_ATTEMPTS":    "0",
		"BILLING_WORKERS": "0",
	} {
		for _, v := range []string{value, map[string]string{"BILLING_WORKERS": "2147483647"}[name]} {
			if v == "" {
				continue
			}
			m := map[string]string{"DATABASE_URL": "postgres://x", name: v}
			_, err := setup(ctx, env.New(ctx, func(k string) string { return m[k] }), testkit.Logger())
			if err == nil || !strings.HasPrefix(err.Error(), name+": ") {
				t.Errorf("setup(%s=%s) = %v; want an error naming %s", name, v, err, name)
			}
		}
	}
}

// TestSetupWithDatabase wires the handler to the real services from its
// environment: without a Stripe key its runs are dry; with one, and the
// local stack's clock override, it bills a closed period through
// stripe-mock and keeps the ledger row in PostgreSQL.
func TestSetupWithDatabase(t *testing.T) {
	url := pgtest.NewURL(t)
	stripeMock := pgtest.Require(t, "NEXUS_TEST_STRIPE_URL", "stripe-mock")
	ctx := context.Background()
	vars := func(m map[string]string) *env.Env {
		return env.New(ctx, func(k string) string { return m[k] })
	}
	dry, err := setup(ctx, vars(map[string]string{"DATABASE_URL": url, "GRACE_PERIOD": "48h"}), testkit.Logger())
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if c := dry.Billing.(*billing.Billing).Config(); c.Biller != nil || c.Grace != 48*time.Hour || c.Lookback != billing.DefaultLookback {
		t.Errorf("without a Stripe key: biller %v, grace %v, lookback %v; want a dry run with 48h, the default lookback", c.Biller, c.Grace, c.Lookback)
	}
	live, err := setup(ctx, vars(map[string]string{"DATABASE_URL": url, "STRIPE_API_KEY": "sk_test_123",
		"STRIPE_API_URL": "http://127.0.0.1:1", "BILLING_WORKERS": "2"}), testkit.Logger())
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if c := live.Billing.(*billing.Billing).Config(); c.Biller == nil || c.Workers != 2 || live.AllowClockOverride || c.Lookback != billing.DefaultLookback {
		t.Errorf("with a Stripe key: biller %v, workers %d, clock override %v, lookback %v", c.Biller, c.Workers, live.AllowClockOverride, c.Lookback)
	}
	local, err := setup(ctx, vars(map[string]string{"DATABASE_URL": url, "STRIPE_API_KEY": "sk_test_123", "STRIPE_API_URL": stripeMock,
		"ALLOW_CLOCK_OVERRIDE": "true"}), testkit.Logger())
	if err != nil || !local.AllowClockOverride {
		t.Fatalf("ALLOW_CLOCK_OVERRIDE=true: %v, %v", local, err)
	}

	// At work: a pro subscription 50,000 calls over its quota in February,
	// run dry and then billed at the local stack's instant.
	db, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := postgres.NewSubscriptionStore(db).PutSubscription(ctx, &usage.Subscription{UserID: user, PlanID: usage.PlanPro,
		PeriodAnchor: anchor, StripeCustomerID: "cus_1", StripeSubscriptionID: "sub_1"}); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.AddCalls(ctx, db, user, anchor.AddDate(0, 0, 9), 150_000); err != nil {
		t.Fatal(err)
	}
	at := runAt
	rep, err := local.Handle(ctx, Input{Now: &at, DryRun: true})
	if err != nil || !rep.DryRun || rep.PlannedRows != 1 || !cmp.Equal(rep.Due, []billing.Amount{{Currency: "usd", Amount: 2500}}) {
		t.Errorf("dry run = %+v, %v; want one row of 25.00 USD planned", rep, err)
	}
	rep, err = local.Handle(ctx, Input{Now: &at})
	var status, item string
	if err == nil {
		err = db.Pool.QueryRow(ctx, `SELECT status, coalesce(stripe_object_id, '') FROM eco_overage_ledger WHERE user_id = $1`, user).Scan(&status, &item)
	}
	if err != nil || rep.DryRun || rep.Billed != 1 || status != billing.LedgerBilled || item == "" {
		t.Errorf("run = %+v, %v; ledger row %s with item %q; want February billed through stripe-mock", rep, err, status, item)
	}
}

// TestTemplateNeverOverridesTheClock: in AWS a run bills at the time it
// runs; only the local stack may replay one at another instant.
func TestTemplateNeverOverridesTheClock(t *testing.T) {
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "ALLOW_CLOCK_OVERRIDE") {
		t.Error("template.yaml sets ALLOW_CLOCK_OVERRIDE; only cmd/internal/devstack may")
	}
}
