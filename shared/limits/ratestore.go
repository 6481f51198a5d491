package limits

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// LimitRequest is one cold limit check: the call, what the caller already
// knows of the period's usage, and the terms it decides under. The store
// computes none of the terms: the period comes from PeriodAt, the limits
// from Plan.Apply, the interval from IntervalMicros.
type LimitRequest struct {
	UserID string
	// Key is the rate limiter key of the caller (per API key, or per
	// user).
	Key  string
	Now  time.Time
	Cost int64
	// KnownUsed is a lower bound of the period's usage the caller already
	// holds (0 when none).
	KnownUsed int64
	Period    usage.Period
	Included  int64
	Hard      bool
	GCRA      GCRA
	// Version is the Subscription.Version the terms were taken from.
	Version string
}

// LimitCheck is the answer of a cold limit check.
type LimitCheck struct {
	// Version is the subscription's version now. When it is not the
	// request's, the terms changed: nothing was done (no GCRA step) and
	// the other fields are zero.
	Version string
	// Used is the period's calls from the live counters, at least the
	// request's KnownUsed.
	Used int64
	// Took reports whether the GCRA step ran; it does not when a hard
	// quota refuses the call first.
	Took bool
	Rate RateResult
}

// RateStore holds the limiter's state: the GCRA step per key and the
// period's usage per user, each one round trip. Times come
// from the caller. Errors are CodeUnavailable when the store cannot be
// reached.
type RateStore interface {
	// Subscription returns the user's subscription with its effective plan
	// and Version; a user without one is on the free plan anchored at
	// DefaultPeriodAnchor. Returns CodeInvalid when userID is not a UUID.
	Subscription(ctx context.Context, userID string) (*usage.Subscription, error)
	// Take runs one GCRA step on key at now for a call of cost, on the
	// key's state as g reads it (GCRA.Rescale, when the state was written
	// under another limit). Concurrent steps on one key are serialised:
	// none is lost.
	Take(ctx context.Context, key string, now time.Time, g GCRA, cost int64) (RateResult, error)
	// Check reads the subscription's version and, when it is r.Version,
	// sums the period's usage, applies the hard quota and runs one GCRA
	// step (unless the quota refused the call), in one round trip. Returns
	// CodeInvalid when r.UserID is not a UUID.
	Check(ctx context.Context, r LimitRequest) (*LimitCheck, error)
}
