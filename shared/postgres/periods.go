package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/usage"
)

// BillableSubscriptions returns the subscriptions whose terms history
// holds terms that bill (billing.BillableSubscription.Bills, judged in Go
// after Plan.Apply), those with ledger rows (an item adopted from Stripe
// for terms a restore of the database lost is weighed against the terms
// left), and those with no history at all, which the run reports: the
// statement leaves out the subscriptions that were only ever on the free
// plan and never billed. Each comes with its history and its progress
// (eco_overage_progress). The plans are read once, and the history as
// arrays of plan ids and overrides, so that 10,000 subscriptions cost one
// row each and no plan is decoded twice.
func (s *LedgerStore) BillableSubscriptions(ctx context.Context) ([]*billing.BillableSubscription, error) {
	plans := map[string]usage.Plan{}
	rows, err := s.db.with(billingWork).Query(ctx, `SELECT `+planColumns+` FROM eco_plans p`)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list plans: %w", err))
	}
	var plan usage.Plan
	if _, err := pgx.ForEachRow(rows, []any{&plan.ID, &plan.Name, &plan.IncludedCalls, &plan.HardLimit, &plan.RatePerSecond, &plan.Burst,
		&plan.PriceModel, &plan.OverageUnitSize, &plan.OverageUnitPrice, &plan.Tiers, &plan.Currency}, func() error {
		plans[plan.ID] = plan
		plan = usage.Plan{}
		return nil
	}); err != nil {
		return nil, FormatError(fmt.Errorf("list plans: %w", err))
	}
	rows, err = s.db.with(billingWork).Query(ctx, billableQuery)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list billable subscriptions: %w", err))
	}
	return scanBillable(rows, plans)
}

// billableQuery reads every subscription whose terms history holds a plan
// other than free, or that has ledger rows, or no history, with that
// history as arrays, whether it has ledger rows, and its progress.
const billableQuery = `SELECT ` + subscriptionColumns + `, s.user_id::text,
			h.froms, h.plans, h.overrides, h.changes, pr.closed_through, r.has_rows
		FROM eco_subscriptions s JOIN eco_plans p ON p.plan_id = s.plan_id
		JOIN LATERAL (SELECT array_agg(t.effective_from ORDER BY t.effective_from) AS froms,
				array_agg(t.plan_id ORDER BY t.effective_from) AS plans,
				array_agg(t.overrides::text ORDER BY t.effective_from) AS overrides,
				array_agg(t.change ORDER BY t.effective_from) AS changes,
				coalesce(bool_or(t.plan_id <> 'free'), true) AS bills
			FROM eco_subscription_terms t WHERE t.user_id = s.user_id) h ON true
		CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM eco_overage_ledger l WHERE l.user_id = s.user_id) AS has_rows) r
		LEFT JOIN eco_overage_progress pr ON pr.user_id = s.user_id
		WHERE h.bills OR r.has_rows
		ORDER BY s.user_id`

// scanBillable scans billableQuery's rows, merging each history entry's
// overrides into its plan.
func scanBillable(rows pgx.Rows, plans map[string]usage.Plan) ([]*billing.BillableSubscription, error) {
	defer rows.Close()
	var out []*billing.BillableSubscription
	for rows.Next() {
		var (
			sub                         billing.BillableSubscription
			froms                       []time.Time
			planIDs, overrides, changes []string
			through                     *time.Time
			hasRows                     bool
		)
		if err := scanSubscription(rows, &sub.Subscription, &sub.UserID, &froms, &planIDs, &overrides, &changes, &through, &hasRows); err != nil {
			return nil, FormatError(fmt.Errorf("scan billable subscription: %w", err))
		}
		sub.History = make([]usage.Terms, len(froms))
		for i := range froms {
			t := usage.Terms{From: froms[i].UTC(), PlanID: planIDs[i], Change: changes[i]}
			if overrides[i] != "{}" {
				if err := json.Unmarshal([]byte(overrides[i]), &t.Overrides); err != nil {
					return nil, fmt.Errorf("decode the overrides of %s: %w", sub.UserID, err)
				}
			}
			t.Effective = plans[t.PlanID].Apply(t.Overrides)
			sub.History[i] = t
		}
		if through != nil {
			sub.ClosedThrough = through.UTC()
		}
		if sub.Bills() || len(sub.History) == 0 || hasRows {
			out = append(out, &sub)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, FormatError(fmt.Errorf("list billable subscriptions: %w", err))
	}
	return out, nil
}

// PeriodStates returns, per period and in the order given, the calls of
// the period's days so far (the live counters: periods are whole UTC days;
// per day only when the period asks ByDay) and the summary of the
// period's ledger rows.
func (s *LedgerStore) PeriodStates(ctx context.Context, periods []billing.UserPeriod) ([]billing.PeriodState, error) {
	out := make([]billing.PeriodState, 0, len(periods))
	for len(periods) > 0 {
		n := min(len(periods), periodStateChunk)
		chunk, err := s.periodStates(ctx, periods[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
		periods = periods[n:]
	}
	return out, nil
}

// periodStatesQuery reads, per (user, period start, period end) of the
// arrays $1..$4: the days with calls (in no order) when $4 asks for them
// by day, and their sum, and in one pass over the period's ledger rows
// their count, highest seq, sum of the amounts of the rows that charge
// (not skipped) and of billed amounts, whether the latest row is skipped
// and its amount, the currency the rows charged in, the lines of the latest row that has some (a row adopted
// from Stripe has none: an empty array), and the first row's pricing (rows
// from before lines were kept, whose lines are NULL).
const periodStatesQuery = `SELECT p.i, CASE WHEN p.by_day THEN c.days END, CASE WHEN p.by_day THEN c.calls END, c.total,
	coalesce(l.n, 0), coalesce(l.max_seq, 0), coalesce(l.amount, 0), coalesce(l.billed, 0),
	coalesce(l.last_status = 'skipped', false), coalesce(l.last_amount, 0), coalesce(l.charged_currency, ''),
	l.lines, l.n > 0 AND l.no_lines, coalesce(l.included_calls, 0), coalesce(l.unit_size, 0),
	coalesce(l.unit_price, 0), coalesce(l.currency, '')
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::boolean[]) WITH ORDINALITY AS p(user_id, period_start, period_end, by_day, i)
CROSS JOIN LATERAL (SELECT CASE WHEN p.by_day THEN array_agg(k.day) END AS days, CASE WHEN p.by_day THEN array_agg(k.calls) END AS calls,
		coalesce(sum(k.calls), 0)::bigint AS total
	FROM eco_usage_counters k
	WHERE k.user_id = p.user_id
	  AND k.day >= (p.period_start AT TIME ZONE 'UTC')::date
	  AND k.day < (p.period_end AT TIME ZONE 'UTC')::date AND k.calls <> 0) c
CROSS JOIN LATERAL (SELECT count(*)::int AS n, max(l.seq) AS max_seq,
		sum(l.amount) FILTER (WHERE l.status <> 'skipped')::bigint AS amount,
		sum(l.amount) FILTER (WHERE l.status = 'billed')::bigint AS billed,
		(array_agg(l.status ORDER BY l.seq DESC))[1] AS last_status,
		(array_agg(l.amount ORDER BY l.seq DESC))[1] AS last_amount,
		(array_agg(l.currency ORDER BY l.seq) FILTER (WHERE l.status <> 'skipped' AND l.amount <> 0))[1] AS charged_currency,
		(array_agg(l.lines ORDER BY l.seq DESC) FILTER (WHERE jsonb_array_length(l.lines) > 0))[1] AS lines,
		bool_and(l.lines IS NULL) AS no_lines,
		(array_agg(l.included_calls ORDER BY l.seq))[1] AS included_calls,
		(array_agg(l.unit_size ORDER BY l.seq))[1] AS unit_size,
		(array_agg(l.unit_price ORDER BY l.seq))[1] AS unit_price,
		(array_agg(l.currency ORDER BY l.seq))[1] AS currency
	FROM eco_overage_ledger l WHERE l.user_id = p.user_id AND l.period_start = p.period_start) l
ORDER BY p.i`

func (s *LedgerStore) periodStates(ctx context.Context, periods []billing.UserPeriod) ([]billing.PeriodState, error) {
	users := make([]string, len(periods))
	starts := make([]time.Time, len(periods))
	ends := make([]time.Time, len(periods))
	byDay := make([]bool, len(periods))
	for i, p := range periods {
		users[i], starts[i], ends[i], byDay[i] = p.UserID, p.Period.Start, p.Period.End, p.ByDay
	}
	rows, err := s.db.with(billingWork).Query(ctx, periodStatesQuery, users, starts, ends, byDay)
	if err != nil {
		return nil, FormatError(fmt.Errorf("read period states: %w", err))
	}
	defer rows.Close()
	out := make([]billing.PeriodState, 0, len(periods))
	for rows.Next() {
		var (
			i       int64
			st      billing.PeriodState
			days    []time.Time
			calls   []int64
			total   int64
			lines   []byte
			hasBase bool
			base    usage.Line
		)
		if err := rows.Scan(&i, &days, &calls, &total, &st.Rows, &st.MaxSeq, &st.Recorded, &st.Billed, &st.LastSkipped, &st.LastAmount, &st.Currency, &lines,
			&hasBase, &base.Included, &base.Price.UnitSize, &base.Price.UnitPrice, &base.Price.Currency); err != nil {
			return nil, FormatError(fmt.Errorf("scan period state: %w", err))
		}
		st.UserPeriod = periods[i-1]
		for j, d := range days {
			st.Days = append(st.Days, usage.DayCalls{Day: d.UTC(), Calls: calls[j]})
		}
		if !st.ByDay && total != 0 {
			st.Days = []usage.DayCalls{{Day: st.Period.Start, Calls: total}}
		}
		switch {
		case lines != nil:
			if err := json.Unmarshal(lines, &st.Lines); err != nil {
				return nil, fmt.Errorf("decode ledger lines: %w", err)
			}
		case hasBase:
			// Rows without lines alone (lines NULL): one package price
			// over the whole period, with the seq 0 row's terms.
			base.From, base.To, base.Bills = st.Period.Start, st.Period.End, true
			base.Price.Model = usage.PricePackage
			st.Lines = []usage.Line{base}
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, FormatError(fmt.Errorf("read period states: %w", err))
	}
	return out, nil
}
