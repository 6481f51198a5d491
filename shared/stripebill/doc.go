// Package stripebill is the Stripe adapter of billing.Biller: overage becomes
// an invoice item on the customer's subscription, created with the ledger
// row's idempotency key and metadata naming the row, so that a retry never
// charges twice and a row older than Stripe's key window can be found again.
// Requests go through a client-side rate limiter, and *stripe.Error is
// turned into usage error codes in one function (convertError).
//
// Example sends a ledger row with its key and tells a retryable failure.
package stripebill
