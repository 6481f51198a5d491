package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres/pgtest"
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
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "46d"},
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "a month"},
	} {
		if _, err := setup(ctx, vars(bad), testLogger(t)); err == nil {
			t.Errorf("setup(%v): no error", bad)
		}
	}
}

// TestSetupWithDatabase wires the handler to a real database, with and
// without a Stripe key.
func TestSetupWithDatabase(t *testing.T) {
	url := pgtest.NewURL(t)
	ctx := context.Background()
	vars := func(m map[string]string) *env.Env {
		return env.New(ctx, func(k string) string { return m[k] })
	}
	dry, err := setup(ctx, vars(map[string]string{"DATABASE_URL": url, "GRACE_PERIOD": "48h"}), testLogger(t))
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if c := dry.Billing.(*billing.Billing).Config(); c.Biller != nil || c.Grace != 48*time.Hour || c.Lookback != billing.DefaultLookback {
		t.Errorf("without a Stripe key: biller %v, grace %v, lookback %v; want a dry run with 48h, the default lookback", c.Biller, c.Grace, c.Lookback)
	}
	live, err := setup(ctx, vars(map[string]string{"DATABASE_URL": url, "STRIPE_API_KEY": "sk_test_123",
		"STRIPE_API_URL": "http://127.0.0.1:1", "BILLING_WORKERS": "2", "BACKFILL_WINDOW": "45d"}), testLogger(t))
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if c := live.Billing.(*billing.Billing).Config(); c.Biller == nil || c.Workers != 2 || live.AllowClockOverride || c.Lookback != 45*24*time.Hour+usage.BackfillMargin {
		t.Errorf("with a Stripe key: biller %v, workers %d, clock override %v, lookback %v", c.Biller, c.Workers, live.AllowClockOverride, c.Lookback)
	}
	local, err := setup(ctx, vars(map[string]string{"DATABASE_URL": url, "ALLOW_CLOCK_OVERRIDE": "true"}), testLogger(t))
	if err != nil || !local.AllowClockOverride {
		t.Errorf("ALLOW_CLOCK_OVERRIDE=true: %v, %v", local, err)
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
