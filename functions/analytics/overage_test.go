package main

import (
	"context"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/usage"
)

// The overage routes on mocks: the preview (its month, pages and totals)
// and the retry of a failed row (its id, and the store's refusals).

var (
	marchCalendar = usage.Period{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
	proLine       = usage.Line{From: marchCalendar.Start, To: marchCalendar.End, PlanID: "pro", PlanName: "Pro", Bills: true,
		Price: usage.Price{Model: usage.PricePackage, UnitSize: 100, UnitPrice: 50, Currency: "usd"}, Included: 100, Used: 700,
		PriceCharge: usage.PriceCharge{Calls: 600, Units: 6, Amount: 300}}
	// failedRow is charlie's March row, failed: the route retries it.
	failedRow = billing.LedgerEntry{ID: "10000000-0000-4000-8000-000000000009", UserID: charlie, Period: marchCalendar,
		Included: 100, Used: 700, Units: 6, UnitSize: 100, UnitPrice: 50, Amount: 300, Currency: "usd",
		Status: billing.LedgerFailed, Attempts: 1, LastError: "the subscription has no Stripe customer",
		IdempotencyKey: billing.IdempotencyKey(charlie, marchCalendar.Start, 0), Lines: []usage.Line{proLine},
		Description: "API overage, 2026-03-01 – 2026-03-31: Pro, 700 calls, 100 included: 6 × 100 calls at 0.50 USD = 3.00 USD",
		CreatedAt:   time.Date(2026, 4, 2, 0, 30, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 4, 2, 0, 30, 0, 0, time.UTC)}
)

// cannedOverage previews March: charlie's period owed, dave's billed.
func cannedOverage() *mock.OveragePreviewer {
	return &mock.OveragePreviewer{PreviewFn: func(_ context.Context, month, now time.Time) (*billing.Preview, error) {
		charge, _ := usage.NewPeriodCharge([]usage.Line{proLine})
		next := &billing.DraftRow{UserID: charlie, Period: marchCalendar, Seq: 1, Status: billing.LedgerPending, Amount: 100,
			Currency: "usd", Description: "API overage adjustment 1, 2026-03-01 – 2026-03-31: Pro, 700 calls, 100 included: 6 × 100 calls at 0.50 USD = 3.00 USD; less 2.00 USD charged before"}
		return &billing.Preview{Month: month.Format("2006-01"), AsOf: now, Items: []billing.PreviewItem{
			{UserID: charlie, Period: marchCalendar, Closed: true, Charge: charge, Recorded: 200, Billed: 200, Next: next},
			{UserID: dave, Period: marchCalendar, Closed: true, Charge: charge, Recorded: 300, Billed: 300},
		}, Totals: []billing.PreviewTotal{{Currency: "usd", Charge: 600, Recorded: 500, Billed: 500, Next: 100}}}, nil
	}}
}

func TestOveragePreviewRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var month time.Time
	preview := f.overage.PreviewFn
	f.overage.PreviewFn = func(ctx context.Context, m, now time.Time) (*billing.Preview, error) {
		month = m
		return preview(ctx, m, now)
	}
	admin := map[string]string{"Authorization": token(t, operator, true)}
	type page struct {
		Period string
		Totals []billing.PreviewTotal
		Items  []struct {
			UserID string `json:"user_id"`
		}
		NextCursor string `json:"next_cursor"`
	}
	resp := f.do(t, request("GET", "/v1/admin/overage/preview?period=2026-03&limit=1", admin, ""))
	wantStatus(t, resp, 200)
	p := decode[page](t, resp)
	if !month.Equal(marchCalendar.Start) || p.Period != "2026-03" || len(p.Items) != 1 || p.Items[0].UserID != charlie ||
		p.NextCursor == "" || len(p.Totals) != 1 || p.Totals[0].Next != 100 {
		t.Fatalf("first page = %+v (month %v)", p, month)
	}
	resp = f.do(t, request("GET", "/v1/admin/overage/preview?period=2026-03&limit=1&cursor="+p.NextCursor, admin, ""))
	wantStatus(t, resp, 200)
	if p2 := decode[page](t, resp); len(p2.Items) != 1 || p2.Items[0].UserID != dave || p2.NextCursor != "" || p2.Totals[0].Charge != 600 {
		t.Errorf("second page = %+v", p2)
	}
	// Without a month: the current one.
	wantStatus(t, f.do(t, request("GET", "/v1/admin/overage/preview", admin, "")), 200)
	if !month.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("default month = %v", month)
	}
	for _, q := range []string{"period=2026-3", "period=march", "cursor=nope"} {
		f.noStore(t)
		resp := f.do(t, request("GET", "/v1/admin/overage/preview?"+q, admin, ""))
		wantStatus(t, resp, 400)
	}
	// Not configured: 503.
	f2 := newFixture(t)
	f2.h.Overage = nil
	wantStatus(t, f2.do(t, request("GET", "/v1/admin/overage/preview", admin, "")), 503)
}

func TestOverageRetryRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := map[string]string{"Authorization": token(t, operator, true)}
	var who string
	retry := f.admin.RetryLedgerEntryFn
	f.admin.RetryLedgerEntryFn = func(ctx context.Context, id, by string) (*billing.LedgerEntry, error) {
		who = by
		return retry(ctx, id, by)
	}
	resp := f.do(t, request("POST", "/v1/admin/overage/"+failedRow.ID+"/retry", admin, ""))
	wantStatus(t, resp, 200)
	if e := decode[billing.LedgerEntry](t, resp); e.Status != billing.LedgerPending || e.Retries != 1 || who != operator {
		t.Errorf("retried row = %+v by %s", e, who)
	}
	wantStatus(t, f.do(t, request("POST", "/v1/admin/overage/10000000-0000-4000-8000-000000000001/retry", admin, "")), 404)
	f.admin.RetryLedgerEntryFn = func(context.Context, string, string) (*billing.LedgerEntry, error) {
		return nil, usage.Errorf(usage.CodeConflict, "ledger row is billed; only failed rows can be retried")
	}
	wantStatus(t, f.do(t, request("POST", "/v1/admin/overage/"+failedRow.ID+"/retry", admin, "")), 409)
	f.noStore(t)
	if p := decode[problem](t, f.do(t, request("POST", "/v1/admin/overage/not-a-uuid/retry", admin, ""))); p.Param != "id" {
		t.Errorf("bad id = %+v", p)
	}
	// Users are not admins.
	wantStatus(t, f.do(t, request("POST", "/v1/admin/overage/"+failedRow.ID+"/retry", map[string]string{"Authorization": token(t, alice, false)}, "")), 403)
}
