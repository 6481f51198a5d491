package usagetest

import "github.com/nexus/usage/shared/usage"

// The plans' terms the tests of billing and terms price with: free (hard
// quota, nothing billed), pro and enterprise (packages of 1,000 calls, in
// cents of usd).
var (
	FreePlan = usage.Plan{ID: usage.PlanFree, Name: "Free", IncludedCalls: 1000, HardLimit: true, RatePerSecond: 2, Burst: 10,
		PriceModel: usage.PricePackage, OverageUnitSize: 1000, Currency: "usd"}
	ProPlan = usage.Plan{ID: usage.PlanPro, Name: "Pro", IncludedCalls: 100_000, RatePerSecond: 50, Burst: 100,
		PriceModel: usage.PricePackage, OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
	EnterprisePlan = usage.Plan{ID: usage.PlanEnterprise, Name: "Enterprise", IncludedCalls: 10_000_000, RatePerSecond: 500, Burst: 1000,
		PriceModel: usage.PricePackage, OverageUnitSize: 1000, OverageUnitPrice: 20, Currency: "usd"}
)
