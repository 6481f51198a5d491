package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/usage"
)

// LedgerStore is the overage ledger and what billing runs read.
type LedgerStore struct{ db *DB }

// NewLedgerStore returns a store over db.
func NewLedgerStore(db *DB) *LedgerStore { return &LedgerStore{db: db} }

var _ usage.LedgerStore = (*LedgerStore)(nil)

// periodStateChunk bounds the pairs sent in one PeriodStates round trip.
const periodStateChunk = 5000

// BillableSubscriptions returns the subscriptions whose effective plan bills
// overage (usage.Plan.Bills after Plan.Apply: not free, and a positive unit
// price after overrides). The statement leaves out the free plan's rows
// only; the overrides are merged and judged in Go.
func (s *LedgerStore) BillableSubscriptions(ctx context.Context) ([]*usage.Subscription, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+subscriptionColumns+`, s.user_id::text
		FROM eco_subscriptions s JOIN eco_plans p ON p.plan_id = s.plan_id
		WHERE s.plan_id <> 'free'
		ORDER BY s.user_id`)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list billable subscriptions: %w", err))
	}
	defer rows.Close()
	var out []*usage.Subscription
	for rows.Next() {
		var sub usage.Subscription
		if err := scanSubscription(rows, &sub, &sub.UserID); err != nil {
			return nil, FormatError(fmt.Errorf("scan billable subscription: %w", err))
		}
		if sub.Effective.Bills() {
			out = append(out, &sub)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, FormatError(fmt.Errorf("list billable subscriptions: %w", err))
	}
	return out, nil
}

// PeriodStates returns, per period and in the order given, the calls used
// (the live counters of the period's days: periods are whole UTC days) and
// the summary of the period's ledger rows.
func (s *LedgerStore) PeriodStates(ctx context.Context, periods []usage.UserPeriod) ([]usage.PeriodState, error) {
	out := make([]usage.PeriodState, 0, len(periods))
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

func (s *LedgerStore) periodStates(ctx context.Context, periods []usage.UserPeriod) ([]usage.PeriodState, error) {
	users := make([]string, len(periods))
	starts := make([]time.Time, len(periods))
	ends := make([]time.Time, len(periods))
	for i, p := range periods {
		users[i], starts[i], ends[i] = p.UserID, p.Period.Start, p.Period.End
	}
	const q = `SELECT p.i,
		coalesce((SELECT sum(c.calls) FROM eco_usage_counters c
			WHERE c.user_id = p.user_id
			  AND c.day >= (p.period_start AT TIME ZONE 'UTC')::date
			  AND c.day < (p.period_end AT TIME ZONE 'UTC')::date), 0)::bigint,
		coalesce(l.n, 0), coalesce(l.max_seq, 0), coalesce(l.units, 0), coalesce(l.amount, 0),
		b.ledger_id IS NOT NULL, coalesce(b.included_calls, 0), coalesce(b.unit_size, 0),
		coalesce(b.unit_price, 0), coalesce(b.currency, '')
	FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY AS p(user_id, period_start, period_end, i)
	LEFT JOIN LATERAL (SELECT count(*)::int AS n, max(seq) AS max_seq, sum(units)::bigint AS units, sum(amount)::bigint AS amount
		FROM eco_overage_ledger l WHERE l.user_id = p.user_id AND l.period_start = p.period_start) l ON true
	LEFT JOIN eco_overage_ledger b ON b.user_id = p.user_id AND b.period_start = p.period_start AND b.seq = 0
	ORDER BY p.i`
	rows, err := s.db.Pool.Query(ctx, q, users, starts, ends)
	if err != nil {
		return nil, FormatError(fmt.Errorf("read period states: %w", err))
	}
	defer rows.Close()
	out := make([]usage.PeriodState, 0, len(periods))
	for rows.Next() {
		var (
			i       int64
			st      usage.PeriodState
			hasBase bool
			base    usage.Overage
		)
		if err := rows.Scan(&i, &st.Used, &st.Rows, &st.MaxSeq, &st.Units, &st.Amount,
			&hasBase, &base.Included, &base.UnitSize, &base.UnitPrice, &base.Currency); err != nil {
			return nil, FormatError(fmt.Errorf("scan period state: %w", err))
		}
		st.UserPeriod = periods[i-1]
		if hasBase {
			st.Base = &base
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, FormatError(fmt.Errorf("read period states: %w", err))
	}
	return out, nil
}

// InsertLedgerEntries inserts the rows in one statement; rows whose (user,
// period, seq) or key exists already are left alone, which is what makes
// concurrent runs that planned the same row write it once.
func (s *LedgerStore) InsertLedgerEntries(ctx context.Context, entries []*usage.LedgerEntry, now time.Time) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	n := len(entries)
	var (
		users, keys, currencies, statuses, notes      = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		starts, ends                                  = make([]time.Time, n), make([]time.Time, n)
		seqs                                          = make([]int32, n)
		included, used, units, sizes, prices, amounts = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	)
	for i, e := range entries {
		users[i], keys[i], currencies[i], statuses[i], notes[i] = e.UserID, e.IdempotencyKey, e.Currency, e.Status, e.Note
		starts[i], ends[i], seqs[i] = e.Period.Start, e.Period.End, int32(e.Seq)
		included[i], used[i], units[i], sizes[i], prices[i], amounts[i] = e.Included, e.Used, e.Units, e.UnitSize, e.UnitPrice, e.Amount
	}
	tag, err := s.db.Pool.Exec(ctx, `INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end, seq,
			included_calls, used_calls, units, unit_size, unit_price, amount, currency, idempotency_key, status, note,
			created_at, updated_at)
		SELECT gen_random_uuid(), u, ps, pe, sq, inc, usd, un, sz, pr, am, cur, k, st, nullif(nt, ''), $15, $15
		FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int[], $5::bigint[], $6::bigint[],
			$7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[])
			AS t(u, ps, pe, sq, inc, usd, un, sz, pr, am, cur, k, st, nt)
		ORDER BY u, ps, sq
		ON CONFLICT DO NOTHING`,
		users, starts, ends, seqs, included, used, units, sizes, prices, amounts, currencies, keys, statuses, notes,
		now)
	if err != nil {
		return 0, FormatError(fmt.Errorf("insert %d ledger rows: %w", n, err))
	}
	return int(tag.RowsAffected()), nil
}

const ledgerColumns = `l.ledger_id::text, l.user_id::text, l.period_start, l.period_end, l.seq,
	l.included_calls, l.used_calls, l.units, l.unit_size, l.unit_price, l.amount, l.currency,
	l.idempotency_key, l.status, coalesce(l.stripe_object_id, ''), l.attempts, coalesce(l.last_error, ''),
	coalesce(l.note, ''), l.created_at, l.updated_at`

func scanLedger(row pgx.Row, e *usage.LedgerEntry, extra ...any) error {
	err := row.Scan(append([]any{&e.ID, &e.UserID, &e.Period.Start, &e.Period.End, &e.Seq,
		&e.Included, &e.Used, &e.Units, &e.UnitSize, &e.UnitPrice, &e.Amount, &e.Currency,
		&e.IdempotencyKey, &e.Status, &e.StripeObjectID, &e.Attempts, &e.LastError,
		&e.Note, &e.CreatedAt, &e.UpdatedAt}, extra...)...)
	e.Period.Start, e.Period.End = e.Period.Start.UTC(), e.Period.End.UTC()
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return err
}

// ClaimPending leases pending rows with FOR UPDATE SKIP LOCKED, so that
// concurrent runs take disjoint rows, and bumps their attempts before any
// call is made. A leased row comes back only when its lease ends (the run
// that held it crashed) or when it is released by MarkRetry, and never to
// the same owner twice.
func (s *LedgerStore) ClaimPending(ctx context.Context, r usage.ClaimRequest) ([]*usage.LedgerEntry, error) {
	rows, err := s.db.Pool.Query(ctx, `WITH c AS (
			SELECT ledger_id FROM eco_overage_ledger
			WHERE status = 'pending' AND (lease_until IS NULL OR lease_until <= $2)
			  AND lease_owner IS DISTINCT FROM $1
			ORDER BY created_at, ledger_id
			LIMIT $4
			FOR UPDATE SKIP LOCKED)
		UPDATE eco_overage_ledger l
		SET lease_owner = $1, lease_until = $3, attempts = l.attempts + 1, updated_at = $2
		FROM c WHERE l.ledger_id = c.ledger_id
		RETURNING `+ledgerColumns+`,
			coalesce((SELECT s.stripe_customer_id FROM eco_subscriptions s WHERE s.user_id = l.user_id), ''),
			coalesce((SELECT s.stripe_subscription_id FROM eco_subscriptions s WHERE s.user_id = l.user_id), '')`,
		r.Owner, r.Now, r.Now.Add(r.Lease), r.Limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("claim pending ledger rows: %w", err))
	}
	defer rows.Close()
	var out []*usage.LedgerEntry
	for rows.Next() {
		var e usage.LedgerEntry
		if err := scanLedger(rows, &e, &e.CustomerID, &e.SubscriptionID); err != nil {
			return nil, FormatError(fmt.Errorf("scan claimed ledger row: %w", err))
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, FormatError(fmt.Errorf("claim pending ledger rows: %w", err))
	}
	return out, nil
}

// MarkBilled ends pending rows as billed, in one statement. Marking a row
// that is no longer pending changes nothing (a concurrent run billed it with
// the same key).
func (s *LedgerStore) MarkBilled(ctx context.Context, items []usage.Billed, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	ids := make([]string, len(items))
	sids := make([]string, len(items))
	for i, b := range items {
		ids[i], sids[i] = b.LedgerID, b.StripeID
	}
	_, err := s.db.Pool.Exec(ctx, `UPDATE eco_overage_ledger l
		SET status = 'billed', stripe_object_id = b.sid, last_error = NULL, lease_until = NULL, updated_at = $3
		FROM unnest($1::uuid[], $2::text[]) AS b(id, sid)
		WHERE l.ledger_id = b.id AND l.status = 'pending'`, ids, sids, now)
	if err != nil {
		return FormatError(fmt.Errorf("mark %d ledger rows billed: %w", len(items), err))
	}
	return nil
}

// MarkRetry records the reason on a pending row and releases its lease.
func (s *LedgerStore) MarkRetry(ctx context.Context, ledgerID, reason string, now time.Time) error {
	_, err := s.db.Pool.Exec(ctx, `UPDATE eco_overage_ledger
		SET last_error = $2, lease_until = NULL, updated_at = $3
		WHERE ledger_id = $1 AND status = 'pending'`, ledgerID, reason, now)
	if err != nil {
		return FormatError(fmt.Errorf("release ledger row %s: %w", ledgerID, err))
	}
	return nil
}

// MarkFailed ends a pending row as failed with the reason.
func (s *LedgerStore) MarkFailed(ctx context.Context, ledgerID, reason string, now time.Time) error {
	_, err := s.db.Pool.Exec(ctx, `UPDATE eco_overage_ledger
		SET status = 'failed', last_error = $2, lease_until = NULL, updated_at = $3
		WHERE ledger_id = $1 AND status = 'pending'`, ledgerID, reason, now)
	if err != nil {
		return FormatError(fmt.Errorf("mark ledger row %s failed: %w", ledgerID, err))
	}
	return nil
}

// OpenPeriodOverage returns the overage of the user's open period so far
// and projected to its end. A user without a subscription is on free, which
// never bills: the overage is zero.
func (s *LedgerStore) OpenPeriodOverage(ctx context.Context, userID string, now time.Time) (*usage.OverageProjection, error) {
	sub, err := NewSubscriptionStore(s.db).Subscription(ctx, userID)
	if err != nil {
		return nil, err
	}
	now = now.UTC()
	p := usage.PeriodAt(sub.PeriodAnchor, now)
	var used int64
	err = s.db.Pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM eco_usage_counters
		WHERE user_id = $1 AND day >= $2::date AND day < $3::date`,
		userID, p.Start.Format(time.DateOnly), p.End.Format(time.DateOnly)).Scan(&used)
	if err != nil {
		return nil, FormatError(fmt.Errorf("sum usage of %s for the open period: %w", userID, err))
	}
	pr := usage.ProjectOverage(sub.Effective, p, used, now)
	return &pr, nil
}
