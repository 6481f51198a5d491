// Package postgres is the repository: every SQL statement of the system,
// over a pgx v5 pool configured for Lambda (built at init, small, and able
// to run behind RDS Proxy without session state), plus the embedded
// migrations and FormatError, the one place where driver errors become
// application error codes.
//
// It holds statements, one file per concern (events, rollup and jobs, rate
// limits, subscriptions, ledger, API keys, analytics), and no workflow: the
// services of package usage (RollupJob, Limiter, Billing) order them
// through their store interfaces (rollup.RollupStore, limits.RateStore,
// billing.LedgerStore), which the stores here implement.
//
// Example opens the pool and reads through a store; the example of
// NewRateLimiter builds the limiter and a read budget of package usage
// over it.
package postgres
