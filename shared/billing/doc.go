// Package billing closes billing periods and bills their overage exactly
// once: which periods a run considers (DuePeriods), the ledger rows it
// drafts for each (Billing.DraftPeriod: one per priced line, with an id
// and an idempotency key derived from user, period and line), the run
// over a LedgerStore and a Biller (claim, send, adopt what the provider
// already holds, retry), previews that write nothing, and the run's
// report.
//
// It imports the vocabulary (shared/usage) and nothing else of this
// module; shared/postgres implements its LedgerStore, shared/stripebill
// its Biller. Its tests run it over those, against PostgreSQL and
// stripe-mock (or the stripetest fake): the exactly-once properties, crashes
// and restores, provider errors, plan changes, and BenchmarkOverageRun.
package billing
