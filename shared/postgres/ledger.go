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

// LedgerStore is the overage ledger and what billing runs read.
type LedgerStore struct{ db *DB }

// NewLedgerStore returns a store over db.
func NewLedgerStore(db *DB) *LedgerStore { return &LedgerStore{db: db} }

var _ billing.LedgerStore = (*LedgerStore)(nil)

// periodStateChunk bounds the pairs sent in one PeriodStates round trip.
const periodStateChunk = 5000

// overageJob is the job name of billing runs in eco_job_runs.
const overageJob = "overage"

// InsertLedgerEntries inserts the rows and moves the progress in one
// statement; rows whose (user, period, seq), id or key exists already are
// left alone, which is what makes concurrent runs that planned the same row
// write it once, and progress only moves forward. A row's id is its
// LedgerEntry.ID, billing.LedgerID of its (user, period, seq) when empty.
func (s *LedgerStore) InsertLedgerEntries(ctx context.Context, entries []*billing.LedgerEntry, progress []billing.Progress, now time.Time) (int, error) {
	if len(entries) == 0 && len(progress) == 0 {
		return 0, nil
	}
	n := len(entries)
	var (
		ids                                             = make([]string, n)
		users, keys, currencies, statuses, notes, descs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		starts, ends                                    = make([]time.Time, n), make([]time.Time, n)
		seqs                                            = make([]int32, n)
		included, used, units, sizes, prices, amounts   = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		lines                                           = make([]string, n)
	)
	for i, e := range entries {
		ids[i] = e.ID
		if ids[i] == "" {
			ids[i] = billing.LedgerID(e.UserID, e.Period.Start, e.Seq)
		}
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
	err := s.db.with(billingWork).QueryRow(ctx, `WITH ins AS (
			INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end, seq,
				included_calls, used_calls, units, unit_size, unit_price, amount, currency, idempotency_key, status, note,
				description, lines, created_at, updated_at)
			SELECT id, u, ps, pe, sq, inc, usd, un, sz, pr, am, cur, k, st, nullif(nt, ''), ds, ln::jsonb, $17, $17
			FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int[], $5::bigint[], $6::bigint[],
				$7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[],
				$15::text[], $16::text[], $20::uuid[])
				AS t(u, ps, pe, sq, inc, usd, un, sz, pr, am, cur, k, st, nt, ds, ln, id)
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
		descs, lines, now, pUsers, pThrough, ids).Scan(&inserted)
	if err != nil {
		return 0, FormatError(fmt.Errorf("insert %d ledger rows: %w", n, err))
	}
	return inserted, nil
}

// ledgerColumns are a ledger row's columns but its lines, which
// scanLedger reads when the query appends them (ledgerColumns + ", l.lines")
// and claims, which need no lines to bill, leave out.
const ledgerColumns = `l.ledger_id::text, l.user_id::text, l.period_start, l.period_end, l.seq,
	l.included_calls, l.used_calls, l.units, l.unit_size, l.unit_price, l.amount, l.currency,
	l.idempotency_key, l.status, coalesce(l.stripe_object_id, ''), l.attempts, coalesce(l.last_error, ''),
	coalesce(l.note, ''), l.description, l.sent_to, l.retries, l.created_at, l.updated_at`

// ledgerLines follows ledgerColumns in the queries that show the lines.
const ledgerLines = `, l.lines`

// scanLedger scans ledgerColumns, then ledgerLines when lines is true, then
// extra.
func scanLedger(row pgx.Row, e *billing.LedgerEntry, withLines bool, extra ...any) error {
	var lines []byte
	dest := []any{&e.ID, &e.UserID, &e.Period.Start, &e.Period.End, &e.Seq,
		&e.Included, &e.Used, &e.Units, &e.UnitSize, &e.UnitPrice, &e.Amount, &e.Currency,
		&e.IdempotencyKey, &e.Status, &e.StripeObjectID, &e.Attempts, &e.LastError,
		&e.Note, &e.Description, &e.SentTo, &e.Retries, &e.CreatedAt, &e.UpdatedAt}
	if withLines {
		dest = append(dest, &lines)
	}
	err := row.Scan(append(dest, extra...)...)
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
// user's Stripe customer in sent_to before any call is made. Each comes
// with the rows of its period (their seq, status, amount and item), read
// in the same statement (their statuses as of its snapshot). A leased row
// comes back only when its lease ends (the run that held it crashed) or
// when it is released by MarkRetry, and never to the same owner twice.
func (s *LedgerStore) ClaimPending(ctx context.Context, r billing.ClaimRequest) ([]*billing.LedgerEntry, error) {
	// The rows are chosen and locked first, and only they are joined with
	// their subscriptions.
	rows, err := s.db.with(billingWork).Query(ctx, `WITH c AS (
			SELECT ledger_id, user_id, sent_to FROM eco_overage_ledger
			WHERE status = 'pending' AND (lease_until IS NULL OR lease_until <= $2)
			  AND lease_owner IS DISTINCT FROM $1
			ORDER BY created_at, ledger_id
			LIMIT $4
			FOR UPDATE SKIP LOCKED
		), x AS (
			SELECT c.ledger_id, c.sent_to AS before, coalesce(s.stripe_customer_id, '') AS customer,
				coalesce(s.stripe_subscription_id, '') AS subscription
			FROM c LEFT JOIN eco_subscriptions s ON s.user_id = c.user_id)
		UPDATE eco_overage_ledger l
		SET lease_owner = $1, lease_until = $3, attempts = l.attempts + 1, updated_at = $2,
			sent_to = CASE WHEN x.customer = '' OR x.customer = ANY (l.sent_to) THEN l.sent_to ELSE l.sent_to || x.customer END
		FROM x WHERE l.ledger_id = x.ledger_id
		RETURNING `+ledgerColumns+`, x.customer, x.subscription, x.before,
			(SELECT jsonb_agg(jsonb_build_object('seq', o.seq, 'status', o.status, 'amount', o.amount,
					'stripe_id', coalesce(o.stripe_object_id, '')) ORDER BY o.seq)::text
				FROM eco_overage_ledger o WHERE o.user_id = l.user_id AND o.period_start = l.period_start)`,
		r.Owner, r.Now, r.Now.Add(r.Lease), r.Limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("claim pending ledger rows: %w", err))
	}
	defer rows.Close()
	var out []*billing.LedgerEntry
	for rows.Next() {
		var (
			e          billing.LedgerEntry
			before     []string
			periodRows string
		)
		if err := scanLedger(rows, &e, false, &e.CustomerID, &e.SubscriptionID, &before, &periodRows); err != nil {
			return nil, FormatError(fmt.Errorf("scan claimed ledger row: %w", err))
		}
		if err := json.Unmarshal([]byte(periodRows), &e.PeriodRows); err != nil {
			return nil, fmt.Errorf("decode the rows of ledger row %s's period: %w", e.ID, err)
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

// MarkBilled ends pending rows as billed, in one statement, with the
// amount of their item (a row billed with an item an earlier plan created
// takes its amount, and the note). Marking a row that is no longer pending
// changes nothing (a concurrent run billed it with the same key).
func (s *LedgerStore) MarkBilled(ctx context.Context, items []billing.Billed, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	ids := make([]string, len(items))
	sids := make([]string, len(items))
	amounts := make([]int64, len(items))
	notes := make([]string, len(items))
	for i, b := range items {
		ids[i], sids[i], amounts[i], notes[i] = b.LedgerID, b.StripeID, b.Amount, b.Note
	}
	_, err := s.db.with(billingWork).Exec(ctx, `UPDATE eco_overage_ledger l
		SET status = 'billed', stripe_object_id = b.sid, amount = b.amount, note = coalesce(nullif(b.note, ''), l.note),
			last_error = NULL, lease_until = NULL, updated_at = $3
		FROM unnest($1::uuid[], $2::text[], $4::bigint[], $5::text[]) AS b(id, sid, amount, note)
		WHERE l.ledger_id = b.id AND l.status = 'pending'`, ids, sids, now, amounts, notes)
	if err != nil {
		return FormatError(fmt.Errorf("mark %d ledger rows billed: %w", len(items), err))
	}
	return nil
}

// Adopt implements billing.LedgerStore: the row of each item's (user,
// period, seq) becomes billed with the item, its amount, currency and
// note, whatever its status; a missing row is inserted billed, with the
// derived id and key, nothing priced (no lines: an empty array, not the
// NULL of rows from before lines were kept) and the note as its
// description. One statement.
func (s *LedgerStore) Adopt(ctx context.Context, items []billing.Adopted, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	n := len(items)
	ids, users, keys, sids, curs, notes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	starts, ends := make([]time.Time, n), make([]time.Time, n)
	seqs, amounts := make([]int32, n), make([]int64, n)
	for i, a := range items {
		ids[i], users[i], starts[i], ends[i], seqs[i] = billing.LedgerID(a.UserID, a.Period.Start, a.Item.Seq), a.UserID, a.Period.Start, a.Period.End, int32(a.Item.Seq)
		keys[i], sids[i], amounts[i], curs[i], notes[i] = billing.IdempotencyKey(a.UserID, a.Period.Start, a.Item.Seq), a.Item.ID, a.Item.Amount, a.Item.Currency, a.Note
	}
	_, err := s.db.with(billingWork).Exec(ctx, `INSERT INTO eco_overage_ledger AS l (ledger_id, user_id, period_start, period_end, seq,
			included_calls, used_calls, units, unit_size, unit_price, amount, currency, idempotency_key, status, stripe_object_id,
			note, description, lines, created_at, updated_at)
		SELECT id, u, ps, pe, sq, 0, 0, 0, 1, 0, am, cur, k, 'billed', sid, nt, nt, '[]', $11, $11
		FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::int[], $6::text[], $7::text[],
			$8::bigint[], $9::text[], $10::text[]) AS t(id, u, ps, pe, sq, k, sid, am, cur, nt)
		ORDER BY u, ps, sq
		ON CONFLICT (user_id, period_start, seq) DO UPDATE SET status = 'billed', stripe_object_id = excluded.stripe_object_id,
			amount = excluded.amount, currency = excluded.currency, note = excluded.note, last_error = NULL,
			lease_until = NULL, updated_at = excluded.updated_at`,
		ids, users, starts, ends, seqs, keys, sids, amounts, curs, notes, now)
	if err != nil {
		return FormatError(fmt.Errorf("adopt %d invoice items: %w", n, err))
	}
	return nil
}

// MarkSkipped ends a pending row as skipped, charging nothing, with the
// reason as its note.
func (s *LedgerStore) MarkSkipped(ctx context.Context, ledgerID, reason string, now time.Time) error {
	_, err := s.db.with(billingWork).Exec(ctx, `UPDATE eco_overage_ledger
		SET status = 'skipped', amount = 0, note = $2, lease_until = NULL, updated_at = $3
		WHERE ledger_id = $1 AND status = 'pending'`, ledgerID, reason, now)
	if err != nil {
		return FormatError(fmt.Errorf("skip ledger row %s: %w", ledgerID, err))
	}
	return nil
}

// MarkRetry records the reason on a pending row and releases its lease.
func (s *LedgerStore) MarkRetry(ctx context.Context, ledgerID, reason string, now time.Time) error {
	_, err := s.db.with(billingWork).Exec(ctx, `UPDATE eco_overage_ledger
		SET last_error = $2, lease_until = NULL, updated_at = $3
		WHERE ledger_id = $1 AND status = 'pending'`, ledgerID, reason, now)
	if err != nil {
		return FormatError(fmt.Errorf("release ledger row %s: %w", ledgerID, err))
	}
	return nil
}

// MarkFailed ends a pending row as failed with the reason.
func (s *LedgerStore) MarkFailed(ctx context.Context, ledgerID, reason string, now time.Time) error {
	_, err := s.db.with(billingWork).Exec(ctx, `UPDATE eco_overage_ledger
		SET status = 'failed', last_error = $2, lease_until = NULL, updated_at = $3
		WHERE ledger_id = $1 AND status = 'pending'`, ledgerID, reason, now)
	if err != nil {
		return FormatError(fmt.Errorf("mark ledger row %s failed: %w", ledgerID, err))
	}
	return nil
}

// PromoteDueTerms implements billing.LedgerStore with promote_due_terms.
func (s *LedgerStore) PromoteDueTerms(ctx context.Context, now time.Time) (int, error) {
	var n int
	if err := s.db.with(billingWork).QueryRow(ctx, `SELECT promote_due_terms($1::timestamptz)`, now).Scan(&n); err != nil {
		return 0, FormatError(fmt.Errorf("promote due plan changes: %w", err))
	}
	return n, nil
}

// OpenRun implements billing.LedgerStore: a running eco_job_runs row of job
// overage, its detail naming the run and the instant it bills at.
func (s *LedgerStore) OpenRun(ctx context.Context, rep *billing.RunReport, now, started time.Time) (int64, error) {
	var id int64
	if err := s.db.with(billingWork).QueryRow(ctx, `INSERT INTO eco_job_runs (job, started_at, detail)
		VALUES ($1, $2, jsonb_build_object('run_id', $3::text, 'now', $4::timestamptz, 'dry_run', $5::boolean)) RETURNING run_id`,
		overageJob, started, rep.RunID, now, rep.DryRun).Scan(&id); err != nil {
		return 0, FormatError(fmt.Errorf("open job run: %w", err))
	}
	return id, nil
}

// CloseRun implements billing.LedgerStore: the outcome (succeeded or failed,
// with runErr's text), the rows written, and the report as the detail.
func (s *LedgerStore) CloseRun(ctx context.Context, jobRunID int64, rep *billing.RunReport, at time.Time, runErr error) error {
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
	_, err = s.db.with(billingWork).Exec(ctx, `UPDATE eco_job_runs SET finished_at = $2, outcome = $3, rows_written = $4,
		detail = detail || $5::jsonb, error = $6 WHERE run_id = $1`,
		jobRunID, at, outcome, rep.Inserted, string(detail), errText)
	if err != nil {
		return FormatError(fmt.Errorf("close job run %d: %w", jobRunID, err))
	}
	return nil
}

// Unaccounted implements billing.LedgerStore: the items whose (user,
// period, seq) has no row billed with them and their amount, in one
// statement per 5,000 items, with the item a row of theirs is billed with
// when it is another one. Items whose user is not a UUID name no row of
// this ledger and are left out.
func (s *LedgerStore) Unaccounted(ctx context.Context, items []billing.FoundItem) ([]billing.Unaccounted, error) {
	var out []billing.Unaccounted
	for len(items) > 0 {
		n := min(len(items), periodStateChunk)
		chunk, err := s.unaccounted(ctx, items[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
		items = items[n:]
	}
	return out, nil
}

func (s *LedgerStore) unaccounted(ctx context.Context, items []billing.FoundItem) ([]billing.Unaccounted, error) {
	var (
		idx         []int
		users, sids []string
		starts      []time.Time
		seqs        []int32
		amounts     []int64
	)
	for i, it := range items {
		if !usage.IsUUID(it.UserID) {
			continue
		}
		idx = append(idx, i)
		users, starts, seqs, sids, amounts = append(users, it.UserID), append(starts, it.Period.Start), append(seqs, int32(it.Seq)),
			append(sids, it.ID), append(amounts, it.Amount)
	}
	if len(idx) == 0 {
		return nil, nil
	}
	rows, err := s.db.with(billingWork).Query(ctx, `SELECT t.i::int,
			CASE WHEN l.status = 'billed' AND l.stripe_object_id <> t.sid THEN l.stripe_object_id ELSE '' END
		FROM unnest($1::uuid[], $2::timestamptz[], $3::int[], $4::text[], $5::bigint[]) WITH ORDINALITY AS t(u, ps, sq, sid, am, i)
		LEFT JOIN eco_overage_ledger l ON l.user_id = t.u AND l.period_start = t.ps AND l.seq = t.sq
		WHERE l.ledger_id IS NULL OR l.status <> 'billed' OR l.stripe_object_id IS DISTINCT FROM t.sid OR l.amount <> t.am
		ORDER BY t.i`, users, starts, seqs, sids, amounts)
	if err != nil {
		return nil, FormatError(fmt.Errorf("reconcile %d invoice items: %w", len(idx), err))
	}
	var (
		out   []billing.Unaccounted
		i     int
		other string
	)
	_, err = pgx.ForEachRow(rows, []any{&i, &other}, func() error {
		out = append(out, billing.Unaccounted{Item: items[idx[i-1]], RowStripeID: other})
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("reconcile %d invoice items: %w", len(idx), err))
	}
	return out, nil
}
