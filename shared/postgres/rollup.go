package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// RollupStore holds the statements of the daily aggregation: the dirty
// days, aggregate_daily_usage into eco_usage_daily, the raw partitions'
// upkeep and retention, and the job's lock and run rows (jobs.go). The
// workflow around them is rollup.Job.
type RollupStore struct {
	db *DB
	// LockTimeout bounds how long partition DDL waits for the raw table's
	// lock, and so how long it holds the record path's new transactions
	// up behind itself (DefaultLockTimeout when 0).
	LockTimeout time.Duration
}

// NewRollupStore returns a store over db.
func NewRollupStore(db *DB) *RollupStore { return &RollupStore{db: db} }

var _ rollup.Store = (*RollupStore)(nil)

// MarkDirty implements rollup.Store: markDaysDirty, refusing days
// whose raw partition is gone.
func (s *RollupStore) MarkDirty(ctx context.Context, days []time.Time) error {
	_, err := markDaysDirty(ctx, s.db.with(rollupWork), days)
	return err
}

// markDaysDirty marks days dirty as a whole (moving the mark of those dirty
// already) and returns how many it marked, in one transaction that first
// takes the raw table's lock in ACCESS SHARE mode (the parent's alone, not
// its partitions'): the lock DropPartition takes conflicts with it, so a
// partition is either seen gone here or sees these marks in its final
// dirty check, never dropped under them. A day
// whose raw partition does not exist is refused (CodeInvalid, naming
// "from"): recomputing it would empty its rollup, and the job only clears
// its mark, so the backfill would be answered as queued and never done.
func markDaysDirty(ctx context.Context, q stmts, days []time.Time) (int64, error) {
	var (
		n       int64
		missing *time.Time
	)
	err := q.BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE ONLY eco_api_usage IN ACCESS SHARE MODE`); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT min(d) FROM unnest($1::date[]) AS d
			WHERE to_regclass('eco_api_usage_p' || to_char(d, 'YYYYMM')) IS NULL`, days).Scan(&missing); err != nil {
			return err
		}
		if missing != nil {
			return nil
		}
		tag, err := tx.Exec(ctx, `INSERT INTO eco_usage_dirty_days (day, marked_at)
			SELECT d, now() FROM unnest($1::date[]) AS d ORDER BY d
			ON CONFLICT (day) DO UPDATE SET marked_at = now()`, days)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, FormatError(fmt.Errorf("mark %d days dirty: %w", len(days), err))
	}
	if missing != nil {
		return 0, usage.FieldErrorf("from", "raw usage for %s is no longer kept (retention); its rollup cannot be recomputed",
			missing.Format(time.DateOnly))
	}
	return n, nil
}

// dirtyDaysSQL reads every dirty mark, the whole days' and the users'
// (user_id NULL), by day and then user and slot.
const dirtyDaysSQL = `SELECT day, NULL::text, 0, marked_at FROM eco_usage_dirty_days
UNION ALL
SELECT day, user_id::text, slot, marked_at FROM eco_usage_dirty_user_days
ORDER BY 1, 2 NULLS FIRST, 3`

// DirtyDays implements rollup.Store.
func (s *RollupStore) DirtyDays(ctx context.Context) ([]rollup.DirtyDay, error) {
	rows, err := s.db.with(rollupWork).Query(ctx, dirtyDaysSQL)
	if err != nil {
		return nil, FormatError(fmt.Errorf("read dirty days: %w", err))
	}
	var (
		dirty  []rollup.DirtyDay
		day    time.Time
		user   *string
		slot   int32
		marked time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&day, &user, &slot, &marked}, func() error {
		if n := len(dirty); n == 0 || !dirty[n-1].Day.Equal(day) {
			dirty = append(dirty, rollup.DirtyDay{Day: day})
		}
		d := &dirty[len(dirty)-1]
		if user == nil {
			d.MarkedAt = marked
		} else {
			d.Users = append(d.Users, rollup.UserMark{UserID: *user, Slot: int(slot), MarkedAt: marked})
		}
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("read dirty days: %w", err))
	}
	if err := s.markMost(ctx, dirty); err != nil {
		return nil, FormatError(fmt.Errorf("read dirty days: %w", err))
	}
	return dirty, nil
}

// markMost sets Most on the days of dirty whose marked users are at least
// half of the users their rollup holds (eco_usage_user_daily has a row per
// user of a day aggregated).
func (s *RollupStore) markMost(ctx context.Context, dirty []rollup.DirtyDay) error {
	var days []time.Time
	for _, d := range dirty {
		if len(d.Users) > 0 && d.MarkedAt.IsZero() {
			days = append(days, d.Day)
		}
	}
	if len(days) == 0 {
		return nil
	}
	rows, err := s.db.with(rollupWork).Query(ctx, `SELECT d, (SELECT count(*) FROM eco_usage_user_daily s WHERE s.day = d)
		FROM unnest($1::date[]) AS d`, days)
	if err != nil {
		return err
	}
	held := map[string]int64{}
	var day time.Time
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&day, &n}, func() error { held[day.Format(time.DateOnly)] = n; return nil }); err != nil {
		return err
	}
	for i := range dirty {
		d := &dirty[i]
		if len(d.Users) > 0 && d.MarkedAt.IsZero() {
			d.Most = 2*int64(len(partUsers(*d, 0, 1))) >= held[d.Day.Format(time.DateOnly)]
		}
	}
	return nil
}

// clearDirtySQL deletes a day's marks, the whole day's ($2, NULL when it
// had none) and the users' ($3 to $5: user, slot and time of each), only
// those still as read. It returns how many it deleted.
const clearDirtySQL = `WITH w AS (
	DELETE FROM eco_usage_dirty_days WHERE day = $1 AND marked_at = $2
	RETURNING 1
), u AS (
	DELETE FROM eco_usage_dirty_user_days m
	USING unnest($3::uuid[], $4::smallint[], $5::timestamptz[]) AS r(user_id, slot, marked_at)
	WHERE m.day = $1 AND m.user_id = r.user_id AND m.slot = r.slot AND m.marked_at = r.marked_at
	RETURNING 1
)
SELECT (SELECT count(*) FROM w) + (SELECT count(*) FROM u)`

// clearArgs returns clearDirtySQL's parameters for d's marks and how many
// marks d holds.
func clearArgs(d rollup.DirtyDay) ([]any, int64) {
	users, slots, times := make([]string, len(d.Users)), make([]int16, len(d.Users)), make([]time.Time, len(d.Users))
	for i, m := range d.Users {
		users[i], slots[i], times[i] = m.UserID, int16(m.Slot), m.MarkedAt
	}
	var whole *time.Time
	marks := int64(len(d.Users))
	if !d.MarkedAt.IsZero() {
		whole = &d.MarkedAt
		marks++
	}
	return []any{d.Day, whole, users, slots, times}, marks
}

// clearDirty runs clearDirtySQL for d on q and reports whether every mark
// was cleared.
func clearDirty(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, d rollup.DirtyDay) (bool, error) {
	args, marks := clearArgs(d)
	var n int64
	if err := q.QueryRow(ctx, clearDirtySQL, args...).Scan(&n); err != nil {
		return false, err
	}
	return n == marks, nil
}

// partUsers returns the users of d that fall in part of parts: the
// distinct users of d.Users, every parts-th from the part-th.
func partUsers(d rollup.DirtyDay, part, parts int) []string {
	var ids []string
	for _, m := range d.Users {
		if len(ids) > 0 && ids[len(ids)-1] == m.UserID {
			continue
		}
		ids = append(ids, m.UserID)
	}
	var out []string
	for i := part; i < len(ids); i += parts {
		out = append(out, ids[i])
	}
	return out
}

// RecomputeDay implements rollup.Store: aggregate_daily_usage of the
// part (of d.Users' rows when d is not Whole) and, with clear,
// clearDirtySQL, in one transaction.
func (s *RollupStore) RecomputeDay(ctx context.Context, d rollup.DirtyDay, part, parts, maxEndpoints int, clear bool) (int64, bool, error) {
	var users []string
	aggParts := parts
	if !d.Whole() {
		users, part, aggParts = partUsers(d, part, parts), 0, 1
	}
	var n int64
	var cleared bool
	err := s.db.with(rollupWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if d.Whole() || len(users) > 0 {
			if err := tx.QueryRow(ctx, `SELECT aggregate_daily_usage($1, $2, $3, $4, $5::uuid[])`,
				d.Day, part, aggParts, maxEndpoints, users).Scan(&n); err != nil {
				return err
			}
		}
		if !clear {
			return nil
		}
		var err error
		cleared, err = clearDirty(ctx, tx, d)
		return err
	})
	if err != nil {
		return 0, false, FormatError(fmt.Errorf("recompute %s: %w", d.Day.Format(time.DateOnly), err))
	}
	return n, cleared, nil
}

// ClearDirty implements rollup.Store.
func (s *RollupStore) ClearDirty(ctx context.Context, d rollup.DirtyDay) (bool, error) {
	cleared, err := clearDirty(ctx, s.db.with(rollupWork), d)
	if err != nil {
		return false, FormatError(fmt.Errorf("clear dirty marks of %s: %w", d.Day.Format(time.DateOnly), err))
	}
	return cleared, nil
}
