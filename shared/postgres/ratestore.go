package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/usage"
)

// RateStore runs the limiter's statements (limits.RateStore): the
// user's subscription, one GCRA step (rate_limit_take) and the combined
// cold-path check (limit_check), each one round trip. Times and terms come
// from the caller; the database clock is never read.
type RateStore struct{ db *DB }

// NewRateStore returns a limiter over db.
func NewRateStore(db *DB) *RateStore { return &RateStore{db: db} }

var _ limits.RateStore = (*RateStore)(nil)

// Subscription implements limits.RateStore with SubscriptionStore's read.
func (l *RateStore) Subscription(ctx context.Context, userID string) (*usage.Subscription, error) {
	return NewSubscriptionStore(l.db).Subscription(ctx, userID)
}

// Take implements limits.RateStore: one GCRA step on key at now for a call
// of cost, with the emission interval and burst of g. It is atomic under
// concurrency: the key's row lock orders concurrent steps.
func (l *RateStore) Take(ctx context.Context, key string, now time.Time, g limits.GCRA, cost int64) (limits.RateResult, error) {
	var (
		r                limits.RateResult
		resetUS, retryUS int64
	)
	err := l.db.with(limiterWork).QueryRow(ctx, `SELECT allowed, remaining, reset_us, retry_us FROM rate_limit_take($1, $2, $3, $4, $5)`,
		key, now.UnixMicro(), g.IntervalMicros, g.Burst, cost).Scan(&r.Allowed, &r.Remaining, &resetUS, &retryUS)
	if err != nil {
		return limits.RateResult{}, FormatError(fmt.Errorf("rate limit %s: %w", key, err))
	}
	r.Reset = time.Duration(resetUS) * time.Microsecond
	r.RetryAfter = time.Duration(retryUS) * time.Microsecond
	return r, nil
}

// Check implements limits.RateStore with limit_check.
func (l *RateStore) Check(ctx context.Context, r limits.LimitRequest) (*limits.LimitCheck, error) {
	if !usage.IsUUID(r.UserID) {
		return nil, usage.FieldErrorf("user_id", "must be a UUID")
	}
	var (
		c                           limits.LimitCheck
		used                        *int64
		allowed                     *bool
		remaining, resetUS, retryUS *int64
	)
	// No alert thresholds ($6 NULL): usage alerts are raised where usage is
	// counted (record_usage_counts), not by the limiter.
	err := l.db.with(limiterWork).QueryRow(ctx, `SELECT version, used, took, allowed, remaining, reset_us, retry_us
		FROM limit_check($1, $2, $3, $4, $5, NULL::integer[], $6, $7, $8, $9, $10, $11, $12)`,
		r.UserID, r.Key, r.Now, r.Cost, r.KnownUsed, r.Period.Start, r.Period.End,
		r.Included, r.Hard, r.GCRA.IntervalMicros, r.GCRA.Burst, r.Version).
		Scan(&c.Version, &used, &c.Took, &allowed, &remaining, &resetUS, &retryUS)
	if err != nil {
		return nil, FormatError(fmt.Errorf("limit check of %s: %w", r.UserID, err))
	}
	if c.Version != r.Version {
		return &limits.LimitCheck{Version: c.Version}, nil
	}
	c.Used = *used
	if c.Took {
		c.Rate = limits.RateResult{Allowed: *allowed, Remaining: *remaining,
			Reset: time.Duration(*resetUS) * time.Microsecond, RetryAfter: time.Duration(*retryUS) * time.Microsecond}
	}
	return &c, nil
}
