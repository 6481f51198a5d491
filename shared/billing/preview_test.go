package billing_test

import (
	"context"
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
	ledger := &mock.LedgerStore{
		BillableSubscriptionsFn: func(context.Context) ([]*billing.BillableSubscription, error) { return subs, nil },
		PeriodStatesFn: func(_ context.Context, periods []billing.UserPeriod) ([]billing.PeriodState, error) {
			out := make([]billing.PeriodState, len(periods))
			for i, p := range periods {
				out[i] = billing.PeriodState{UserPeriod: p}
				if p.Period.Start.Month() == time.February {
					out[i].Days = []usage.DayCalls{{Day: p.Period.Start, Calls: 150_000}, {Day: p.Period.Start.AddDate(0, 0, 20), Calls: 10_000}}
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
