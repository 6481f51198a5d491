package billing_test

import "github.com/nexus/usage/shared/usage"

// The plans' terms the billing tests bill under.
var (
	freePlan = usage.Plan{ID: usage.PlanFree, Name: "Free", IncludedCalls: 1000, HardLimit: true, RatePerSecond: 2, Burst: 10,
		PriceModel: usage.PricePackage, OverageUnitSize: 1000, Currency: "usd"}
	proTerms = usage.Plan{ID: usage.PlanPro, Name: "Pro", IncludedCalls: 100_000, RatePerSecond: 50, Burst: 100,
		PriceModel: usage.PricePackage, OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
	entTerms = usage.Plan{ID: usage.PlanEnterprise, Name: "Enterprise", IncludedCalls: 10_000_000, RatePerSecond: 500, Burst: 1000,
		PriceModel: usage.PricePackage, OverageUnitSize: 1000, OverageUnitPrice: 20, Currency: "usd"}
)

func ptr[T any](v T) *T { return &v }
