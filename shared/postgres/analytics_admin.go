package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// liveDays are the days of [$1, $2] read from the live counters: today
// ($3) and later, and the dirty days (as a whole or for some user).
const liveDays = `live AS (
	SELECT d::date AS day FROM generate_series($1::date, $2::date, interval '1 day') d
	WHERE d::date >= $3::date OR d::date IN (SELECT day FROM eco_usage_dirty_days WHERE day BETWEEN $1 AND $2
		UNION SELECT day FROM eco_usage_dirty_user_days WHERE day BETWEEN $1 AND $2)
)`

// perUserQuery is the per-user totals over [$1, $2]: the month-to-date
// running totals (eco_usage_user_monthly) for closed days, and the live
// counters for today ($3 and later) and dirty days. The closed days are cut
// into runs within one month (seg: days lo+1..hi of month), each read from a
// user's month row as the difference of two running totals, so a user
// costs one row per month of the range, not one per day.
const perUserQuery = liveDays + `, seg AS (
	SELECT date_trunc('month', day)::date AS month,
		extract(day FROM min(day))::int - 1 AS lo, extract(day FROM max(day))::int AS hi
	FROM (
		SELECT d::date AS day, d::date - (row_number() OVER (ORDER BY d))::int AS run
		FROM generate_series($1::date, $2::date, interval '1 day') d
		WHERE d::date NOT IN (SELECT day FROM live)
	) c
	GROUP BY run, 1
), per_user AS (
	SELECT user_id, least(coalesce(sum(calls), 0), 9223372036854775807)::bigint AS calls, least(coalesce(sum(e4), 0), 9223372036854775807)::bigint AS e4, least(coalesce(sum(e5), 0), 9223372036854775807)::bigint AS e5
	FROM (
		SELECT m.user_id,
			m.calls[s.hi] - coalesce(m.calls[s.lo], 0) AS calls,
			m.errors_4xx[s.hi] - coalesce(m.errors_4xx[s.lo], 0) AS e4,
			m.errors_5xx[s.hi] - coalesce(m.errors_5xx[s.lo], 0) AS e5
		FROM seg s JOIN eco_usage_user_monthly m ON m.month = s.month
		WHERE m.month BETWEEN date_trunc('month', $1::date)::date AND $2
		UNION ALL
		SELECT user_id, calls, errors_4xx, errors_5xx FROM eco_usage_counters
		-- An array, not a join: the planner then reads the few live days
		-- through eco_usage_counters_day_idx instead of scanning the table.
		WHERE day = ANY (ARRAY(SELECT day FROM live))
	) x
	GROUP BY user_id
)`

// planInForce is the plan of subscription s (free without one) at the
// instant $now: its pending downgrade's once that is due, as the user's
// own summary shows it (usage.Subscription.At), before the billing run's
// promote_due_terms makes it the current plan (once a day).
func planInForce(now string) string {
	return `coalesce(CASE WHEN s.next_from <= ` + now + ` THEN s.next_plan_id ELSE s.plan_id END, 'free')`
}

// adminSummaryQuery is the system-wide usage over [$1, $2] (today $3, now
// $4), calls by the plan each user is on at now.
var adminSummaryQuery = `WITH ` + perUserQuery + `, plans AS (
	SELECT ` + planInForce("$4::timestamptz") + ` AS plan_id, least(coalesce(sum(p.calls), 0), 9223372036854775807)::bigint AS calls
	FROM per_user p LEFT JOIN eco_subscriptions s ON s.user_id = p.user_id
	GROUP BY 1
), ov AS (
	SELECT currency,
		least(coalesce(sum(amount) FILTER (WHERE status = 'billed'), 0), 9223372036854775807)::bigint AS billed,
		least(coalesce(sum(amount) FILTER (WHERE status = 'pending'), 0), 9223372036854775807)::bigint AS pending
	FROM eco_overage_ledger
	WHERE period_start >= $1::date::timestamptz AND period_start < ($2::date + 1)::timestamptz
	GROUP BY currency
)
SELECT least(coalesce(sum(calls), 0), 9223372036854775807)::bigint, least(coalesce(sum(e4), 0), 9223372036854775807)::bigint, least(coalesce(sum(e5), 0), 9223372036854775807)::bigint,
	count(*) FILTER (WHERE calls > 0),
	(SELECT coalesce(jsonb_object_agg(plan_id, calls), '{}') FROM plans),
	(SELECT coalesce(jsonb_agg(jsonb_build_object('currency', currency, 'billed', billed, 'pending', pending) ORDER BY currency), '[]') FROM ov)
FROM per_user`

// AdminSummary returns system-wide usage over the range.
func (s *AnalyticsStore) AdminSummary(ctx context.Context, r usage.DayRange, now time.Time) (*report.AdminSummary, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var sum report.AdminSummary
	var plans, ov []byte
	err := s.db.with(adminWork).QueryRow(ctx, adminSummaryQuery, r.From, r.To, usage.Day(now), now.UTC()).
		Scan(&sum.Calls, &sum.Errors4xx, &sum.Errors5xx, &sum.ActiveUsers, &plans, &ov)
	if err != nil {
		return nil, FormatError(fmt.Errorf("admin summary: %w", err))
	}
	if err := json.Unmarshal(plans, &sum.CallsByPlan); err != nil {
		return nil, fmt.Errorf("admin summary: calls by plan: %w", err)
	}
	if err := json.Unmarshal(ov, &sum.Overage); err != nil {
		return nil, fmt.Errorf("admin summary: overage: %w", err)
	}
	if sum.Calls > 0 {
		sum.ErrorRate = (float64(sum.Errors4xx) + float64(sum.Errors5xx)) / float64(sum.Calls)
	}
	return &sum, nil
}

// topUsersQuery ranks the users over [$1, $2] (today $3) by the order
// expressions (%s, twice: per_user's and t's) and keeps the top $4, each
// with the plan it is on at now ($5).
var topUsersQuery = `WITH ` + perUserQuery + `
SELECT t.user_id, ` + planInForce("$5::timestamptz") + `, t.calls, t.e4, t.e5, 0::bigint, ''::text
FROM (SELECT * FROM per_user ORDER BY %s DESC, user_id LIMIT $4) t
LEFT JOIN eco_subscriptions s ON s.user_id = t.user_id
ORDER BY %s DESC, t.user_id`

// topOverageQuery ranks the users in each currency by their ledger amounts
// (billed or pending) in it of periods starting in the range, summed
// saturating at the bigint maximum, and keeps the top $4 of each currency;
// then reads those users' calls from the rollup (through its (user_id, day)
// index) and the live counters, and the plan each is on at now ($5).
var topOverageQuery = `WITH ` + liveDays + `, o AS (
	SELECT user_id, currency, amount FROM (
		SELECT user_id, currency, amount, row_number() OVER (PARTITION BY currency ORDER BY amount DESC, user_id) AS rank
		FROM (
			SELECT user_id, currency, least(sum(amount), 9223372036854775807)::bigint AS amount FROM eco_overage_ledger
			WHERE period_start >= $1::date::timestamptz AND period_start < ($2::date + 1)::timestamptz
				AND status IN ('billed', 'pending')
			GROUP BY user_id, currency
		) g
	) r
	WHERE rank <= $4
)
SELECT o.user_id, ` + planInForce("$5::timestamptz") + `, coalesce(u.calls, 0)::bigint, coalesce(u.e4, 0)::bigint, coalesce(u.e5, 0)::bigint, o.amount, o.currency
FROM o
LEFT JOIN eco_subscriptions s ON s.user_id = o.user_id
CROSS JOIN LATERAL (
	SELECT least(coalesce(sum(calls), 0), 9223372036854775807) AS calls, least(coalesce(sum(errors_4xx), 0), 9223372036854775807) AS e4, least(coalesce(sum(errors_5xx), 0), 9223372036854775807) AS e5 FROM (
		SELECT calls, errors_4xx, errors_5xx FROM eco_usage_daily
		WHERE user_id = o.user_id AND day BETWEEN $1 AND $2 AND day NOT IN (SELECT day FROM live)
		UNION ALL
		SELECT calls, errors_4xx, errors_5xx FROM eco_usage_counters
		WHERE user_id = o.user_id AND day IN (SELECT day FROM live)
	) x
) u
ORDER BY o.currency, o.amount DESC, o.user_id`

// TopUsers returns the users with the most calls, errors or overage (the
// top of each currency).
func (s *AnalyticsStore) TopUsers(ctx context.Context, f report.TopUsersFilter, now time.Time) ([]report.TopUser, error) {
	if err := f.Range.Validate(); err != nil {
		return nil, err
	}
	if f.Limit < 1 {
		return nil, usage.FieldErrorf("limit", "must be positive")
	}
	var q string
	switch f.By {
	case report.RankByCalls, "":
		q = fmt.Sprintf(topUsersQuery, "calls", "t.calls")
	case report.RankByErrors:
		q = fmt.Sprintf(topUsersQuery, "(e4 + e5)", "(t.e4 + t.e5)")
	case report.RankByOverage:
		q = topOverageQuery
	default:
		return nil, usage.FieldErrorf("by", "must be calls, errors or overage")
	}
	rows, err := s.db.with(adminWork).Query(ctx, q, f.Range.From, f.Range.To, usage.Day(now), f.Limit, now.UTC())
	if err != nil {
		return nil, FormatError(fmt.Errorf("top users: %w", err))
	}
	out := []report.TopUser{}
	var t report.TopUser
	_, err = pgx.ForEachRow(rows, []any{&t.UserID, &t.PlanID, &t.Calls, &t.Errors4xx, &t.Errors5xx, &t.Overage, &t.Currency}, func() error {
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("top users: %w", err))
	}
	return out, nil
}
