// Package postgres is the repository: every SQL statement of the system,
// over a pgx v5 pool configured for Lambda (built at init, small, and able
// to run behind RDS Proxy without session state), plus the embedded
// migrations and FormatError, the one place where driver errors become
// application error codes.
//
// It holds statements, one file per concern (events, rollup and jobs, rate
// limits, subscriptions, ledger, API keys, analytics), and no workflow: the
// workflows (rollup.Job, limits.Limiter, billing.Billing, record.Recorder)
// order them through their store interfaces (rollup.Store,
// limits.RateStore, billing.LedgerStore, record.EventStore), which the
// stores here implement.
//
// Example opens the pool and reads through a store; the example of
// NewRateStore builds the limiter and a read budget of package limits
// over it.
package postgres
