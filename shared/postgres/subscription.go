package postgres

import (
	"context"
	"encoding/json"
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
	p.price_model, p.overage_unit_size, p.overage_unit_price, p.price_tiers, p.currency`

func scanPlan(row pgx.Row, p *usage.Plan, extra ...any) error {
	return row.Scan(append([]any{&p.ID, &p.Name, &p.IncludedCalls, &p.HardLimit, &p.RatePerSecond, &p.Burst,
		&p.PriceModel, &p.OverageUnitSize, &p.OverageUnitPrice, &p.Tiers, &p.Currency}, extra...)...)
}

// overrideColumns are the override columns of a subscription s.
const overrideColumns = `s.included_calls, s.hard_limit, s.rate_per_second, s.burst,
	s.overage_unit_size, s.overage_unit_price, s.currency, s.price_model, s.price_tiers`

func overrideDest(o *usage.Overrides) []any {
	return []any{&o.IncludedCalls, &o.HardLimit, &o.RatePerSecond, &o.Burst,
		&o.OverageUnitSize, &o.OverageUnitPrice, &o.Currency, &o.PriceModel, &o.Tiers}
}

// planJSON is an eco_plans row as to_jsonb writes it.
type planJSON struct {
	PlanID           string       `json:"plan_id"`
	Name             string       `json:"name"`
	IncludedCalls    int64        `json:"included_calls"`
	HardLimit        bool         `json:"hard_limit"`
	RatePerSecond    float64      `json:"rate_per_second"`
	Burst            int          `json:"burst"`
	PriceModel       string       `json:"price_model"`
	OverageUnitSize  int64        `json:"overage_unit_size"`
	OverageUnitPrice int64        `json:"overage_unit_price"`
	PriceTiers       []usage.Tier `json:"price_tiers"`
	Currency         string       `json:"currency"`
}

func (p planJSON) plan() usage.Plan {
	return usage.Plan{ID: p.PlanID, Name: p.Name, IncludedCalls: p.IncludedCalls, HardLimit: p.HardLimit,
		RatePerSecond: p.RatePerSecond, Burst: p.Burst, PriceModel: p.PriceModel, OverageUnitSize: p.OverageUnitSize,
		OverageUnitPrice: p.OverageUnitPrice, Tiers: p.PriceTiers, Currency: p.Currency}
}

// termsJSON is an eco_subscription_terms row with its plan, as termsHistory
// writes it.
type termsJSON struct {
	From      time.Time       `json:"from"`
	Change    string          `json:"change"`
	Overrides usage.Overrides `json:"overrides"`
	Plan      planJSON        `json:"plan"`
}

func (t termsJSON) terms() usage.Terms {
	p := t.Plan.plan()
	return usage.Terms{From: t.From.UTC(), PlanID: p.ID, Overrides: t.Overrides, Effective: p.Apply(t.Overrides), Change: t.Change}
}

// termsHistory is the terms history of the subscription s, oldest first,
// as a JSON array of termsJSON (decodeHistory reads it).
const termsHistory = `(SELECT coalesce(jsonb_agg(jsonb_build_object('from', t.effective_from, 'change', t.change,
		'overrides', t.overrides, 'plan', to_jsonb(tp)) ORDER BY t.effective_from), '[]')
	FROM eco_subscription_terms t JOIN eco_plans tp ON tp.plan_id = t.plan_id WHERE t.user_id = s.user_id)`

func decodeHistory(b []byte) ([]usage.Terms, error) {
	var rows []termsJSON
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, fmt.Errorf("decode terms history: %w", err)
	}
	out := make([]usage.Terms, len(rows))
	for i, r := range rows {
		out[i] = r.terms()
	}
	return out, nil
}

// subscriptionColumns reads a plan p and a subscription s of it, where s
// may be the NULL side of a LEFT JOIN (no subscription): the plan, the raw
// overrides, the Stripe ids, the anchor, the terms' version (terms_version),
// and a downgrade waiting for the period's end (its plan as JSON, its
// overrides and its start).
const subscriptionColumns = planColumns + `,
	s.user_id IS NOT NULL, ` + overrideColumns + `,
	coalesce(s.stripe_customer_id, ''), coalesce(s.stripe_subscription_id, ''), s.period_anchor,
	terms_version(p.version, s.version),
	(SELECT to_jsonb(np) FROM eco_plans np WHERE np.plan_id = s.next_plan_id), s.next_overrides, s.next_from`

// scanSubscription scans subscriptionColumns, then extra, into sub. The
// overrides are merged into the plan by Plan.Apply only; without a
// subscription the user is on the plan read (free) at
// usage.DefaultPeriodAnchor.
func scanSubscription(row pgx.Row, sub *usage.Subscription, extra ...any) error {
	var (
		plan     usage.Plan
		found    bool
		o        usage.Overrides
		anchor   *time.Time
		nextPlan *planJSON
		nextO    *usage.Overrides
		nextFrom *time.Time
	)
	dest := append([]any{&found}, overrideDest(&o)...)
	dest = append(dest, &sub.StripeCustomerID, &sub.StripeSubscriptionID, &anchor, &sub.Version, &nextPlan, &nextO, &nextFrom)
	if err := scanPlan(row, &plan, append(dest, extra...)...); err != nil {
		return err
	}
	sub.PlanID, sub.Effective, sub.PeriodAnchor = plan.ID, plan, usage.DefaultPeriodAnchor
	if found {
		sub.Overrides = o
		sub.Effective = plan.Apply(o)
		sub.PeriodAnchor = anchor.UTC()
	}
	if nextPlan != nil && nextO != nil && nextFrom != nil {
		next := termsJSON{From: *nextFrom, Change: usage.ChangeDowngrade, Overrides: *nextO, Plan: *nextPlan}.terms()
		sub.Next = &next
	}
	return nil
}

// subscriptionQuery reads one user's subscription ($1), defaulting to
// free: the free plan joined with the optional subscription.
const subscriptionQuery = `SELECT ` + subscriptionColumns + `
	FROM (SELECT $1::uuid AS user_id) u
	LEFT JOIN eco_subscriptions s ON s.user_id = u.user_id
	JOIN eco_plans p ON p.plan_id = coalesce(s.plan_id, 'free')`

// Subscription returns the user's subscription, defaulting to free at
// usage.DefaultPeriodAnchor, with its Version and a pending downgrade.
func (s *SubscriptionStore) Subscription(ctx context.Context, userID string) (*usage.Subscription, error) {
	if !usage.IsUUID(userID) {
		return nil, usage.FieldErrorf("user_id", "must be a UUID")
	}
	sub := usage.Subscription{UserID: userID}
	if err := scanSubscription(s.db.with(limiterWork).QueryRow(ctx, subscriptionQuery, userID), &sub); err != nil {
		return nil, FormatError(fmt.Errorf("get subscription of %s: %w", userID, err))
	}
	return &sub, nil
}

// History returns the user's terms history, oldest first (empty for a
// user without a subscription).
func (s *SubscriptionStore) History(ctx context.Context, userID string) ([]usage.Terms, error) {
	if !usage.IsUUID(userID) {
		return nil, usage.FieldErrorf("user_id", "must be a UUID")
	}
	var b []byte
	if err := s.db.with(adminWork).QueryRow(ctx, `SELECT `+termsHistory+` FROM (SELECT $1::uuid AS user_id) s`, userID).Scan(&b); err != nil {
		return nil, FormatError(fmt.Errorf("get terms history of %s: %w", userID, err))
	}
	return decodeHistory(b)
}

// tiersParam is the jsonb parameter of a list of tiers, as text (it
// encodes alike with and without statement preparation): NULL for none.
func tiersParam(t []usage.Tier) *string {
	if t == nil {
		return nil
	}
	b, _ := json.Marshal(t) // tiers always marshal
	s := string(b)
	return &s
}

// overridesJSON is the jsonb of overrides, as the terms history keeps them,
// as text: a parameter that encodes alike with and without statement
// preparation (RDS Proxy's exec mode).
func overridesJSON(o usage.Overrides) (string, error) {
	b, err := json.Marshal(o)
	return string(b), err
}

// PutSubscription creates or replaces the user's subscription, and its
// terms history with one entry: these terms from the anchor on. It is for
// seeding and tests; admins change plans with AnalyticsStore.PutPlan,
// which keeps the history.
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
	oj, err := overridesJSON(o)
	if err != nil {
		return err
	}
	now := s.db.now()
	err = s.db.with(adminWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO eco_subscriptions AS s (user_id, plan_id,
				included_calls, hard_limit, rate_per_second, burst, overage_unit_size, overage_unit_price, currency,
				price_model, price_tiers, stripe_customer_id, stripe_subscription_id, period_anchor, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, nullif($12, ''), nullif($13, ''), $14, $15, $15)
			ON CONFLICT (user_id) DO UPDATE SET plan_id = excluded.plan_id,
				included_calls = excluded.included_calls, hard_limit = excluded.hard_limit,
				rate_per_second = excluded.rate_per_second, burst = excluded.burst,
				overage_unit_size = excluded.overage_unit_size, overage_unit_price = excluded.overage_unit_price,
				currency = excluded.currency, price_model = excluded.price_model, price_tiers = excluded.price_tiers,
				stripe_customer_id = excluded.stripe_customer_id,
				stripe_subscription_id = excluded.stripe_subscription_id, period_anchor = excluded.period_anchor,
				next_plan_id = NULL, next_overrides = NULL, next_from = NULL,
				updated_at = excluded.updated_at`,
			sub.UserID, sub.PlanID, o.IncludedCalls, o.HardLimit, o.RatePerSecond, o.Burst,
			o.OverageUnitSize, o.OverageUnitPrice, o.Currency, o.PriceModel, tiersParam(o.Tiers),
			sub.StripeCustomerID, sub.StripeSubscriptionID, sub.PeriodAnchor, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM eco_subscription_terms WHERE user_id = $1`, sub.UserID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at)
			VALUES ($1, $2, $3, $4::jsonb, 'start', $5)`, sub.UserID, sub.PeriodAnchor, sub.PlanID, oj, now)
		return err
	})
	if err != nil {
		return FormatError(fmt.Errorf("put subscription of %s: %w", sub.UserID, err))
	}
	return nil
}
