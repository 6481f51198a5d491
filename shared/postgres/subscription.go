package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/usage"
)

// SubscriptionStore keeps plans and subscriptions.
type SubscriptionStore struct{ db *DB }

// NewSubscriptionStore returns a store over db.
func NewSubscriptionStore(db *DB) *SubscriptionStore { return &SubscriptionStore{db: db} }

const planColumns = `p.plan_id, p.name, p.included_calls, p.hard_limit, p.rate_per_second, p.burst,
	p.overage_unit_size, p.overage_unit_price, p.currency`

func scanPlan(row pgx.Row, p *usage.Plan, extra ...any) error {
	return row.Scan(append([]any{&p.ID, &p.Name, &p.IncludedCalls, &p.HardLimit, &p.RatePerSecond, &p.Burst,
		&p.OverageUnitSize, &p.OverageUnitPrice, &p.Currency}, extra...)...)
}

// subscriptionColumns reads a plan p and a subscription s of it, where s
// may be the NULL side of a LEFT JOIN (no subscription): the plan, the raw
// overrides, the Stripe ids, the anchor and the terms' version
// (terms_version, migration 00008).
const subscriptionColumns = planColumns + `,
	s.user_id IS NOT NULL, s.included_calls, s.hard_limit, s.rate_per_second, s.burst,
	s.overage_unit_size, s.overage_unit_price, s.currency,
	coalesce(s.stripe_customer_id, ''), coalesce(s.stripe_subscription_id, ''), s.period_anchor,
	terms_version(p.version, s.version)`

// scanSubscription scans subscriptionColumns, then extra, into sub. The
// overrides are merged into the plan by Plan.Apply only; without a
// subscription the user is on the plan read (free) at
// usage.DefaultPeriodAnchor.
func scanSubscription(row pgx.Row, sub *usage.Subscription, extra ...any) error {
	var (
		plan   usage.Plan
		found  bool
		o      usage.Overrides
		anchor *time.Time
	)
	err := scanPlan(row, &plan, append([]any{&found, &o.IncludedCalls, &o.HardLimit, &o.RatePerSecond, &o.Burst,
		&o.OverageUnitSize, &o.OverageUnitPrice, &o.Currency,
		&sub.StripeCustomerID, &sub.StripeSubscriptionID, &anchor, &sub.Version}, extra...)...)
	if err != nil {
		return err
	}
	sub.PlanID, sub.Effective, sub.PeriodAnchor = plan.ID, plan, usage.DefaultPeriodAnchor
	if found {
		sub.Overrides = o
		sub.Effective = plan.Apply(o)
		sub.PeriodAnchor = anchor.UTC()
	}
	return nil
}

// Subscription returns the user's subscription, defaulting to free at
// usage.DefaultPeriodAnchor, with its Version.
func (s *SubscriptionStore) Subscription(ctx context.Context, userID string) (*usage.Subscription, error) {
	if !usage.IsUUID(userID) {
		return nil, usage.FieldErrorf("user_id", "must be a UUID")
	}
	// One round trip: the free plan joined with the optional subscription.
	const q = `SELECT ` + subscriptionColumns + `
	FROM (SELECT $1::uuid AS user_id) u
	LEFT JOIN eco_subscriptions s ON s.user_id = u.user_id
	JOIN eco_plans p ON p.plan_id = coalesce(s.plan_id, 'free')`
	sub := usage.Subscription{UserID: userID}
	if err := scanSubscription(s.db.Pool.QueryRow(ctx, q, userID), &sub); err != nil {
		return nil, FormatError(fmt.Errorf("get subscription of %s: %w", userID, err))
	}
	return &sub, nil
}

// PutSubscription creates or replaces the user's subscription.
func (s *SubscriptionStore) PutSubscription(ctx context.Context, sub *usage.Subscription) error {
	if !usage.IsUUID(sub.UserID) {
		return usage.FieldErrorf("user_id", "must be a UUID")
	}
	if err := sub.Overrides.Validate(); err != nil {
		return err
	}
	// Periods start at midnight UTC, so that they are whole days of the
	// live counters and the daily rollup.
	if sub.PeriodAnchor.IsZero() {
		sub.PeriodAnchor = s.db.now()
	}
	sub.PeriodAnchor = usage.Day(sub.PeriodAnchor)
	o := sub.Overrides
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO eco_subscriptions AS s (user_id, plan_id,
			included_calls, hard_limit, rate_per_second, burst, overage_unit_size, overage_unit_price, currency,
			stripe_customer_id, stripe_subscription_id, period_anchor, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, ''), nullif($11, ''), $12, $13, $13)
		ON CONFLICT (user_id) DO UPDATE SET plan_id = excluded.plan_id,
			included_calls = excluded.included_calls, hard_limit = excluded.hard_limit,
			rate_per_second = excluded.rate_per_second, burst = excluded.burst,
			overage_unit_size = excluded.overage_unit_size, overage_unit_price = excluded.overage_unit_price,
			currency = excluded.currency, stripe_customer_id = excluded.stripe_customer_id,
			stripe_subscription_id = excluded.stripe_subscription_id, period_anchor = excluded.period_anchor,
			updated_at = excluded.updated_at`,
		sub.UserID, sub.PlanID, o.IncludedCalls, o.HardLimit, o.RatePerSecond, o.Burst,
		o.OverageUnitSize, o.OverageUnitPrice, o.Currency,
		sub.StripeCustomerID, sub.StripeSubscriptionID, sub.PeriodAnchor, s.db.now())
	if err != nil {
		return FormatError(fmt.Errorf("put subscription of %s: %w", sub.UserID, err))
	}
	return nil
}
