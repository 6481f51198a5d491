package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

func TestDBAdminSummary(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	resp := f.get(t, "/v1/admin/summary?from=2026-02-01&to=2026-03-15", token(t, operator, true))
	wantStatus(t, resp, 200)
	got := decode[map[string]any](t, resp)
	// alice: 13 closed days × 15 + 20 (dirty Mar 14) + 7 (today) = 222;
	// bob: 3. Errors: alice 13 × 2 + 2 + 1 = 29.
	want := map[string]any{
		"from": "2026-02-01", "to": "2026-03-15",
		"calls": 225.0, "errors_4xx": 15.0, "errors_5xx": 14.0, "active_users": 2.0, "error_rate": 29.0 / 225,
		"calls_by_plan": map[string]any{"pro": 222.0, "free": 3.0},
		"overage":       []any{map[string]any{"currency": "usd", "billed": 500.0, "pending": 300.0}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("summary (-want +got):\n%s", d)
	}
}

func TestDBTopUsers(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	type top struct {
		UserID  string `json:"user_id"`
		PlanID  string `json:"plan_id"`
		Calls   int64  `json:"calls"`
		Overage int64  `json:"overage"`
	}
	admin := token(t, operator, true)
	tests := []struct {
		query string
		want  []top
	}{
		{"by=calls", []top{{alice, "pro", 222, 0}, {bob, "free", 3, 0}}},
		{"by=calls&limit=1", []top{{alice, "pro", 222, 0}}},
		{"by=errors&limit=1", []top{{alice, "pro", 222, 0}}},
		{"by=overage", []top{{alice, "pro", 222, 500}, {charlie, "free", 0, 300}}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp := f.get(t, "/v1/admin/top-users?from=2026-02-01&to=2026-03-15&"+tt.query, admin)
			wantStatus(t, resp, 200)
			got := decode[struct{ Items []top }](t, resp)
			if d := cmp.Diff(tt.want, got.Items); d != "" {
				t.Errorf("top users (-want +got):\n%s", d)
			}
		})
	}
}

// TestDBTopUsersByOverageInEachCurrency: ranking by overage ranks the
// users' ledger amounts in each currency apart, the top limit of each, and
// says which currency each amount is in; an amount in euros is neither
// added to one in dollars nor ranked against it.
func TestDBTopUsersByOverageInEachCurrency(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	if _, err := f.db.Pool.Exec(context.Background(), `INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end,
		included_calls, used_calls, units, unit_size, unit_price, amount, currency, idempotency_key, status) VALUES
		('10000000-0000-4000-8000-000000000011', '`+bob+`', '2026-03-01', '2026-04-01', 0, 100, 10, 10, 100, 1000, 'eur', 'k11', 'billed'),
		('10000000-0000-4000-8000-000000000012', '`+alice+`', '2026-03-10', '2026-04-10', 0, 40, 4, 10, 50, 200, 'eur', 'k12', 'pending')`); err != nil {
		t.Fatal(err)
	}
	type top struct {
		UserID   string `json:"user_id"`
		Calls    int64  `json:"calls"`
		Overage  int64  `json:"overage"`
		Currency string `json:"currency"`
	}
	admin := token(t, operator, true)
	tests := []struct {
		query string
		want  []top
	}{
		{"by=overage", []top{{bob, 3, 1000, "eur"}, {alice, 222, 200, "eur"}, {alice, 222, 500, "usd"}, {charlie, 0, 300, "usd"}}},
		{"by=overage&limit=1", []top{{bob, 3, 1000, "eur"}, {alice, 222, 500, "usd"}}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp := f.get(t, "/v1/admin/top-users?from=2026-02-01&to=2026-03-15&"+tt.query, admin)
			wantStatus(t, resp, 200)
			got := decode[struct{ Items []top }](t, resp)
			if d := cmp.Diff(tt.want, got.Items); d != "" {
				t.Errorf("top users (-want +got):\n%s", d)
			}
		})
	}
}

func TestDBAdminUserUsage(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	// As API Gateway sends it: the matched route key and path parameters.
	req := request("GET", "/v1/admin/users/"+alice+"/usage", map[string]string{"Authorization": token(t, operator, true)}, "")
	req.RouteKey = "GET /v1/admin/users/{id}/usage"
	req.PathParameters = map[string]string{"id": alice}
	resp := f.do(t, req)
	wantStatus(t, resp, 200)
	if got := decode[map[string]any](t, resp); got["user_id"] != alice || got["used"] != 87.0 {
		t.Errorf("admin view of alice = %v", got)
	}
	// The same as what alice sees.
	if mine := f.get(t, "/v1/usage", token(t, alice, false)); mine.Body != resp.Body {
		t.Errorf("admin view %s differs from alice's %s", resp.Body, mine.Body)
	}
}

func TestDBPutPlan(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin := token(t, operator, true)
	put := func(user, body string) events.APIGatewayV2HTTPResponse {
		return f.do(t, request("PUT", "/v1/admin/users/"+user+"/plan", map[string]string{"Authorization": admin}, body))
	}
	resp := put(bob, `{"plan_id":"enterprise","overrides":{"burst":5}}`)
	wantStatus(t, resp, 200)
	sub := decode[report.PlanChanged](t, resp)
	if sub.PlanID != "enterprise" || sub.Effective.Burst != 5 || sub.Effective.IncludedCalls != 10_000_000 || !sub.PeriodAnchor.Equal(usage.Day(testNow)) ||
		sub.Change != usage.ChangeStart || !sub.EffectiveAt.Equal(usage.Day(testNow)) {
		t.Errorf("subscription = %+v", sub)
	}
	// Enterprise to pro is a downgrade: pro waits for the period's end.
	resp = put(bob, `{"plan_id":"pro"}`)
	wantStatus(t, resp, 200)
	periodEnd := usage.Day(testNow).AddDate(0, 1, 0)
	if sub := decode[report.PlanChanged](t, resp); sub.PlanID != "enterprise" || sub.Change != usage.ChangeDowngrade ||
		!sub.EffectiveAt.Equal(periodEnd) || sub.Next == nil || sub.Next.PlanID != "pro" || !sub.Next.From.Equal(periodEnd) {
		t.Errorf("downgrade = %+v", sub)
	}

	rows, err := f.db.Pool.Query(context.Background(), `SELECT who, at, old->>'plan_id', coalesce(new->>'next_plan_id', new->>'plan_id'),
		(new->>'burst')::int, change, effective_at
		FROM eco_plan_audit WHERE user_id = $1 ORDER BY audit_id`, bob)
	if err != nil {
		t.Fatal(err)
	}
	type audit struct {
		Who         string
		At          time.Time
		Old, New    *string
		Burst       *int
		Change      string
		EffectiveAt time.Time
	}
	var got []audit
	for rows.Next() {
		var a audit
		if err := rows.Scan(&a.Who, &a.At, &a.Old, &a.New, &a.Burst, &a.Change, &a.EffectiveAt); err != nil {
			t.Fatal(err)
		}
		a.At, a.EffectiveAt = a.At.UTC(), a.EffectiveAt.UTC()
		got = append(got, a)
	}
	s := func(v string) *string { return &v }
	five := 5
	want := []audit{{operator, testNow, nil, s("enterprise"), &five, "start", usage.Day(testNow)},
		{operator, testNow, s("enterprise"), s("pro"), &five, "downgrade", periodEnd}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("audit (-want +got):\n%s", d)
	}
	// bob keeps enterprise until the period's end.
	if u := decode[map[string]any](t, f.get(t, "/v1/usage", token(t, bob, false))); u["plan_id"] != "enterprise" {
		t.Errorf("bob's plan = %v", u["plan_id"])
	}

	// Refused by the store: nothing is written, not even an audit row.
	for _, tt := range []struct{ name, body, param string }{
		{"unknown plan", `{"plan_id":"gold"}`, "plan_id"},
		{"no plan", `{}`, "plan_id"},
		{"bad override", `{"plan_id":"pro","overrides":{"burst":0}}`, "burst"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := put(bob, tt.body)
			wantStatus(t, resp, 400)
			if p := decode[problem](t, resp); p.Param != tt.param || len(p.InvalidParams) != 1 || p.InvalidParams[0].Name != tt.param {
				t.Errorf("problem = %+v; want param %q", p, tt.param)
			}
		})
	}
	var n int
	_ = f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM eco_plan_audit`).Scan(&n)
	if n != 2 {
		t.Errorf("%d audit rows after refused changes; want 2", n)
	}
}

func TestDBQueueAggregation(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin := token(t, operator, true)
	// No raw partition holds March 2026 yet: its days cannot be recomputed.
	resp := f.do(t, request("POST", "/v1/admin/aggregate", map[string]string{"Authorization": admin}, `{"from":"2026-03-10","to":"2026-03-14"}`))
	wantStatus(t, resp, 400)
	if p := decode[problem](t, resp); p.Param != "from" || !strings.Contains(p.Detail, "no longer kept") {
		t.Errorf("problem = %v; want one naming from, the raw usage no longer kept", p)
	}
	if _, err := postgres.NewRollupStore(f.db).EnsurePartitions(context.Background(), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 1); err != nil {
		t.Fatal(err)
	}
	resp = f.do(t, request("POST", "/v1/admin/aggregate", map[string]string{"Authorization": admin}, `{"from":"2026-03-10","to":"2026-03-14"}`))
	wantStatus(t, resp, 202)
	if got := decode[map[string]any](t, resp); got["days_queued"] != 5.0 {
		t.Errorf("response = %v", got)
	}
	var days []time.Time
	rows, _ := f.db.Pool.Query(context.Background(), `SELECT day FROM eco_usage_dirty_days ORDER BY day`)
	for rows.Next() {
		var d time.Time
		_ = rows.Scan(&d)
		days = append(days, d)
	}
	if len(days) != 5 || !days[0].Equal(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("dirty days = %v", days)
	}
}

func TestDBRejected(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin := token(t, operator, true)
	type rej struct {
		MessageID string `json:"message_id"`
		Reason    string `json:"reason"`
	}
	p1 := decode[pageOf[rej]](t, f.get(t, "/v1/admin/rejected?limit=2", admin))
	if len(p1.Items) != 2 || p1.Items[0].MessageID != "m3" || p1.Items[1].MessageID != "m2" || p1.NextCursor == "" {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2 := decode[pageOf[rej]](t, f.get(t, "/v1/admin/rejected?limit=2&cursor="+p1.NextCursor, admin))
	if len(p2.Items) != 1 || p2.Items[0].MessageID != "m1" || p2.Items[0].Reason != "not JSON" || p2.NextCursor != "" {
		t.Fatalf("page 2 = %+v", p2)
	}
}

func TestDBOverageLedger(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin := token(t, operator, true)
	type entry struct {
		UserID string `json:"user_id"`
		Amount int64  `json:"amount"`
		Status string `json:"status"`
	}
	p1 := decode[pageOf[entry]](t, f.get(t, "/v1/admin/overage?period=2026-03&limit=1", admin))
	if len(p1.Items) != 1 || p1.Items[0].UserID != charlie || p1.NextCursor == "" {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2 := decode[pageOf[entry]](t, f.get(t, "/v1/admin/overage?period=2026-03&limit=1&cursor="+p1.NextCursor, admin))
	if len(p2.Items) != 1 || p2.Items[0].UserID != dave || p2.Items[0].Status != "failed" || p2.NextCursor != "" {
		t.Fatalf("page 2 = %+v", p2)
	}
	feb := decode[pageOf[entry]](t, f.get(t, "/v1/admin/overage?period=2026-02", admin))
	if len(feb.Items) != 1 || feb.Items[0].UserID != alice || feb.Items[0].Amount != 500 {
		t.Fatalf("february = %+v", feb)
	}
	// Default: the current month.
	if cur := decode[pageOf[entry]](t, f.get(t, "/v1/admin/overage", admin)); len(cur.Items) != 2 {
		t.Fatalf("current month = %+v", cur)
	}
}

// TestDBAdminReportsNameThePlanInForce: once a downgrade is in force (the
// period it waited for has ended), the admin reports name the plan the
// user is on, as the user's own GET /v1/usage and the admin's view of it
// do, before the billing run makes it the subscription's current plan
// (promote_due_terms, once a day): top users' plan_id and the summary's
// calls_by_plan.
func TestDBAdminReportsNameThePlanInForce(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin := token(t, operator, true)
	// alice's period runs from the 10th: from pro with 50 calls to free
	// with 10, a downgrade, waits for April 10.
	resp := f.do(t, request("PUT", "/v1/admin/users/"+alice+"/plan", map[string]string{"Authorization": admin}, `{"plan_id":"free","overrides":{"included_calls":10}}`))
	wantStatus(t, resp, 200)
	if c := decode[report.PlanChanged](t, resp); c.Change != usage.ChangeDowngrade || !c.EffectiveAt.Equal(time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("change = %s from %s; want a downgrade from April 10", c.Change, c.EffectiveAt)
	}
	for _, tt := range []struct {
		name string
		at   time.Time
		plan string
	}{
		{"before the downgrade", time.Date(2026, 4, 9, 23, 59, 0, 0, time.UTC), "pro"},
		{"once it is in force", time.Date(2026, 4, 10, 0, 1, 0, 0, time.UTC), "free"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.h.Now = func() time.Time { return tt.at }
			own := decode[map[string]any](t, f.get(t, "/v1/usage", token(t, alice, false)))
			view := decode[map[string]any](t, f.get(t, "/v1/admin/users/"+alice+"/usage", admin))
			top := decode[struct {
				Items []report.TopUser
			}](t, f.get(t, "/v1/admin/top-users?from=2026-03-14&to=2026-04-09&limit=1", admin))
			sum := decode[report.AdminSummary](t, f.get(t, "/v1/admin/summary?from=2026-03-14&to=2026-04-09", admin))
			if own["plan_id"] != tt.plan || view["plan_id"] != tt.plan {
				t.Fatalf("alice's plan: her own %v, the admin's view %v; want %s", own["plan_id"], view["plan_id"], tt.plan)
			}
			if len(top.Items) != 1 || top.Items[0].UserID != alice || top.Items[0].PlanID != tt.plan {
				t.Errorf("top users %+v; want alice on %s", top.Items, tt.plan)
			}
			if len(top.Items) == 1 && (top.Items[0].Calls == 0 || sum.CallsByPlan[tt.plan] != top.Items[0].Calls) {
				t.Errorf("calls by plan %v; want alice's %d calls under %s", sum.CallsByPlan, top.Items[0].Calls, tt.plan)
			}
		})
	}
}
