package notify_test

import (
	"fmt"
	"time"

	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

// Example_thresholds turns a pro user's rules into the calls at which
// each raises its event in the current period: the plan's 80 % and 100 %
// of its included calls, and the user's own "overage of 5 dollars".
func Example_thresholds() {
	pro := usage.Plan{ID: "pro", IncludedCalls: 100_000, PriceModel: usage.PricePackage,
		OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
	user := "0190a4c4-52a4-7000-8000-000000000001"
	sub := &usage.Subscription{UserID: user, PlanID: "pro", Effective: pro, PeriodAnchor: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rules := []notify.Rule{
		{ID: "r80", PlanID: "pro", Kind: notify.KindPercent, Value: 80, Enabled: true},
		{ID: "r100", PlanID: "pro", Kind: notify.KindPercent, Value: 100, Enabled: true},
		{ID: "own", UserID: user, Kind: notify.KindOverage, Value: 500, Enabled: true},
	}
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	p := notify.PeriodOfDay(sub.PeriodAnchor, now)
	for _, th := range notify.Thresholds(sub, rules, p.Period, now) {
		fmt.Printf("%-24s %-4s at %s calls\n", th.EventType, th.RuleID, usage.FormatCount(th.Calls))
	}
	// Output:
	// usage.threshold.reached  r80  at 80,000 calls
	// usage.threshold.reached  r100 at 100,000 calls
	// usage.overage.reached    own  at 109,001 calls
}
