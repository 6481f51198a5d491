package report_test

import (
	"fmt"
	"time"

	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// ExampleSummarize is GET /v1/usage's arithmetic for a pro user ten days
// into its period: the calls so far, what is left of the included ones,
// the overage to date and the overage at the period's end at this rate.
func ExampleSummarize() {
	pro := usage.Plan{ID: usage.PlanPro, IncludedCalls: 100_000, PriceModel: usage.PricePackage,
		OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd", RatePerSecond: 50, Burst: 100}
	anchor := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	sub := &usage.Subscription{UserID: "3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607", PlanID: pro.ID, Effective: pro, PeriodAnchor: anchor}
	history := []usage.Terms{{From: anchor, PlanID: pro.ID, Effective: pro, Change: usage.ChangeStart}}
	days := []usage.DayCalls{{Day: anchor, Calls: 70_000}, {Day: anchor.AddDate(0, 0, 5), Calls: 50_000}}
	now := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)

	s, err := report.Summarize(sub, history, days, nil, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("used %d of %d, %d left\n", s.Used, s.Included, s.Remaining)
	fmt.Printf("overage to date %d %s, projected %d %s\n", s.OverageToDate.Amount, s.OverageToDate.Currency,
		s.Projected.Amount, s.Projected.Currency)
	// Output:
	// used 120000 of 100000, 0 left
	// overage to date 1000 usd, projected 13600 usd
}
