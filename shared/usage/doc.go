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
//	plan := usage.Plan{ID: "pro", IncludedCalls: 100_000, PriceModel: usage.PricePackage,
//		OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
//	p := usage.PeriodAt(anchor, now)                     // the billing period holding now
//	segs := usage.Segments(p, history)                   // its parts under one set of terms each
//	lines, err := usage.PriceLines(p, segs, days, nil, p.End)
//	c, err := usage.NewPeriodCharge(lines)               // 101,001 calls on pro alone: 2 packages, 100 cents
//	c, err := plan.Price().Charge(1_001)                 // the same, from the billable calls
package usage
