package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// RateLimiter runs the limiter's statements: one GCRA step
// (rate_limit_take) and the combined cold-path check (limit_check), each
// one round trip. Times come from the caller; the database clock is never
// read.
type RateLimiter struct{ db *DB }

// NewRateLimiter returns a limiter over db.
func NewRateLimiter(db *DB) *RateLimiter { return &RateLimiter{db: db} }

// Take runs one GCRA step on key at now for a call of cost, with the
// emission interval and burst of g. It is atomic under concurrency: the
// key's row lock orders concurrent steps. Errors are CodeUnavailable when
// the database cannot be reached.
func (l *RateLimiter) Take(ctx context.Context, key string, now time.Time, g usage.GCRA, cost int64) (usage.RateResult, error) {
	var (
		r                usage.RateResult
		resetUS, retryUS int64
	)
	err := l.db.Pool.QueryRow(ctx, `SELECT allowed, remaining, reset_us, retry_us FROM rate_limit_take($1, $2, $3, $4, $5)`,
		key, now.UnixMicro(), g.IntervalMicros, g.Burst, cost).Scan(&r.Allowed, &r.Remaining, &resetUS, &retryUS)
	if err != nil {
		return usage.RateResult{}, FormatError(fmt.Errorf("rate limit %s: %w", key, err))
	}
	r.Reset = time.Duration(resetUS) * time.Microsecond
	r.RetryAfter = time.Duration(retryUS) * time.Microsecond
	return r, nil
}

// LimitCheck is the answer of the combined check.
type LimitCheck struct {
	// Plan is the user's effective plan (overrides applied); ID and the
	// limits are set, Name is not.
	Plan   usage.Plan
	GCRA   usage.GCRA
	Period usage.Period
	// Used is the period's calls from the live counters, at least the
	// knownUsed passed in.
	Used int64
	// Alerts are the thresholds (percent) this call claimed: the caller
	// must emit them; no other caller will.
	Alerts []int
	// Took reports whether the GCRA step ran; it does not when a hard
	// quota refuses the call first.
	Took bool
	Rate usage.RateResult
}

// Check reads the user's effective plan, billing period and period usage,
// claims the newly crossed alert thresholds, and runs one GCRA step on key
// (unless the hard quota refuses the call), all in one round trip.
// knownUsed is a lower bound of the period's usage the caller already
// holds (0 when none). Errors are CodeUnavailable when the database cannot
// be reached.
func (l *RateLimiter) Check(ctx context.Context, userID, key string, now time.Time, cost, knownUsed int64, thresholds []int) (*LimitCheck, error) {
	if !usage.IsUUID(userID) {
		return nil, usage.FieldErrorf("user_id", "must be a UUID")
	}
	var (
		c                           LimitCheck
		start, end                  time.Time
		alerts                      []int32
		allowed                     *bool
		remaining, resetUS, retryUS *int64
	)
	th := make([]int32, len(thresholds))
	for i, t := range thresholds {
		th[i] = int32(t)
	}
	err := l.db.Pool.QueryRow(ctx, `SELECT plan_id, included_calls, hard_limit, rate_per_second, burst, interval_us,
			overage_unit_size, overage_unit_price, currency, period_start, period_end, used, alerts, took,
			allowed, remaining, reset_us, retry_us
		FROM limit_check($1, $2, $3, $4, $5, $6)`, userID, key, now, cost, knownUsed, th).
		Scan(&c.Plan.ID, &c.Plan.IncludedCalls, &c.Plan.HardLimit, &c.Plan.RatePerSecond, &c.Plan.Burst,
			&c.GCRA.IntervalMicros, &c.Plan.OverageUnitSize, &c.Plan.OverageUnitPrice, &c.Plan.Currency,
			&start, &end, &c.Used, &alerts, &c.Took, &allowed, &remaining, &resetUS, &retryUS)
	if err != nil {
		return nil, FormatError(fmt.Errorf("limit check of %s: %w", userID, err))
	}
	c.GCRA.Burst = int64(c.Plan.Burst)
	c.Period = usage.Period{Start: start.UTC(), End: end.UTC()}
	for _, a := range alerts {
		c.Alerts = append(c.Alerts, int(a))
	}
	if c.Took {
		c.Rate = usage.RateResult{Allowed: *allowed, Remaining: *remaining,
			Reset: time.Duration(*resetUS) * time.Microsecond, RetryAfter: time.Duration(*retryUS) * time.Microsecond}
	}
	return &c, nil
}
