package usage

import (
	"context"
	"time"
)

// DecisionTimeout is how long a request's decision (authenticating its
// caller, its limits) may wait for the database before it is answered
// CodeUnavailable (a 503, failing closed): the limiter statements' own
// timeout (1 s) with room for a connection. A decision stuck behind a
// database that does not answer (a partition, a failover; a pooled
// connection's read then waits out TCP's retransmissions, about 15
// minutes) would otherwise hold its request, and the requests waiting for
// the same key or user behind it, for as long as the caller's context
// allows, which outside Lambda may be for ever.
const DecisionTimeout = 2 * time.Second

// Decision is the answer to "may this caller make this call now": the rate
// limit (GCRA, per API key or per user) and the billing period's quota,
// combined. Reason is CodeRateLimited or CodeQuotaExceeded when the call is
// refused.
type Decision struct {
	Allowed bool
	Reason  string
	// Limit is the rate limit's burst: the most calls admitted at once.
	Limit int64
	// Remaining is how many more calls of cost 1 would be admitted now.
	Remaining int64
	// Reset is how long until the limiter is back to its full burst.
	Reset time.Duration
	// RetryAfter is how long a refused caller should wait; 0 when allowed.
	RetryAfter time.Duration
	// RatePerSecond is the sustained rate of the limit.
	RatePerSecond float64
	Quota         QuotaStatus
}

// QuotaStatus is the billing period's included calls against usage.
type QuotaStatus struct {
	Period    Period
	Included  int64
	Used      int64
	Remaining int64
	// Hard quotas refuse calls at the quota; soft ones bill the excess.
	Hard bool
}

// LimitChecker decides whether a caller may make a call of the given cost.
type LimitChecker interface {
	// Check records the attempt against the rate limit and reads the quota.
	// A refusal is a Decision with Allowed false, not an error; errors are
	// CodeUnavailable when the limiter's state cannot be reached.
	Check(ctx context.Context, id Identity, cost int64) (Decision, error)
	// CheckRate records the attempt against the rate limit alone: for
	// reports of calls already served (POST /v1/events). The quota guards
	// serving; a call that was served is recorded whatever the quota says
	// by now, or a user at its hard quota would have its last calls free.
	// Errors as Check's.
	CheckRate(ctx context.Context, id Identity, cost int64) (Decision, error)
}
