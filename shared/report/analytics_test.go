package report_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// TestSummarizeUnpriceableTerms: terms that cannot be priced (a plan row
// written by SQL with a price Stripe cannot charge as stated, or beyond
// the bounds of a price) are no fault of the caller of GET /v1/usage: the
// summary is CodeConflict saying the period cannot be priced and why, not
// CodeInvalid naming a field the caller never sent (400).
func TestSummarizeUnpriceableTerms(t *testing.T) {
	anchor := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	pro := usage.Plan{ID: usage.PlanPro, Name: "Pro", IncludedCalls: 100_000, PriceModel: usage.PricePackage,
		OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd", RatePerSecond: 50, Burst: 100}
	tests := []struct {
		name   string
		change func(p *usage.Plan)
		reason string
	}{
		{"KWD off its step", func(p *usage.Plan) { p.Currency, p.OverageUnitPrice = "kwd", 15 }, "overage_unit_price: must be a multiple of 10 in KWD"},
		{"dearer than the bound", func(p *usage.Plan) { p.OverageUnitPrice = usage.MaxCallPrice*1000 + 1 }, "overage_unit_price: must be at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := pro
			tt.change(&plan)
			sub := &usage.Subscription{UserID: "3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607", PlanID: plan.ID, Effective: plan, PeriodAnchor: anchor}
			history := []usage.Terms{{From: anchor, PlanID: plan.ID, Effective: plan, Change: usage.ChangeStart}}
			days := []usage.DayCalls{{Day: anchor, Calls: 150_000}}
			_, err := report.Summarize(sub, history, days, nil, time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC))
			if usage.ErrorCode(err) != usage.CodeConflict || usage.ErrorField(err) != "" ||
				!strings.Contains(usage.ErrorMessage(err), "cannot be priced") || !strings.Contains(usage.ErrorMessage(err), tt.reason) {
				t.Errorf("Summarize = %v (code %s, field %q); want CodeConflict saying the period cannot be priced: %s",
					err, usage.ErrorCode(err), usage.ErrorField(err), tt.reason)
			}
		})
	}
}
