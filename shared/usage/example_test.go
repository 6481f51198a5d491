package usage_test

import (
	"fmt"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Example prices a billing period: the period holding an instant, its
// segments under the subscription's terms history, the lines priced with
// the calls of each day, and the period's charge; and the same amount
// straight from the billable calls.
func Example() {
	plan := usage.Plan{ID: "pro", IncludedCalls: 100_000, PriceModel: usage.PricePackage,
		OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
	anchor := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 3, 20, 9, 30, 0, 0, time.UTC)

	p := usage.PeriodAt(anchor, now) // the billing period holding now
	history := []usage.Terms{{From: anchor, PlanID: plan.ID, Effective: plan, Change: usage.ChangeStart}}
	segs := usage.Segments(p, history) // its parts under one set of terms each
	days := []usage.DayCalls{
		{Day: p.Start, Calls: 60_000},
		{Day: p.Start.AddDate(0, 0, 3), Calls: 41_001},
	}
	lines, err := usage.PriceLines(p, segs, days, nil, p.End)
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := usage.NewPeriodCharge(lines)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("period %s to %s: %d calls, %d billable, %d %s\n",
		p.Start.Format(time.DateOnly), p.End.Format(time.DateOnly), c.Used, c.Billable, c.Amount, c.Currency)

	pc, err := plan.Price().Charge(c.Billable) // the same, from the billable calls
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d billable calls: %d packages, %d\n", pc.Calls, pc.Units, pc.Amount)
	// Output:
	// period 2026-03-15 to 2026-04-15: 101001 calls, 1001 billable, 100 usd
	// 1001 billable calls: 2 packages, 100
}
