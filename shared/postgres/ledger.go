package postgres

import (
	"context"
	"encoding/json"
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

// overageJob is the job name of billing runs in eco_job_runs.
const overageJob = "overage"

// BillableSubscriptions returns the subscriptions whose terms history
// holds terms that bill (usage.BillableSubscription.Bills, judged in Go
// after Plan.Apply): the statement leaves out the subscriptions that were
// only ever on the free plan. Each comes with its history (termsHistory)
// and its progress (eco_overage_progress).
func (s *LedgerStore) BillableSubscriptions(ctx context.Context) ([]*usage.BillableSubscription, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+subscriptionColumns+`, s.user_id::text, `+termsHistory+`, pr.closed_through
		FROM eco_subscriptions s JOIN eco_plans p ON p.plan_id = s.plan_id
		LEFT JOIN eco_overage_progress pr ON pr.user_id = s.user_id
		WHERE EXISTS (SELECT 1 FROM eco_subscription_terms t WHERE t.user_id = s.user_id AND t.plan_id <> 'free')
		ORDER BY s.user_id`)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list billable subscriptions: %w", err))
	}
	defer rows.Close()
	var out []*usage.BillableSubscription
	for rows.Next() {
		var (
			sub     usage.BillableSubscription
			history []byte
			through *time.Time
		)
		if err := scanSubscription(rows, &sub.Subscription, &sub.UserID, &history, &through); err != nil {
			return nil, FormatError(fmt.Errorf("scan billable subscription: %w", err))
		}
		if sub.History, err = decodeHistory(history); err != nil {
			return nil, err
		}
		if through != nil {
			sub.ClosedThrough = through.UTC()
		}
		if sub.Bills() {
			out = append(out, &sub)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, FormatError(fmt.Errorf("list billable subscriptions: %w", err))
	}
	return out, nil
}

// PeriodStates returns, per period and in the order given, the calls of
// the period's days so far (the live counters: periods are whole UTC days)
// and the summary of the period's ledger rows.
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

// periodStatesQuery reads, per (user, period start, period end) of the
// arrays $1..$3: the days with calls, the ledger's row count, highest seq,
// sum of amounts (every row) and of billed amounts, the lines of the
// latest row, and the seq 0 row's pricing (rows from before lines were
// kept).
const periodStatesQuery = `SELECT p.i, c.days, c.calls,
	coalesce(l.n, 0), coalesce(l.max_seq, 0), coalesce(l.amount, 0), coalesce(l.billed, 0),
	last.lines, b.ledger_id IS NOT NULL, coalesce(b.included_calls, 0), coalesce(b.unit_size, 0),
	coalesce(b.unit_price, 0), coalesce(b.currency, '')
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY AS p(user_id, period_start, period_end, i)
CROSS JOIN LATERAL (SELECT array_agg(k.day ORDER BY k.day) AS days, array_agg(k.calls ORDER BY k.day) AS calls
	FROM eco_usage_counters k
	WHERE k.user_id = p.user_id
	  AND k.day >= (p.period_start AT TIME ZONE 'UTC')::date
	  AND k.day < (p.period_end AT TIME ZONE 'UTC')::date AND k.calls <> 0) c
LEFT JOIN LATERAL (SELECT count(*)::int AS n, max(seq) AS max_seq, sum(amount)::bigint AS amount,
		sum(amount) FILTER (WHERE status = 'billed')::bigint AS billed
	FROM eco_overage_ledger l WHERE l.user_id = p.user_id AND l.period_start = p.period_start) l ON true
LEFT JOIN LATERAL (SELECT l.lines FROM eco_overage_ledger l
	WHERE l.user_id = p.user_id AND l.period_start = p.period_start ORDER BY l.seq DESC LIMIT 1) last ON l.n > 0
LEFT JOIN eco_overage_ledger b ON b.user_id = p.user_id AND b.period_start = p.period_start AND b.seq = 0
ORDER BY p.i`

func (s *LedgerStore) periodStates(ctx context.Context, periods []usage.UserPeriod) ([]usage.PeriodState, error) {
	users := make([]string, len(periods))
	starts := make([]time.Time, len(periods))
	ends := make([]time.Time, len(periods))
	for i, p := range periods {
		users[i], starts[i], ends[i] = p.UserID, p.Period.Start, p.Period.End
	}
	rows, err := s.db.Pool.Query(ctx, periodStatesQuery, users, starts, ends)
	if err != nil {
		return nil, FormatError(fmt.Errorf("read period states: %w", err))
	}
	defer rows.Close()
	out := make([]usage.PeriodState, 0, len(periods))
	for rows.Next() {
		var (
			i       int64
			st      usage.PeriodState
			days    []time.Time
			calls   []int64
			lines   []byte
			hasBase bool
			base    usage.Line
		)
		if err := rows.Scan(&i, &days, &calls, &st.Rows, &st.MaxSeq, &st.Recorded, &st.Billed, &lines,
			&hasBase, &base.Included, &base.Price.UnitSize, &base.Price.UnitPrice, &base.Price.Currency); err != nil {
			return nil, FormatError(fmt.Errorf("scan period state: %w", err))
		}
		st.UserPeriod = periods[i-1]
		for j, d := range days {
			st.Days = append(st.Days, usage.DayCalls{Day: d.UTC(), Calls: calls[j]})
		}
		switch {
		case lines != nil:
			if err := json.Unmarshal(lines, &st.Lines); err != nil {
				return nil, fmt.Errorf("decode ledger lines: %w", err)
			}
		case hasBase:
			// A row from before migration 00011: one package price over
			// the whole period, with the seq 0 row's terms.
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

// InsertLedgerEntries inserts the rows and moves the progress in one
// statement; rows whose (user, period, seq) or key exists already are left
// alone, which is what makes concurrent runs that planned the same row
// write it once, and progress only moves forward.
func (s *LedgerStore) InsertLedgerEntries(ctx context.Context, entries []*usage.LedgerEntry, progress []usage.Progress, now time.Time) (int, error) {
	if len(entries) == 0 && len(progress) == 0 {
		return 0, nil
	}
	n := len(entries)
	var (
		users, keys, currencies, statuses, notes, descs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		starts, ends                                    = make([]time.Time, n), make([]time.Time, n)
		seqs                                            = make([]int32, n)
		included, used, units, sizes, prices, amounts   = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		lines                                           = make([]string, n)
	)
	for i, e := range entries {
		users[i], keys[i], currencies[i], statuses[i], notes[i], descs[i] = e.UserID, e.IdempotencyKey, e.Currency, e.Status, e.Note, e.Description
		starts[i], ends[i], seqs[i] = e.Period.Start, e.Period.End, int32(e.Seq)
		included[i], used[i], units[i], sizes[i], prices[i], amounts[i] = e.Included, e.Used, e.Units, e.UnitSize, e.UnitPrice, e.Amount
		b, err := json.Marshal(e.Lines)
		if err != nil {
			return 0, fmt.Errorf("encode ledger lines: %w", err)
		}
		lines[i] = string(b)
	}
	pUsers := make([]string, len(progress))
	pThrough := make([]time.Time, len(progress))
	for i, p := range progress {
		pUsers[i], pThrough[i] = p.UserID, p.ClosedThrough
	}
	var inserted int
	err := s.db.Pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end, seq,
				included_calls, used_calls, units, unit_size, unit_price, amount, currency, idempotency_key, status, note,
				description, lines, created_at, updated_at)
			SELECT gen_random_uuid(), u, ps, pe, sq, inc, usd, un, sz, pr, am, cur, k, st, nullif(nt, ''), ds, ln::jsonb, $17, $17
			FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int[], $5::bigint[], $6::bigint[],
				$7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[],
				$15::text[], $16::text[])
				AS t(u, ps, pe, sq, inc, usd, un, sz, pr, am, cur, k, st, nt, ds, ln)
			ORDER BY u, ps, sq
			ON CONFLICT DO NOTHING
			RETURNING 1
		), prog AS (
			INSERT INTO eco_overage_progress AS g (user_id, closed_through, updated_at)
			SELECT u, ct, $17 FROM unnest($18::uuid[], $19::timestamptz[]) AS t(u, ct) ORDER BY u
			ON CONFLICT (user_id) DO UPDATE SET closed_through = greatest(g.closed_through, excluded.closed_through),
				updated_at = excluded.updated_at
		)
		SELECT count(*)::int FROM ins`,
		users, starts, ends, seqs, included, used, units, sizes, prices, amounts, currencies, keys, statuses, notes,
		descs, lines, now, pUsers, pThrough).Scan(&inserted)
	if err != nil {
		return 0, FormatError(fmt.Errorf("insert %d ledger rows: %w", n, err))
	}
	return inserted, nil
}

const ledgerColumns = `l.ledger_id::text, l.user_id::text, l.period_start, l.period_end, l.seq,
	l.included_calls, l.used_calls, l.units, l.unit_size, l.unit_price, l.amount, l.currency,
	l.idempotency_key, l.status, coalesce(l.stripe_object_id, ''), l.attempts, coalesce(l.last_error, ''),
	coalesce(l.note, ''), l.lines, l.description, l.sent_to, l.retries, l.created_at, l.updated_at`

func scanLedger(row pgx.Row, e *usage.LedgerEntry, extra ...any) error {
	var lines []byte
	err := row.Scan(append([]any{&e.ID, &e.UserID, &e.Period.Start, &e.Period.End, &e.Seq,
		&e.Included, &e.Used, &e.Units, &e.UnitSize, &e.UnitPrice, &e.Amount, &e.Currency,
		&e.IdempotencyKey, &e.Status, &e.StripeObjectID, &e.Attempts, &e.LastError,
		&e.Note, &lines, &e.Description, &e.SentTo, &e.Retries, &e.CreatedAt, &e.UpdatedAt}, extra...)...)
	if err != nil {
		return err
	}
	e.Period.Start, e.Period.End = e.Period.Start.UTC(), e.Period.End.UTC()
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	if len(e.SentTo) == 0 {
		e.SentTo = nil
	}
	if lines != nil {
		if err := json.Unmarshal(lines, &e.Lines); err != nil {
			return fmt.Errorf("decode ledger lines: %w", err)
		}
	}
	return nil
}

// ClaimPending leases pending rows with FOR UPDATE SKIP LOCKED, so that
// concurrent runs take disjoint rows, bumps their attempts and records the
// user's Stripe customer in sent_to before any call is made. A leased row
// comes back only when its lease ends (the run that held it crashed) or
// when it is released by MarkRetry, and never to the same owner twice.
func (s *LedgerStore) ClaimPending(ctx context.Context, r usage.ClaimRequest) ([]*usage.LedgerEntry, error) {
	rows, err := s.db.Pool.Query(ctx, `WITH c AS (
			SELECT l.ledger_id, l.sent_to AS before, coalesce(s.stripe_customer_id, '') AS customer,
				coalesce(s.stripe_subscription_id, '') AS subscription
			FROM eco_overage_ledger l LEFT JOIN eco_subscriptions s ON s.user_id = l.user_id
			WHERE l.status = 'pending' AND (l.lease_until IS NULL OR l.lease_until <= $2)
			  AND l.lease_owner IS DISTINCT FROM $1
			ORDER BY l.created_at, l.ledger_id
			LIMIT $4
			FOR UPDATE OF l SKIP LOCKED)
		UPDATE eco_overage_ledger l
		SET lease_owner = $1, lease_until = $3, attempts = l.attempts + 1, updated_at = $2,
			sent_to = CASE WHEN c.customer = '' OR c.customer = ANY (l.sent_to) THEN l.sent_to ELSE l.sent_to || c.customer END
		FROM c WHERE l.ledger_id = c.ledger_id
		RETURNING `+ledgerColumns+`, c.customer, c.subscription, c.before`,
		r.Owner, r.Now, r.Now.Add(r.Lease), r.Limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("claim pending ledger rows: %w", err))
	}
	defer rows.Close()
	var out []*usage.LedgerEntry
	for rows.Next() {
		var (
			e      usage.LedgerEntry
			before []string
		)
		if err := scanLedger(rows, &e, &e.CustomerID, &e.SubscriptionID, &before); err != nil {
			return nil, FormatError(fmt.Errorf("scan claimed ledger row: %w", err))
		}
		e.SentTo = nil
		if len(before) > 0 {
			e.SentTo = before
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

// PromoteDueTerms implements usage.LedgerStore with promote_due_terms
// (migration 00011).
func (s *LedgerStore) PromoteDueTerms(ctx context.Context, now time.Time) (int, error) {
	var n int
	if err := s.db.Pool.QueryRow(ctx, `SELECT promote_due_terms($1::timestamptz)`, now).Scan(&n); err != nil {
		return 0, FormatError(fmt.Errorf("promote due plan changes: %w", err))
	}
	return n, nil
}

// OpenRun implements usage.LedgerStore: a running eco_job_runs row of job
// overage, its detail naming the run and the instant it bills at.
func (s *LedgerStore) OpenRun(ctx context.Context, rep *usage.RunReport, now, started time.Time) (int64, error) {
	var id int64
	if err := s.db.Pool.QueryRow(ctx, `INSERT INTO eco_job_runs (job, started_at, detail)
		VALUES ($1, $2, jsonb_build_object('run_id', $3::text, 'now', $4::timestamptz, 'dry_run', $5::boolean)) RETURNING run_id`,
		overageJob, started, rep.RunID, now, rep.DryRun).Scan(&id); err != nil {
		return 0, FormatError(fmt.Errorf("open job run: %w", err))
	}
	return id, nil
}

// CloseRun implements usage.LedgerStore: the outcome (succeeded or failed,
// with runErr's text), the rows written, and the report as the detail.
func (s *LedgerStore) CloseRun(ctx context.Context, jobRunID int64, rep *usage.RunReport, at time.Time, runErr error) error {
	outcome, errText := "succeeded", (*string)(nil)
	if runErr != nil {
		outcome = "failed"
		t := runErr.Error()
		errText = &t
	}
	detail, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = s.db.Pool.Exec(ctx, `UPDATE eco_job_runs SET finished_at = $2, outcome = $3, rows_written = $4,
		detail = detail || $5::jsonb, error = $6 WHERE run_id = $1`,
		jobRunID, at, outcome, rep.Inserted, detail, errText)
	if err != nil {
		return FormatError(fmt.Errorf("close job run %d: %w", jobRunID, err))
	}
	return nil
}
