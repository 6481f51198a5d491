// Package usage is the vocabulary of the metering system: usage events,
// their bounds and normalisation, plans, subscriptions, terms and billing
// periods, prices and overage arithmetic, the limit decision, identities
// and the application error codes. It imports no package of this module,
// nor any AWS, database or Stripe package. The workflows over it are
// packages of their own (shared/record, shared/rollup, shared/limits,
// shared/billing, shared/report, shared/notify); the adapters in the
// sibling packages import it.
//
// Example prices a period: the period holding an instant (PeriodAt),
// its segments under the terms history (Segments), the lines priced with
// the calls of each day (PriceLines) and their sum (NewPeriodCharge).
package usage
