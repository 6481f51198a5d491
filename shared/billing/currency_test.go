package billing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/usage"
	"github.com/nexus/usage/shared/usage/usagetest"
)

// TestRunPriceOffItsCurrencyStep: a plan written by SQL (no route checks
// it) with a price Stripe could not charge as stated, 0.015 KWD per 1,000
// calls where Stripe takes KWD in steps of 0.010, is not priced: the run
// reports the subscription unpriced, saying why, and plans no row for it.
// It planned a row of 0.765 KWD for 51 packages before, which Stripe
// refuses.
func TestRunPriceOffItsCurrencyStep(t *testing.T) {
	const user = "20000000-0000-4000-8000-000000000001"
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kwd := usagetest.ProPlan
	kwd.Currency, kwd.OverageUnitPrice = "kwd", 15
	subs := []*billing.BillableSubscription{{Subscription: usage.Subscription{UserID: user, PlanID: kwd.ID, Effective: kwd, PeriodAnchor: anchor},
		History: []usage.Terms{{From: anchor, PlanID: kwd.ID, Effective: kwd, Change: usage.ChangeStart}}}}
	b := februaryBilling(t, subs, func(start time.Time) []usage.DayCalls { return []usage.DayCalls{{Day: start, Calls: 150_500}} })
	rep, err := b.Run(context.Background(), time.Date(2026, 3, 20, 0, 30, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Planned {
		if r.Status == billing.LedgerPending {
			t.Errorf("planned %s %d; want no row for a price Stripe cannot charge", r.Currency, r.Amount)
		}
	}
	if rep.Unpriced != 1 || len(rep.UnpricedSubscriptions) != 1 ||
		!strings.Contains(rep.UnpricedSubscriptions[0].Reason, "overage_unit_price: must be a multiple of 10 in KWD") {
		t.Errorf("unpriced = %d %+v; want the subscription, naming the price and the step", rep.Unpriced, rep.UnpricedSubscriptions)
	}
}
