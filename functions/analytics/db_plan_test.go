package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

// The tests of this file change plans through the admin routes over
// PostgreSQL and read what the user sees (GET /v1/usage): the invariants
// of docs/overage.md, and partial changes that show the terms before and
// after side by side.

// erin is on pro with 500 included calls (negotiated), her periods
// anchored on 13 March (31 days, to 13 April), with 400 calls on the
// first two days of the period. The tests run on 15 March at 12:00.
const erin = "ffffffff-0000-4000-8000-000000000006"

func seedErin(t *testing.T, f *dbFixture) {
	t.Helper()
	_, err := f.db.Pool.Exec(context.Background(), `
	INSERT INTO eco_subscriptions (user_id, plan_id, included_calls, period_anchor)
	VALUES ('`+erin+`', 'pro', 500, '2026-03-13T00:00:00Z');
	INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at)
	VALUES ('`+erin+`', '2026-03-13T00:00:00Z', 'pro', '{"included_calls": 500}', 'start', '2026-03-13T00:00:00Z');
	INSERT INTO eco_usage_counters (user_id, day, calls, updated_at) VALUES
		('`+erin+`', '2026-03-13', 200, '2026-03-13T20:00:00Z'), ('`+erin+`', '2026-03-14', 200, '2026-03-14T20:00:00Z');`)
	if err != nil {
		t.Fatalf("seed erin: %v", err)
	}
}

func (f *dbFixture) plan(t *testing.T, method, body string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	return f.do(t, request(method, "/v1/admin/users/"+erin+"/plan", map[string]string{"Authorization": token(t, operator, true)}, body))
}

// overageToDate reads erin's GET /v1/usage: the billable calls and amount
// of the period so far.
func (f *dbFixture) overageToDate(t *testing.T) (int64, int64) {
	t.Helper()
	resp := f.get(t, "/v1/usage", token(t, erin, false))
	wantStatus(t, resp, 200)
	var u struct {
		OverageToDate struct {
			Billable int64 `json:"billable_calls"`
			Amount   int64 `json:"amount"`
		} `json:"overage_to_date"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &u); err != nil {
		t.Fatal(err)
	}
	return u.OverageToDate.Billable, u.OverageToDate.Amount
}

// TestDBRateLimitChangeKeepsTheAllowance: the first case. A new
// rate limit (the included calls and the price as they were) changes no
// amount: 400 calls of 500 included stay free, where the period used to
// become two segments with 32 and 468 included calls, 368 billable calls
// and 0.50 USD.
func TestDBRateLimitChangeKeepsTheAllowance(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	seedErin(t, f)
	if n, a := f.overageToDate(t); n != 0 || a != 0 {
		t.Fatalf("before the change: %d billable calls, %d; want none", n, a)
	}
	wantStatus(t, f.plan(t, "PUT", `{"plan_id":"pro","overrides":{"included_calls":500,"rate_per_second":75}}`), 200)
	if n, a := f.overageToDate(t); n != 0 || a != 0 {
		t.Errorf("after a rate limit change: %d billable calls, %d; want none", n, a)
	}
}

// TestDBUpgradeNeverCostsMoreForThePast: the second case. An
// upgrade to more included calls bills the calls before it as the terms
// then in force would over the whole period: nothing for 400 of 500,
// where it used to bill 368.
func TestDBUpgradeNeverCostsMoreForThePast(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	seedErin(t, f)
	resp := f.plan(t, "PUT", `{"plan_id":"pro","overrides":{"included_calls":2000}}`)
	wantStatus(t, resp, 200)
	if c := decode[map[string]any](t, resp); c["change"] != "upgrade" {
		t.Fatalf("change = %v; want upgrade", c["change"])
	}
	if n, a := f.overageToDate(t); n != 0 || a != 0 {
		t.Errorf("after an upgrade: %d billable calls, %d; want none", n, a)
	}
}

type termsView struct {
	PlanID    string         `json:"plan_id"`
	Overrides map[string]any `json:"overrides"`
	Effective struct {
		IncludedCalls int64   `json:"included_calls"`
		RatePerSecond float64 `json:"rate_per_second"`
	} `json:"effective"`
}

type changeView struct {
	Change  string     `json:"change"`
	Before  *termsView `json:"before"`
	After   *termsView `json:"after"`
	Changed []string   `json:"changed"`
}

// TestDBPatchPlan: the third case. PATCH with a rate limit alone
// keeps the negotiated 500 included calls (PUT replaces every override:
// the same body through PUT would give back the plan's 100,000), and the
// answer and the audit trail show the terms before and after side by
// side, with what changed. An override sent as null goes back to the
// plan's value.
func TestDBPatchPlan(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	seedErin(t, f)
	resp := f.plan(t, "PATCH", `{"overrides":{"rate_per_second":75}}`)
	wantStatus(t, resp, 200)
	got := decode[changeView](t, resp)
	if got.Before == nil || got.After == nil || got.Before.Effective.IncludedCalls != 500 || got.After.Effective.IncludedCalls != 500 ||
		got.Before.Effective.RatePerSecond != 50 || got.After.Effective.RatePerSecond != 75 || got.After.PlanID != "pro" ||
		!cmp.Equal(got.Changed, []string{"rate_per_second"}) || got.Change != "upgrade" {
		t.Errorf("PATCH rate_per_second = %s; want 500 included kept, 50 → 75 calls/s side by side, rate_per_second changed", resp.Body)
	}
	if n, a := f.overageToDate(t); n != 0 || a != 0 {
		t.Errorf("after the PATCH: %d billable calls, %d; want none", n, a)
	}
	// The audit trail holds the same, newest first.
	audit := f.get(t, "/v1/admin/users/"+erin+"/audit", token(t, operator, true))
	wantStatus(t, audit, 200)
	var page struct{ Items []changeView }
	if err := json.Unmarshal([]byte(audit.Body), &page); err != nil || len(page.Items) != 1 || page.Items[0].Before == nil ||
		page.Items[0].After == nil || page.Items[0].Before.Effective.IncludedCalls != 500 || page.Items[0].After.Effective.RatePerSecond != 75 ||
		!cmp.Equal(page.Items[0].Changed, []string{"rate_per_second"}) {
		t.Errorf("audit = %s; want the terms before and after", audit.Body)
	}
	// null drops an override: the plan's 100,000 included calls.
	resp = f.plan(t, "PATCH", `{"overrides":{"included_calls":null}}`)
	wantStatus(t, resp, 200)
	if got := decode[changeView](t, resp); got.After == nil || got.After.Effective.IncludedCalls != 100_000 || got.After.Effective.RatePerSecond != 75 ||
		got.After.Overrides["included_calls"] != nil || !cmp.Equal(got.Changed, []string{"included_calls"}) {
		t.Errorf("PATCH included_calls null = %s; want the plan's 100,000, the rate kept", resp.Body)
	}
	// PUT replaces: what it drops shows in the answer.
	resp = f.plan(t, "PUT", `{"plan_id":"pro","overrides":{"included_calls":500}}`)
	wantStatus(t, resp, 200)
	if got := decode[changeView](t, resp); got.Before == nil || got.Before.Effective.RatePerSecond != 75 || got.After.Effective.RatePerSecond != 50 ||
		got.Change != "downgrade" || !cmp.Equal(got.Changed, []string{"included_calls", "rate_per_second"}) {
		t.Errorf("PUT = %s; want the rate back to pro's 50 shown as changed", resp.Body)
	}
	// Refusals name the override.
	for body, param := range map[string]string{
		`{"overrides":{"colour":1}}`:          "overrides.colour",
		`{"overrides":{"burst":"5"}}`:         "overrides.burst",
		`{"overrides":{"burst":0}}`:           "burst",
		`{"plan_id":"gold"}`:                  "plan_id",
		`{"overrides":{"rate_per_second":75}`: "body",
		// Prices Stripe could not charge as stated: KWD in steps of 10,
		// ISK in whole krónur (pro's 0.50 a package is not one).
		`{"overrides":{"currency":"kwd","overage_unit_price":55}}`: "overage_unit_price",
		`{"overrides":{"currency":"isk"}}`:                         "overage_unit_price",
	} {
		resp := f.plan(t, "PATCH", body)
		if p := decode[problem](t, resp); resp.StatusCode != 400 || p.Param != param {
			t.Errorf("PATCH %s = %d %+v; want 400 naming %s", body, resp.StatusCode, p, param)
		}
	}
}

// TestDBCurrencyMixRefused: the sixth case. USD terms, then
// overage waived (terms that bill nothing), then EUR terms, in one period:
// the last is refused naming the currency, and GET /v1/usage goes on
// answering.
func TestDBCurrencyMixRefused(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	seedErin(t, f)
	f.db.Now = func() time.Time { return testNow.Add(-time.Hour) }
	wantStatus(t, f.plan(t, "PUT", `{"plan_id":"pro","overrides":{"included_calls":500,"overage_unit_price":0}}`), 200)
	f.db.Now = func() time.Time { return testNow }
	resp := f.plan(t, "PUT", `{"plan_id":"pro","overrides":{"included_calls":500,"currency":"eur"}}`)
	if p := decode[problem](t, resp); resp.StatusCode != 400 || p.Param != "currency" {
		t.Errorf("USD, waived, then EUR in one period = %d %s; want 400 naming currency", resp.StatusCode, resp.Body)
	}
	wantStatus(t, f.get(t, "/v1/usage", token(t, erin, false)), 200)
}

// TestDBUsageOfAMixedPeriod: a period whose terms bill in two currencies
// (written around the plan changes, which refuse them) is not the
// caller's fault: GET /v1/usage answers 409 saying why, not 400.
func TestDBUsageOfAMixedPeriod(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	seedErin(t, f)
	if _, err := f.db.Pool.Exec(context.Background(), `INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at)
		VALUES ($1, '2026-03-14T09:00:00Z', 'pro', '{"included_calls": 500, "currency": "eur"}', 'upgrade', '2026-03-14T09:00:00Z')`, erin); err != nil {
		t.Fatal(err)
	}
	resp := f.get(t, "/v1/usage", token(t, erin, false))
	if p := decode[problem](t, resp); resp.StatusCode != 409 || p.Detail != "the period bills in usd and eur; a period is billed in one currency" {
		t.Errorf("GET /v1/usage = %d %s; want 409 saying the period bills in two currencies", resp.StatusCode, resp.Body)
	}
}

// TestDBPlanIDThatNoPlanCanHave: a plan id holding a NUL (sent as \u0000),
// which no PostgreSQL text can hold, names no plan: 400 naming plan_id,
// through PUT and PATCH, as any unknown plan. It used to reach the
// database, which refused the parameter: 500, "internal error".
func TestDBPlanIDThatNoPlanCanHave(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	seedErin(t, f)
	for _, method := range []string{"PUT", "PATCH"} {
		resp := f.plan(t, method, `{"plan_id":"pro\u0000"}`)
		if p := decode[problem](t, resp); resp.StatusCode != 400 || p.Param != "plan_id" {
			t.Errorf(`%s {"plan_id":"pro\u0000"} = %d %s; want 400 naming plan_id`, method, resp.StatusCode, resp.Body)
		}
	}
}
