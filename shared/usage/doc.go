// Package usage is the domain of the metering system: usage events and their
// validation, plans, subscriptions and billing periods, overage arithmetic,
// the application error codes, the small interfaces the functions use to
// reach storage, queues and billing, and the services over them: the
// aggregation run (RollupJob over a RollupStore), the limit decision
// (Limiter over a RateStore) and the billing run (Billing over a
// LedgerStore and a Biller). It imports no AWS, database or Stripe
// package; the adapters in the sibling packages import it.
//
// Example prices a period: the period holding an instant (PeriodAt),
// its segments under the terms history (Segments), the lines priced with
// the calls of each day (PriceLines) and their sum (NewPeriodCharge).
package usage
