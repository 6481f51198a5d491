package billing_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/usage"
	"github.com/nexus/usage/shared/usage/usagetest"
)

// TestPreviewWithAnUnpricedPeriod: a period that cannot be priced (here
// terms that bill in two currencies, written around the plan changes) is
// reported as the run reports it, unpriced with the reason, and the
// preview of the others goes on: what it says is due is what a run bills.
// It refused the whole month before.
func TestPreviewWithAnUnpricedPeriod(t *testing.T) {
	const good, bad = "20000000-0000-4000-8000-000000000001", "20000000-0000-4000-8000-000000000002"
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pro := usagetest.ProPlan
	eur := pro.Apply(usage.Overrides{Currency: ptr("eur")})
	subs := []*billing.BillableSubscription{
		{Subscription: usage.Subscription{UserID: good, PlanID: pro.ID, Effective: pro, PeriodAnchor: anchor},
			History: []usage.Terms{{From: anchor, PlanID: pro.ID, Effective: pro, Change: usage.ChangeStart}}},
		{Subscription: usage.Subscription{UserID: bad, PlanID: pro.ID, Effective: eur, PeriodAnchor: anchor},
			History: []usage.Terms{{From: anchor, PlanID: pro.ID, Effective: pro, Change: usage.ChangeStart},
				{From: time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC), PlanID: pro.ID, Overrides: usage.Overrides{Currency: ptr("eur")},
					Effective: eur, Change: usage.ChangeUpgrade}}},
	}
	b := februaryBilling(t, subs, func(start time.Time) []usage.DayCalls {
		return []usage.DayCalls{{Day: start, Calls: 150_000}, {Day: start.AddDate(0, 0, 20), Calls: 10_000}}
	})
	now := time.Date(2026, 3, 20, 0, 30, 0, 0, time.UTC)
	rep, err := b.Run(context.Background(), now)
	if err != nil || rep.Unpriced != 1 || len(rep.Due) != 1 || rep.Due[0] != (billing.Amount{Currency: "usd", Amount: 60 * 50}) {
		t.Fatalf("dry run: unpriced %d, due %v, %v; want the bad subscription unpriced and 30.00 USD due", rep.Unpriced, rep.Due, err)
	}
	pv, err := b.Preview(context.Background(), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), now)
	if err != nil {
		t.Fatalf("Preview: %v; want the priced periods and the unpriced one reported", err)
	}
	if len(pv.Items) != 2 || pv.Items[0].UserID != good || pv.Items[0].Next == nil || pv.Items[0].Next.Amount != 60*50 ||
		pv.Items[0].Unpriced != "" || pv.Items[1].UserID != bad || pv.Items[1].Next != nil || pv.Items[1].Unpriced == "" {
		t.Errorf("preview items = %+v", pv.Items)
	}
	if len(pv.Totals) != 1 || pv.Totals[0].Currency != rep.Due[0].Currency || pv.Totals[0].Next != rep.Due[0].Amount {
		t.Errorf("preview totals = %+v; want what the run bills, %v", pv.Totals, rep.Due)
	}
}

// TestPreviewAndRunSumsSaturate: the totals of a preview and what a run
// says is due add the amounts of many users; each user's amount fits in
// int64 (up to 2.68 × 10^18 calls a period at up to 3 minor units a call),
// but their sum need not, and it saturates at the int64 maximum as every
// other sum does. It wrapped to a negative amount before.
func TestPreviewAndRunSumsSaturate(t *testing.T) {
	const calls = 2_500_000_000_000_000_000 // 2.5 × 10^18, within a period's bound
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dear := usagetest.ProPlan.Apply(usage.Overrides{OverageUnitPrice: ptr(int64(3000))}) // 3 a call
	var subs []*billing.BillableSubscription
	for _, u := range []string{"20000000-0000-4000-8000-000000000001", "20000000-0000-4000-8000-000000000002"} {
		subs = append(subs, &billing.BillableSubscription{
			Subscription: usage.Subscription{UserID: u, PlanID: dear.ID, Effective: dear, PeriodAnchor: anchor},
			History:      []usage.Terms{{From: anchor, PlanID: dear.ID, Effective: dear, Change: usage.ChangeStart}}})
	}
	b := februaryBilling(t, subs, func(start time.Time) []usage.DayCalls { return []usage.DayCalls{{Day: start, Calls: calls}} })
	now := time.Date(2026, 3, 20, 0, 30, 0, 0, time.UTC)
	rep, err := b.Run(context.Background(), now)
	pending := 0
	for _, r := range rep.Planned {
		if r.Status == billing.LedgerPending {
			pending++
		}
	}
	if err != nil || rep.Unpriced != 0 || pending != 2 {
		t.Fatalf("dry run: %d pending rows, unpriced %d, %v; want both users' February", pending, rep.Unpriced, err)
	}
	if want := []billing.Amount{{Currency: "usd", Amount: math.MaxInt64}}; !slices.Equal(rep.Due, want) {
		t.Errorf("dry run due = %v; want %v (saturated)", rep.Due, want)
	}
	pv, err := b.Preview(context.Background(), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(pv.Items) != 2 || pv.Items[0].Charge.Amount <= 0 || pv.Items[0].Next == nil {
		t.Fatalf("preview items = %+v; want two priced periods", pv.Items)
	}
	want := billing.PreviewTotal{Currency: "usd", Charge: math.MaxInt64, Next: math.MaxInt64}
	if len(pv.Totals) != 1 || pv.Totals[0] != want {
		t.Errorf("preview totals = %+v; want %+v (saturated)", pv.Totals, want)
	}
}

// februaryBilling is a dry billing over subs whose periods that start in
// February hold days(start)'s calls, and the others none.
func februaryBilling(t *testing.T, subs []*billing.BillableSubscription, days func(start time.Time) []usage.DayCalls) *billing.Billing {
	t.Helper()
	ledger := &mock.LedgerStore{
		BillableSubscriptionsFn: func(context.Context) ([]*billing.BillableSubscription, error) { return subs, nil },
		PeriodStatesFn: func(_ context.Context, periods []billing.UserPeriod) ([]billing.PeriodState, error) {
			out := make([]billing.PeriodState, len(periods))
			for i, p := range periods {
				out[i] = billing.PeriodState{UserPeriod: p}
				if p.Period.Start.Month() == time.February {
					out[i].Days = days(p.Period.Start)
				}
			}
			return out, nil
		},
		OpenRunFn:  func(context.Context, *billing.RunReport, time.Time, time.Time) (int64, error) { return 1, nil },
		CloseRunFn: func(context.Context, int64, *billing.RunReport, time.Time, error) error { return nil },
	}
	b, err := billing.New(billing.Config{Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
