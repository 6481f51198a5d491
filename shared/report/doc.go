// Package report holds the analytics read models and their ports: a
// user's usage summary for the period (Summarize: used, remaining,
// overage to date, the projection, the earlier periods' bills), the daily
// series and breakdowns, and the admin reports (summary, top users, plan
// changes, rejected events, the ledger's pages).
//
// It imports the vocabulary (shared/usage) and the billing workflow it
// builds on (shared/billing, for the ledger's rows); shared/postgres
// implements its UsageReader and AdminStore.
package report
