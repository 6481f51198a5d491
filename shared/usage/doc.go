// Package usage is the domain of the metering system: usage events and their
// validation, plans, subscriptions and billing periods, overage arithmetic,
// the application error codes, the small interfaces the functions use to
// reach storage, queues and billing, and the services over them: the
// aggregation run (RollupJob over a RollupStore), the limit decision
// (Limiter over a RateStore) and the billing run (Billing over a
// LedgerStore and a Biller). It imports no AWS, database or Stripe
// package; the adapters in the sibling packages import it.
//
// Pricing a period, for example:
//
//	plan := usage.Plan{ID: "pro", IncludedCalls: 100_000, OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
//	p := usage.PeriodAt(anchor, now)        // the billing period holding now
//	o := usage.ComputeOverage(plan, 101_001) // 2 units, 100 cents
//	_ = p
//	_ = o
package usage
