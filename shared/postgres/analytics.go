package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/usage"
)

// AnalyticsStore answers the analytics API's queries, those of the user
// routes (usage.UsageReader) and of the admin routes (usage.AdminStore):
// one SQL statement per route, over the live counters (today and days
// waiting to be aggregated), the daily rollup (closed days) and its
// per-user, per-month running totals eco_usage_user_monthly (admin
// reports). Its sums saturate at the bigint maximum instead of failing,
// since bytes can reach it (see usage's bounds) and calls summed over the
// longest ranges could at the write path's ceiling; billing reads none of
// them. The form is least(coalesce(sum(x), 0), max): least ignores a NULL,
// so the sum of no rows must be 0 first or it would read as the maximum.
type AnalyticsStore struct{ db *DB }

// NewAnalyticsStore returns a store over db.
func NewAnalyticsStore(db *DB) *AnalyticsStore { return &AnalyticsStore{db: db} }

var (
	_ usage.UsageReader = (*AnalyticsStore)(nil)
	_ usage.AdminStore  = (*AnalyticsStore)(nil)
)

func checkUser(id string) error {
	if !usage.IsUUID(id) {
		return usage.FieldErrorf("id", "must be a UUID")
	}
	return nil
}

// summaryQuery reads the user's subscription (subscriptionColumns, free
// without one), its terms history, the live counters of the 33 days
// around today ($2), enough for any monthly period holding today, and the
// ledger of the user's latest periods summed by status (ledgerSums).
const summaryQuery = `SELECT ` + subscriptionColumns + `, ` + termsHistory + `,
	c.days, c.calls, c.updated, b.sums
FROM (SELECT $1::uuid AS user_id) u
LEFT JOIN eco_subscriptions s ON s.user_id = u.user_id
JOIN eco_plans p ON p.plan_id = coalesce(s.plan_id, 'free')
CROSS JOIN LATERAL (
	SELECT coalesce(array_agg(k.day), '{}') AS days, coalesce(array_agg(k.calls), '{}') AS calls,
		coalesce(array_agg(k.updated_at), '{}') AS updated
	FROM eco_usage_counters k
	WHERE k.user_id = u.user_id AND k.day BETWEEN $2::date - 32 AND $2::date + 1
) c
CROSS JOIN LATERAL (
	SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.period_start DESC), '[]') AS sums FROM (
		SELECT l.period_start, l.period_end, min(l.currency) AS currency,
			coalesce(sum(l.amount) FILTER (WHERE l.status = 'billed'), 0) AS billed,
			coalesce(sum(l.amount) FILTER (WHERE l.status = 'pending'), 0) AS pending,
			coalesce(sum(l.amount) FILTER (WHERE l.status = 'failed'), 0) AS failed,
			count(*) FILTER (WHERE l.status = 'billed') AS billed_rows,
			count(*) FILTER (WHERE l.status = 'pending') AS pending_rows,
			count(*) FILTER (WHERE l.status = 'failed') AS failed_rows
		FROM eco_overage_ledger l WHERE l.user_id = u.user_id
		GROUP BY l.period_start, l.period_end
		ORDER BY l.period_start DESC LIMIT 13) x -- usage.MaxBilledPeriods, and the current period
) b`

// ledgerSumsJSON is one element of summaryQuery's sums.
type ledgerSumsJSON struct {
	Start       time.Time `json:"period_start"`
	End         time.Time `json:"period_end"`
	Currency    string    `json:"currency"`
	Billed      int64     `json:"billed"`
	Pending     int64     `json:"pending"`
	Failed      int64     `json:"failed"`
	BilledRows  int       `json:"billed_rows"`
	PendingRows int       `json:"pending_rows"`
	FailedRows  int       `json:"failed_rows"`
}

// UsageSummary returns the user's current billing period at now, as
// usage.Summarize builds it from one statement's rows.
func (s *AnalyticsStore) UsageSummary(ctx context.Context, userID string, now time.Time) (*usage.UsageSummary, error) {
	if err := checkUser(userID); err != nil {
		return nil, err
	}
	now = now.UTC()
	var (
		sub           = usage.Subscription{UserID: userID}
		history, sums []byte
		days          []time.Time
		calls         []int64
		updated       []time.Time
	)
	err := scanSubscription(s.db.Pool.QueryRow(ctx, summaryQuery, userID, usage.Day(now)), &sub,
		&history, &days, &calls, &updated, &sums)
	if err != nil {
		return nil, FormatError(fmt.Errorf("usage summary of %s: %w", userID, err))
	}
	terms, err := decodeHistory(history)
	if err != nil {
		return nil, err
	}
	var rows []ledgerSumsJSON
	if err := json.Unmarshal(sums, &rows); err != nil {
		return nil, fmt.Errorf("usage summary of %s: decode ledger: %w", userID, err)
	}
	ledger := make([]usage.LedgerSums, len(rows))
	for i, r := range rows {
		ledger[i] = usage.LedgerSums{Period: usage.Period{Start: r.Start.UTC(), End: r.End.UTC()}, Currency: r.Currency,
			Billed: r.Billed, Pending: r.Pending, Failed: r.Failed, BilledRows: r.BilledRows, PendingRows: r.PendingRows, FailedRows: r.FailedRows}
	}
	dc := make([]usage.DayCalls, len(days))
	for i, d := range days {
		dc[i] = usage.DayCalls{Day: d.UTC(), Calls: calls[i]}
	}
	sum, err := usage.Summarize(&sub, terms, dc, ledger, now)
	if err != nil {
		return nil, fmt.Errorf("usage summary of %s: %w", userID, err)
	}
	for i, d := range days {
		if u := updated[i].UTC(); sum.Period.Contains(d.UTC()) && (sum.LastUpdated == nil || u.After(*sum.LastUpdated)) {
			sum.LastUpdated = &u
		}
	}
	return sum, nil
}

// dailyQuery returns one row per day of [$2, $3]: the rollup of closed days
// (from its per-user, per-day summary, one row a day), and the live
// counters of today ($4 and later), dirty days and days with counters but
// no rollup yet; a past day with neither had no usage and reads as zeros.
const dailyQuery = `WITH r AS (
	SELECT day, calls, errors_4xx AS e4, errors_5xx AS e5, request_bytes AS rq, response_bytes AS rs, latency_p95_ms AS p95
	FROM eco_usage_user_daily WHERE user_id = $1 AND day BETWEEN $2 AND $3
), c AS (
	SELECT day, calls, errors_4xx, errors_5xx, request_bytes, response_bytes
	FROM eco_usage_counters WHERE user_id = $1 AND day BETWEEN $2 AND $3
), dirty AS (
	SELECT day FROM eco_usage_dirty_days WHERE day BETWEEN $2 AND $3
)
SELECT g.day, l.live,
	CASE WHEN l.live THEN coalesce(c.calls, 0) ELSE coalesce(r.calls, 0) END,
	CASE WHEN l.live THEN coalesce(c.errors_4xx, 0) ELSE coalesce(r.e4, 0) END,
	CASE WHEN l.live THEN coalesce(c.errors_5xx, 0) ELSE coalesce(r.e5, 0) END,
	CASE WHEN l.live THEN coalesce(c.request_bytes, 0) ELSE coalesce(r.rq, 0) END,
	CASE WHEN l.live THEN coalesce(c.response_bytes, 0) ELSE coalesce(r.rs, 0) END,
	CASE WHEN l.live THEN NULL ELSE r.p95 END
FROM (SELECT d::date AS day FROM generate_series($2::date, $3::date, interval '1 day') d) g
LEFT JOIN r ON r.day = g.day
LEFT JOIN c ON c.day = g.day
-- A past day with neither a rollup nor a counter had no usage: it is
-- closed, not live.
CROSS JOIN LATERAL (SELECT g.day >= $4::date OR (r.day IS NULL AND c.day IS NOT NULL)
	OR g.day IN (SELECT day FROM dirty) AS live) l
ORDER BY g.day`

// DailyUsage returns one row per day of the range.
func (s *AnalyticsStore) DailyUsage(ctx context.Context, userID string, r usage.DayRange, now time.Time) ([]usage.DailyUsage, error) {
	if err := checkUser(userID); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	rows, err := s.db.Pool.Query(ctx, dailyQuery, userID, r.From, r.To, usage.Day(now))
	if err != nil {
		return nil, FormatError(fmt.Errorf("daily usage of %s: %w", userID, err))
	}
	out := make([]usage.DailyUsage, 0, r.Len())
	var d usage.DailyUsage
	_, err = pgx.ForEachRow(rows, []any{&d.Day, &d.Live, &d.Calls, &d.Errors4xx, &d.Errors5xx, &d.RequestBytes, &d.ResponseBytes, &d.P95LatencyMS}, func() error {
		d.Day = d.Day.UTC()
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("daily usage of %s: %w", userID, err))
	}
	return out, nil
}

func checkBreakdown(f usage.BreakdownFilter) error {
	if err := checkUser(f.UserID); err != nil {
		return err
	}
	if f.Limit < 1 {
		return usage.FieldErrorf("limit", "must be positive")
	}
	return f.Range.Validate()
}

// breakdownQuery groups the user's rollup over the range by %s, in
// (calls desc, key asc) order after the cursor ($4, $5).
const breakdownQuery = `SELECT %[1]s AS key, least(coalesce(sum(calls), 0), 9223372036854775807)::bigint AS calls, least(coalesce(sum(errors_4xx), 0), 9223372036854775807)::bigint, least(coalesce(sum(errors_5xx), 0), 9223372036854775807)::bigint,
	least(coalesce(sum(request_bytes), 0), 9223372036854775807)::bigint, least(coalesce(sum(response_bytes), 0), 9223372036854775807)::bigint,
	coalesce(sum(latency_sum_ms)::float8 / nullif(sum(events), 0), 0), max(latency_max_ms)
FROM eco_usage_daily
WHERE user_id = $1 AND day BETWEEN $2 AND $3
GROUP BY 1
HAVING $4::bigint IS NULL OR least(coalesce(sum(calls), 0), 9223372036854775807) < $4 OR (least(coalesce(sum(calls), 0), 9223372036854775807) = $4 AND %[1]s > $5::text)
ORDER BY 2 DESC, 1
LIMIT $6`

// EndpointBreakdown returns a page of the user's usage per endpoint.
func (s *AnalyticsStore) EndpointBreakdown(ctx context.Context, f usage.BreakdownFilter) ([]usage.Breakdown, error) {
	if err := checkBreakdown(f); err != nil {
		return nil, err
	}
	return s.breakdown(ctx, fmt.Sprintf(breakdownQuery, "endpoint"), f)
}

// KeyBreakdown returns a page of the user's usage per API key, "" standing
// for calls made without one.
func (s *AnalyticsStore) KeyBreakdown(ctx context.Context, f usage.BreakdownFilter) ([]usage.Breakdown, error) {
	if err := checkBreakdown(f); err != nil {
		return nil, err
	}
	q := `SELECT b.*, coalesce(k.prefix, ''), coalesce(k.name, '')
	FROM (` + fmt.Sprintf(breakdownQuery, "coalesce(api_key_id::text, '')") + `) b
	LEFT JOIN eco_api_keys k ON k.api_key_id = nullif(b.key, '')::uuid
	ORDER BY b.calls DESC, b.key`
	return s.breakdown(ctx, q, f)
}

func (s *AnalyticsStore) breakdown(ctx context.Context, q string, f usage.BreakdownFilter) ([]usage.Breakdown, error) {
	var afterCalls *int64
	var afterKey string
	if f.After != nil {
		afterCalls, afterKey = &f.After.Calls, f.After.Key
	}
	rows, err := s.db.Pool.Query(ctx, q, f.UserID, f.Range.From, f.Range.To, afterCalls, afterKey, f.Limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("usage breakdown of %s: %w", f.UserID, err))
	}
	defer rows.Close()
	out := []usage.Breakdown{}
	keys := len(rows.FieldDescriptions()) > 8
	for rows.Next() {
		var b usage.Breakdown
		dest := []any{&b.Key, &b.Calls, &b.Errors4xx, &b.Errors5xx, &b.RequestBytes, &b.ResponseBytes, &b.AvgLatencyMS, &b.MaxLatencyMS}
		if keys {
			dest = append(dest, &b.KeyPrefix, &b.KeyName)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, FormatError(fmt.Errorf("usage breakdown of %s: %w", f.UserID, err))
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, FormatError(fmt.Errorf("usage breakdown of %s: %w", f.UserID, err))
	}
	return out, nil
}

// liveDays are the days of [$1, $2] read from the live counters: today
// ($3) and later, and the dirty days.
const liveDays = `live AS (
	SELECT d::date AS day FROM generate_series($1::date, $2::date, interval '1 day') d
	WHERE d::date >= $3::date OR d::date IN (SELECT day FROM eco_usage_dirty_days WHERE day BETWEEN $1 AND $2)
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

const adminSummaryQuery = `WITH ` + perUserQuery + `, plans AS (
	SELECT coalesce(s.plan_id, 'free') AS plan_id, least(coalesce(sum(p.calls), 0), 9223372036854775807)::bigint AS calls
	FROM per_user p LEFT JOIN eco_subscriptions s ON s.user_id = p.user_id
	GROUP BY 1
), ov AS (
	SELECT currency,
		coalesce(sum(amount) FILTER (WHERE status = 'billed'), 0)::bigint AS billed,
		coalesce(sum(amount) FILTER (WHERE status = 'pending'), 0)::bigint AS pending
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
func (s *AnalyticsStore) AdminSummary(ctx context.Context, r usage.DayRange, now time.Time) (*usage.AdminSummary, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var sum usage.AdminSummary
	var plans, ov []byte
	err := s.db.Pool.QueryRow(ctx, adminSummaryQuery, r.From, r.To, usage.Day(now)).
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

const topUsersQuery = `WITH ` + perUserQuery + `
SELECT t.user_id, coalesce(s.plan_id, 'free'), t.calls, t.e4, t.e5, 0::bigint
FROM (SELECT * FROM per_user ORDER BY %s DESC, user_id LIMIT $4) t
LEFT JOIN eco_subscriptions s ON s.user_id = t.user_id
ORDER BY %s DESC, t.user_id`

// topOverageQuery ranks by the ledger amounts (billed or pending) of
// periods starting in the range, then reads those users' calls from the
// rollup (through its (user_id, day) index) and the live counters.
const topOverageQuery = `WITH ` + liveDays + `, o AS (
	SELECT user_id, sum(amount)::bigint AS amount FROM eco_overage_ledger
	WHERE period_start >= $1::date::timestamptz AND period_start < ($2::date + 1)::timestamptz
		AND status IN ('billed', 'pending')
	GROUP BY user_id
	ORDER BY 2 DESC, 1 LIMIT $4
)
SELECT o.user_id, coalesce(s.plan_id, 'free'), coalesce(u.calls, 0)::bigint, coalesce(u.e4, 0)::bigint, coalesce(u.e5, 0)::bigint, o.amount
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
ORDER BY o.amount DESC, o.user_id`

// TopUsers returns the users with the most calls, errors or overage.
func (s *AnalyticsStore) TopUsers(ctx context.Context, f usage.TopUsersFilter, now time.Time) ([]usage.TopUser, error) {
	if err := f.Range.Validate(); err != nil {
		return nil, err
	}
	if f.Limit < 1 {
		return nil, usage.FieldErrorf("limit", "must be positive")
	}
	var q string
	switch f.By {
	case usage.RankByCalls, "":
		q = fmt.Sprintf(topUsersQuery, "calls", "t.calls")
	case usage.RankByErrors:
		q = fmt.Sprintf(topUsersQuery, "(e4 + e5)", "(t.e4 + t.e5)")
	case usage.RankByOverage:
		q = topOverageQuery
	default:
		return nil, usage.FieldErrorf("by", "must be calls, errors or overage")
	}
	rows, err := s.db.Pool.Query(ctx, q, f.Range.From, f.Range.To, usage.Day(now), f.Limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("top users: %w", err))
	}
	out := []usage.TopUser{}
	var t usage.TopUser
	_, err = pgx.ForEachRow(rows, []any{&t.UserID, &t.PlanID, &t.Calls, &t.Errors4xx, &t.Errors5xx, &t.Overage}, func() error {
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("top users: %w", err))
	}
	return out, nil
}

// PutPlan changes the user's plan and writes the audit row, in one
// transaction. A transaction-scoped advisory lock on the user serialises
// concurrent changes, so that each audit row's old value is the previous
// change's new value. usage.DecideChange says what the change is; then:
//
//   - start: the subscription is created, anchored today, with its first
//     history entry;
//   - upgrade: the subscription's terms are replaced now, a history entry
//     starts now, and a pending downgrade is dropped;
//   - downgrade: the terms wait in next_* and in a history entry from the
//     end of the running period, replacing a pending one;
//   - same: a pending downgrade is dropped; nothing else changes.
func (s *AnalyticsStore) PutPlan(ctx context.Context, c usage.PlanChange) (*usage.PlanChanged, error) {
	if err := checkUser(c.UserID); err != nil {
		return nil, err
	}
	if c.PlanID == "" {
		return nil, usage.FieldErrorf("plan_id", "is required")
	}
	if err := c.Overrides.Validate(); err != nil {
		return nil, err
	}
	now := s.db.now()
	var out *usage.PlanChanged
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('eco_plan:' || $1::text, 0)),
				promote_due_terms($2::timestamptz, $1::uuid)`, c.UserID, now); err != nil {
			return err
		}
		var plan usage.Plan
		if err := scanPlan(tx.QueryRow(ctx, `SELECT `+planColumns+` FROM eco_plans p WHERE p.plan_id = $1`, c.PlanID), &plan); err != nil {
			if err == pgx.ErrNoRows {
				return usage.FieldErrorf("plan_id", "unknown plan %q", c.PlanID)
			}
			return err
		}
		next := plan.Apply(c.Overrides)
		if err := next.Validate(); err != nil {
			return err
		}
		var old []byte
		if err := tx.QueryRow(ctx, `SELECT to_jsonb(s) FROM eco_subscriptions s WHERE s.user_id = $1`, c.UserID).Scan(&old); err != nil && err != pgx.ErrNoRows {
			return err
		}
		var cur *usage.Subscription
		if old != nil {
			cur = &usage.Subscription{UserID: c.UserID}
			if err := scanSubscription(tx.QueryRow(ctx, subscriptionQuery, c.UserID), cur); err != nil {
				return err
			}
		}
		change, at, err := usage.DecideChange(cur, c.PlanID, c.Overrides, next, now)
		if err != nil {
			return err
		}
		if err := writeChange(ctx, tx, c, change, at, now); err != nil {
			return err
		}
		sub := &usage.Subscription{UserID: c.UserID}
		if err := scanSubscription(tx.QueryRow(ctx, subscriptionQuery, c.UserID), sub); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO eco_plan_audit (who, at, user_id, old, new, change, effective_at)
			SELECT $1, $2, $3, $4, to_jsonb(s), $5, $6 FROM eco_subscriptions s WHERE s.user_id = $3`,
			c.Who, now, c.UserID, old, change, at); err != nil {
			return err
		}
		out = &usage.PlanChanged{Subscription: sub, Change: change, EffectiveAt: at}
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("put plan of %s: %w", c.UserID, err))
	}
	return out, nil
}

// writeChange writes a plan change the way DecideChange decided it, in tx.
func writeChange(ctx context.Context, tx pgx.Tx, c usage.PlanChange, change string, at, now time.Time) error {
	o := c.Overrides
	oj, err := overridesJSON(o)
	if err != nil {
		return err
	}
	// A pending downgrade (entries after now) goes, whatever the change.
	if _, err := tx.Exec(ctx, `DELETE FROM eco_subscription_terms WHERE user_id = $1 AND effective_from > $2`, c.UserID, now); err != nil {
		return err
	}
	switch change {
	case usage.ChangeSame:
		_, err = tx.Exec(ctx, `UPDATE eco_subscriptions SET next_plan_id = NULL, next_overrides = NULL, next_from = NULL,
			updated_at = $2 WHERE user_id = $1 AND next_plan_id IS NOT NULL`, c.UserID, now)
		return err
	case usage.ChangeDowngrade:
		if _, err = tx.Exec(ctx, `UPDATE eco_subscriptions SET next_plan_id = $2, next_overrides = $3, next_from = $4,
			updated_at = $5 WHERE user_id = $1`, c.UserID, c.PlanID, oj, at, now); err != nil {
			return err
		}
	default: // start, upgrade
		if _, err = tx.Exec(ctx, `INSERT INTO eco_subscriptions AS s (user_id, plan_id, included_calls, hard_limit, rate_per_second,
				burst, overage_unit_size, overage_unit_price, currency, price_model, price_tiers, period_anchor, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
			ON CONFLICT (user_id) DO UPDATE SET plan_id = excluded.plan_id,
				included_calls = excluded.included_calls, hard_limit = excluded.hard_limit,
				rate_per_second = excluded.rate_per_second, burst = excluded.burst,
				overage_unit_size = excluded.overage_unit_size, overage_unit_price = excluded.overage_unit_price,
				currency = excluded.currency, price_model = excluded.price_model, price_tiers = excluded.price_tiers,
				next_plan_id = NULL, next_overrides = NULL, next_from = NULL, updated_at = excluded.updated_at`,
			c.UserID, c.PlanID, o.IncludedCalls, o.HardLimit, o.RatePerSecond, o.Burst, o.OverageUnitSize, o.OverageUnitPrice,
			o.Currency, o.PriceModel, tiersParam(o.Tiers), usage.Day(now), now); err != nil {
			return err
		}
	}
	// The entry of the new terms; a second change at the same instant
	// replaces the first.
	_, err = tx.Exec(ctx, `INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at, requested_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (user_id, effective_from) DO UPDATE SET plan_id = excluded.plan_id, overrides = excluded.overrides,
			change = excluded.change, requested_at = excluded.requested_at, requested_by = excluded.requested_by`,
		c.UserID, at, c.PlanID, oj, change, now, c.Who)
	return err
}

// PlanAudit returns the user's audited plan changes, newest first. The
// audit ids grow with every change, and PutPlan serialises a user's
// changes, so id order is the order in which they were made.
func (s *AnalyticsStore) PlanAudit(ctx context.Context, userID string, before int64, limit int) ([]usage.PlanAuditEntry, error) {
	if err := checkUser(userID); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, usage.FieldErrorf("limit", "must be positive")
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT audit_id, who, at, old, new, coalesce(change, ''), effective_at FROM eco_plan_audit
		WHERE user_id = $1 AND ($2::bigint = 0 OR audit_id < $2)
		ORDER BY audit_id DESC LIMIT $3`, userID, before, limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("plan audit of %s: %w", userID, err))
	}
	out := []usage.PlanAuditEntry{}
	var e usage.PlanAuditEntry
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.Who, &e.At, &e.Old, &e.New, &e.Change, &e.EffectiveAt}, func() error {
		e.At = e.At.UTC()
		if e.EffectiveAt != nil {
			t := e.EffectiveAt.UTC()
			e.EffectiveAt = &t
		}
		out = append(out, e)
		e.Old, e.New, e.EffectiveAt = nil, nil, nil // the next row's scan must not reuse these
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("plan audit of %s: %w", userID, err))
	}
	return out, nil
}

// QueueAggregation marks the range's days dirty for the aggregate job.
func (s *AnalyticsStore) QueueAggregation(ctx context.Context, r usage.DayRange) (int, error) {
	if err := r.Validate(); err != nil {
		return 0, err
	}
	tag, err := s.db.Pool.Exec(ctx, `INSERT INTO eco_usage_dirty_days (day)
		SELECT d::date FROM generate_series($1::date, $2::date, interval '1 day') d ORDER BY 1
		ON CONFLICT (day) DO UPDATE SET marked_at = now()`, r.From, r.To)
	if err != nil {
		return 0, FormatError(fmt.Errorf("queue aggregation of %s..%s: %w", r.From.Format(time.DateOnly), r.To.Format(time.DateOnly), err))
	}
	return int(tag.RowsAffected()), nil
}

// RejectedEvents returns quarantined events, newest first.
func (s *AnalyticsStore) RejectedEvents(ctx context.Context, before int64, limit int) ([]usage.RejectedEvent, error) {
	if limit < 1 {
		return nil, usage.FieldErrorf("limit", "must be positive")
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT rejected_id, source, message_id, event_id, field, reason, body, rejected_at
		FROM eco_rejected_events WHERE $1::bigint = 0 OR rejected_id < $1
		ORDER BY rejected_id DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list rejected events: %w", err))
	}
	out := []usage.RejectedEvent{}
	var e usage.RejectedEvent
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.Source, &e.MessageID, &e.EventID, &e.Field, &e.Reason, &e.Body, &e.RejectedAt}, func() error {
		e.RejectedAt = e.RejectedAt.UTC()
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("list rejected events: %w", err))
	}
	return out, nil
}

// ListLedgerPage returns a page of the overage ledger.
func (s *AnalyticsStore) ListLedgerPage(ctx context.Context, f usage.LedgerPage) ([]usage.LedgerEntry, error) {
	if f.Limit < 1 {
		return nil, usage.FieldErrorf("limit", "must be positive")
	}
	var (
		afterP *time.Time
		afterU *string
		afterS int
	)
	if f.After != nil {
		afterP, afterU, afterS = &f.After.PeriodStart, &f.After.UserID, f.After.Seq
		if !usage.IsUUID(*afterU) {
			return nil, usage.FieldErrorf("cursor", "is not a cursor of this list")
		}
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT `+ledgerColumns+ledgerLines+`
		FROM eco_overage_ledger l
		WHERE l.period_start >= $1 AND l.period_start < $2
			AND ($3::timestamptz IS NULL OR (l.period_start, l.user_id, l.seq) > ($3, $4::uuid, $5))
		ORDER BY l.period_start, l.user_id, l.seq LIMIT $6`, f.From, f.To, afterP, afterU, afterS, f.Limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list overage ledger: %w", err))
	}
	defer rows.Close()
	out := []usage.LedgerEntry{}
	for rows.Next() {
		var e usage.LedgerEntry
		if err := scanLedger(rows, &e, true); err != nil {
			return nil, FormatError(fmt.Errorf("list overage ledger: %w", err))
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, FormatError(fmt.Errorf("list overage ledger: %w", err))
	}
	return out, nil
}

// RetryLedgerEntry makes a failed ledger row pending again, its attempts
// from zero and its retries counted, and writes the audit row (who, when,
// the row before and after), in one transaction. The next billing run
// looks the row up in Stripe before it sends it again (Retries > 0).
func (s *AnalyticsStore) RetryLedgerEntry(ctx context.Context, ledgerID, who string) (*usage.LedgerEntry, error) {
	if !usage.IsUUID(ledgerID) {
		return nil, usage.FieldErrorf("id", "must be a UUID")
	}
	now := s.db.now()
	var e usage.LedgerEntry
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		var (
			old    []byte
			status string
		)
		err := tx.QueryRow(ctx, `SELECT to_jsonb(l), l.status FROM eco_overage_ledger l WHERE l.ledger_id = $1 FOR UPDATE`, ledgerID).Scan(&old, &status)
		if err == pgx.ErrNoRows {
			return usage.Errorf(usage.CodeNotFound, "no ledger row %s", ledgerID)
		}
		if err != nil {
			return err
		}
		if status != usage.LedgerFailed {
			return usage.Errorf(usage.CodeConflict, "ledger row %s is %s; only failed rows can be retried", ledgerID, status)
		}
		if err := scanLedger(tx.QueryRow(ctx, `UPDATE eco_overage_ledger l SET status = 'pending', attempts = 0,
				retries = l.retries + 1, lease_owner = NULL, lease_until = NULL, updated_at = $2
			WHERE l.ledger_id = $1 RETURNING `+ledgerColumns+ledgerLines, ledgerID, now), &e, true); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO eco_overage_audit (who, at, ledger_id, action, old, new)
			SELECT $1, $2, $3, 'retry', $4, to_jsonb(l) FROM eco_overage_ledger l WHERE l.ledger_id = $3`, who, now, ledgerID, old)
		return err
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("retry ledger row %s: %w", ledgerID, err))
	}
	return &e, nil
}

// AnalyticsSQL holds the statements behind the hot analytics routes, so that
// benchmarks can time the bare query beside the handler. Parameters:
// Summary ($1 user, $2 today); Daily ($1 user, $2 from, $3 to, $4 today);
// TopUsersByCalls ($1 from, $2 to, $3 today, $4 limit).
var AnalyticsSQL = struct {
	Summary, Daily, TopUsersByCalls string
}{
	Summary:         summaryQuery,
	Daily:           dailyQuery,
	TopUsersByCalls: fmt.Sprintf(topUsersQuery, "calls", "t.calls"),
}
