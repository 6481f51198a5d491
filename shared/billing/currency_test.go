package billing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/mock"
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

// TestRunRowOffItsCurrencyStep: a pending row whose amount Stripe cannot
// take in its currency (written before prices kept to the steps, or by
// hand) is failed with the reason in our words, and never sent: Stripe
// would refuse it, and the row would fail with Stripe's text.
func TestRunRowOffItsCurrencyStep(t *testing.T) {
	const user = "20000000-0000-4000-8000-000000000001"
	feb := usage.Period{Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name     string
		amount   int64
		currency string
		reason   string // "" sent
	}{
		{"KWD in steps of 10", 770, "kwd", ""},
		{"KWD off its step", 765, "kwd", "0.765 KWD is not an amount Stripe charges: KWD in multiples of 0.010 KWD"},
		{"ISK in whole krónur", 500, "isk", ""},
		{"ISK in hundredths", 550, "isk", "5.50 ISK is not an amount Stripe charges: ISK in multiples of 1.00 ISK"},
		{"JPY in any yen", 765, "jpy", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := &billing.LedgerEntry{ID: billing.LedgerID(user, feb.Start, 0), UserID: user, Period: feb, Amount: tt.amount,
				Currency: tt.currency, Status: billing.LedgerPending, IdempotencyKey: billing.IdempotencyKey(user, feb.Start, 0),
				Attempts: 1, CustomerID: "cus_1"}
			claimed := false
			var failed []string
			var sent int
			ledger := &mock.LedgerStore{
				BillableSubscriptionsFn: func(context.Context) ([]*billing.BillableSubscription, error) { return nil, nil },
				PromoteDueTermsFn:       func(context.Context, time.Time) (int, error) { return 0, nil },
				InsertLedgerEntriesFn: func(context.Context, []*billing.LedgerEntry, []billing.Progress, time.Time) (int, error) {
					return 0, nil
				},
				ClaimPendingFn: func(context.Context, billing.ClaimRequest) ([]*billing.LedgerEntry, error) {
					if claimed {
						return nil, nil
					}
					claimed = true
					return []*billing.LedgerEntry{row}, nil
				},
				MarkBilledFn: func(context.Context, []billing.Billed, time.Time) error { return nil },
				MarkFailedFn: func(_ context.Context, _ string, reason string, _ time.Time) error {
					failed = append(failed, reason)
					return nil
				},
				OpenRunFn:  func(context.Context, *billing.RunReport, time.Time, time.Time) (int64, error) { return 1, nil },
				CloseRunFn: func(context.Context, int64, *billing.RunReport, time.Time, error) error { return nil },
			}
			biller := &mock.Biller{CreateInvoiceItemFn: func(context.Context, *billing.InvoiceItem, string) (string, error) {
				sent++
				return "ii_1", nil
			}}
			b, err := billing.New(billing.Config{Ledger: ledger, Biller: biller})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := b.Run(context.Background(), time.Date(2026, 3, 20, 0, 30, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			if tt.reason == "" {
				if sent != 1 || rep.Billed != 1 || len(failed) != 0 {
					t.Errorf("sent %d, billed %d, failed %q; want the row billed", sent, rep.Billed, failed)
				}
				return
			}
			if sent != 0 || rep.Failed != 1 || len(failed) != 1 || !strings.Contains(failed[0], tt.reason) {
				t.Errorf("sent %d, failed %d %q; want the row failed, not sent, with %q", sent, rep.Failed, failed, tt.reason)
			}
		})
	}
}
