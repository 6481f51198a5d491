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

// AnalyticsStore answers the analytics API's queries, those of the user
// routes (report.UsageReader) and of the admin routes (report.AdminStore):
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
	_ report.UsageReader = (*AnalyticsStore)(nil)
	_ report.AdminStore  = (*AnalyticsStore)(nil)
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
		ORDER BY l.period_start DESC LIMIT 13) x -- report.MaxBilledPeriods, and the current period
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
// report.Summarize builds it from one statement's rows.
func (s *AnalyticsStore) UsageSummary(ctx context.Context, userID string, now time.Time) (*report.UsageSummary, error) {
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
	err := scanSubscription(s.db.with(userReads).QueryRow(ctx, summaryQuery, userID, usage.Day(now)), &sub,
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
	ledger := make([]report.LedgerSums, len(rows))
	for i, r := range rows {
		ledger[i] = report.LedgerSums{Period: usage.Period{Start: r.Start.UTC(), End: r.End.UTC()}, Currency: r.Currency,
			Billed: r.Billed, Pending: r.Pending, Failed: r.Failed, BilledRows: r.BilledRows, PendingRows: r.PendingRows, FailedRows: r.FailedRows}
	}
	dc := make([]usage.DayCalls, len(days))
	for i, d := range days {
		dc[i] = usage.DayCalls{Day: d.UTC(), Calls: calls[i]}
	}
	sum, err := report.Summarize(&sub, terms, dc, ledger, now)
	if err != nil {
		return nil, fmt.Errorf("usage summary of %s: %w", userID, err)
	}
	for i, d := range days {
		if u := updated[i].UTC(); sum.Period.HasDay(d.UTC()) && (sum.LastUpdated == nil || u.After(*sum.LastUpdated)) {
			sum.LastUpdated = &u
		}
	}
	return sum, nil
}

// dailyQuery returns one row per day of [$2, $3]: the rollup of closed days
// (from its per-user, per-day summary, one row a day), and the live
// counters of today ($4 and later), days dirty (as a whole or for the
// user) and days with counters but no rollup yet; a past day with neither
// had no usage and reads as zeros.
const dailyQuery = `WITH r AS (
	SELECT day, calls, errors_4xx AS e4, errors_5xx AS e5, request_bytes AS rq, response_bytes AS rs, latency_p95_ms AS p95
	FROM eco_usage_user_daily WHERE user_id = $1 AND day BETWEEN $2 AND $3
), c AS (
	SELECT day, calls, errors_4xx, errors_5xx, request_bytes, response_bytes
	FROM eco_usage_counters WHERE user_id = $1 AND day BETWEEN $2 AND $3
), dirty AS (
	SELECT day FROM eco_usage_dirty_days WHERE day BETWEEN $2 AND $3
	UNION
	SELECT day FROM eco_usage_dirty_user_days WHERE day BETWEEN $2 AND $3 AND user_id = $1
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
func (s *AnalyticsStore) DailyUsage(ctx context.Context, userID string, r usage.DayRange, now time.Time) ([]report.DailyUsage, error) {
	if err := checkUser(userID); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	rows, err := s.db.with(userReads).Query(ctx, dailyQuery, userID, r.From, r.To, usage.Day(now))
	if err != nil {
		return nil, FormatError(fmt.Errorf("daily usage of %s: %w", userID, err))
	}
	out := make([]report.DailyUsage, 0, r.Len())
	var d report.DailyUsage
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

func checkBreakdown(f report.BreakdownFilter) error {
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
func (s *AnalyticsStore) EndpointBreakdown(ctx context.Context, f report.BreakdownFilter) ([]report.Breakdown, error) {
	if err := checkBreakdown(f); err != nil {
		return nil, err
	}
	return s.breakdown(ctx, fmt.Sprintf(breakdownQuery, "endpoint"), f)
}

// KeyBreakdown returns a page of the user's usage per API key, "" standing
// for calls made without one.
func (s *AnalyticsStore) KeyBreakdown(ctx context.Context, f report.BreakdownFilter) ([]report.Breakdown, error) {
	if err := checkBreakdown(f); err != nil {
		return nil, err
	}
	q := `SELECT b.*, coalesce(k.prefix, ''), coalesce(k.name, '')
	FROM (` + fmt.Sprintf(breakdownQuery, "coalesce(api_key_id::text, '')") + `) b
	LEFT JOIN eco_api_keys k ON k.api_key_id = nullif(b.key, '')::uuid
	ORDER BY b.calls DESC, b.key`
	return s.breakdown(ctx, q, f)
}

func (s *AnalyticsStore) breakdown(ctx context.Context, q string, f report.BreakdownFilter) ([]report.Breakdown, error) {
	var afterCalls *int64
	var afterKey string
	if f.After != nil {
		afterCalls, afterKey = &f.After.Calls, f.After.Key
	}
	rows, err := s.db.with(userReads).Query(ctx, q, f.UserID, f.Range.From, f.Range.To, afterCalls, afterKey, f.Limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("usage breakdown of %s: %w", f.UserID, err))
	}
	defer rows.Close()
	out := []report.Breakdown{}
	keys := len(rows.FieldDescriptions()) > 8
	for rows.Next() {
		var b report.Breakdown
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

// AnalyticsSQL holds the statements behind the hot analytics routes, so that
// benchmarks can time the bare query beside the handler. Parameters:
// Summary ($1 user, $2 today); Daily ($1 user, $2 from, $3 to, $4 today);
// TopUsersByCalls ($1 from, $2 to, $3 today, $4 limit, $5 now).
var AnalyticsSQL = struct {
	Summary, Daily, TopUsersByCalls string
}{
	Summary:         summaryQuery,
	Daily:           dailyQuery,
	TopUsersByCalls: fmt.Sprintf(topUsersQuery, "calls", "t.calls"),
}
