package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/usage"
)

// RollupStore holds the statements of the daily aggregation: the dirty
// days, aggregate_daily_usage into eco_usage_daily, the raw partitions'
// upkeep and retention, and the job's lock and run rows (jobs.go). The
// workflow around them is usage.RollupJob.
type RollupStore struct{ db *DB }

// NewRollupStore returns a store over db.
func NewRollupStore(db *DB) *RollupStore { return &RollupStore{db: db} }

var _ usage.RollupStore = (*RollupStore)(nil)

// lockTimeout bounds how long partition DDL waits for the raw table's lock,
// and so how long it holds the record path's new transactions up behind
// itself.
const lockTimeout = "5s"

func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// EnsurePartitions implements usage.RollupStore: ensure_usage_partitions
// in a transaction whose lock_timeout is lockTimeout. A timeout is
// usage.ErrDeferred.
func (s *RollupStore) EnsurePartitions(ctx context.Context, from time.Time, months int) (int, error) {
	var n int
	err := s.db.with(rollupWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, lockTimeout); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT ensure_usage_partitions($1, $2)`, from, months).Scan(&n)
	})
	if isLockTimeout(err) {
		return 0, usage.ErrDeferred
	}
	if err != nil {
		return 0, FormatError(fmt.Errorf("ensure usage partitions: %w", err))
	}
	return n, nil
}

// EnsureKeyGenerations implements usage.RollupStore:
// ensure_event_key_generations in a transaction whose lock_timeout is
// lockTimeout. A timeout is usage.ErrDeferred.
func (s *RollupStore) EnsureKeyGenerations(ctx context.Context, gens []int) (int, error) {
	var n int
	err := s.db.with(rollupWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, lockTimeout); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT ensure_event_key_generations($1)`, gens).Scan(&n)
	})
	if isLockTimeout(err) {
		return 0, usage.ErrDeferred
	}
	if err != nil {
		return 0, FormatError(fmt.Errorf("ensure event key generations: %w", err))
	}
	return n, nil
}

var keyGenerationName = regexp.MustCompile(`^eco_event_keys_g(-?\d+)$`)

// DropKeyGenerations implements usage.RollupStore: the partitions of
// eco_event_keys named eco_event_keys_g<gen> (as
// ensure_event_key_generations names them) with gen before oldest, each
// dropped in a transaction whose lock_timeout is lockTimeout. A timeout is
// usage.ErrDeferred, returned with the names dropped before it.
func (s *RollupStore) DropKeyGenerations(ctx context.Context, oldest int) ([]string, error) {
	rows, err := s.db.with(rollupWork).Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'eco_event_keys'::regclass ORDER BY 1`)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list event key generations: %w", err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, FormatError(fmt.Errorf("list event key generations: %w", err))
	}
	var dropped []string
	for _, name := range names {
		m := keyGenerationName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		if g, err := strconv.Atoi(m[1]); err != nil || g >= oldest {
			continue
		}
		err := s.db.with(rollupWork).BeginFunc(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, lockTimeout); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{name}.Sanitize())
			return err
		})
		if isLockTimeout(err) {
			return dropped, usage.ErrDeferred
		}
		if err != nil {
			return dropped, FormatError(fmt.Errorf("drop event key generation %s: %w", name, err))
		}
		dropped = append(dropped, name)
	}
	return dropped, nil
}

var partitionName = regexp.MustCompile(`^eco_api_usage_p(\d{4})(\d{2})$`)

// Partitions implements usage.RollupStore: the partitions of eco_api_usage
// named eco_api_usage_pYYYYMM (as ensure_usage_partitions names them),
// one calendar month (UTC) each.
func (s *RollupStore) Partitions(ctx context.Context) ([]usage.Partition, error) {
	rows, err := s.db.with(rollupWork).Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'eco_api_usage'::regclass`)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list partitions: %w", err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, FormatError(fmt.Errorf("list partitions: %w", err))
	}
	var out []usage.Partition
	for _, n := range names {
		m := partitionName.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		start, err := time.Parse("200601", m[1]+m[2])
		if err != nil {
			continue
		}
		out = append(out, usage.Partition{Name: n, Start: start, End: start.AddDate(0, 1, 0)})
	}
	slices.SortFunc(out, func(a, b usage.Partition) int { return a.Start.Compare(b.Start) })
	return out, nil
}

// MarkDirty implements usage.RollupStore.
func (s *RollupStore) MarkDirty(ctx context.Context, days []time.Time) error {
	_, err := s.db.with(rollupWork).Exec(ctx, `INSERT INTO eco_usage_dirty_days (day, marked_at)
		SELECT d, now() FROM unnest($1::date[]) AS d ORDER BY d
		ON CONFLICT (day) DO UPDATE SET marked_at = now()`, days)
	if err != nil {
		return FormatError(fmt.Errorf("mark %d days dirty: %w", len(days), err))
	}
	return nil
}

// DirtyDays implements usage.RollupStore.
func (s *RollupStore) DirtyDays(ctx context.Context) ([]usage.DirtyDay, error) {
	rows, err := s.db.with(rollupWork).Query(ctx, `SELECT day, marked_at FROM eco_usage_dirty_days ORDER BY day`)
	if err != nil {
		return nil, FormatError(fmt.Errorf("read dirty days: %w", err))
	}
	dirty, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (usage.DirtyDay, error) {
		var d usage.DirtyDay
		err := r.Scan(&d.Day, &d.MarkedAt)
		return d, err
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("read dirty days: %w", err))
	}
	return dirty, nil
}

// clearDirtySQL deletes a day's dirty mark only if it is the one read.
const clearDirtySQL = `DELETE FROM eco_usage_dirty_days WHERE day = $1 AND marked_at = $2`

// RecomputeDay implements usage.RollupStore: aggregate_daily_usage of the
// part and, with clear, clearDirtySQL, in one transaction.
func (s *RollupStore) RecomputeDay(ctx context.Context, d usage.DirtyDay, part, parts, maxEndpoints int, clear bool) (int64, bool, error) {
	var n int64
	var cleared bool
	err := s.db.with(rollupWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT aggregate_daily_usage($1, $2, $3, $4)`, d.Day, part, parts, maxEndpoints).Scan(&n); err != nil {
			return err
		}
		if !clear {
			return nil
		}
		tag, err := tx.Exec(ctx, clearDirtySQL, d.Day, d.MarkedAt)
		cleared = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return 0, false, FormatError(fmt.Errorf("recompute %s: %w", d.Day.Format(time.DateOnly), err))
	}
	return n, cleared, nil
}

// ClearDirty implements usage.RollupStore.
func (s *RollupStore) ClearDirty(ctx context.Context, d usage.DirtyDay) (bool, error) {
	tag, err := s.db.with(rollupWork).Exec(ctx, clearDirtySQL, d.Day, d.MarkedAt)
	if err != nil {
		return false, FormatError(fmt.Errorf("clear dirty mark of %s: %w", d.Day.Format(time.DateOnly), err))
	}
	return tag.RowsAffected() == 1, nil
}

// RetentionBlocked implements usage.RollupStore: a dirty day in p blocks
// it; otherwise the days of p with raw events and no row in
// eco_usage_aggregated_days are marked dirty, and any such day blocks it.
func (s *RollupStore) RetentionBlocked(ctx context.Context, p usage.Partition) (bool, error) {
	var dirty bool
	if err := s.db.with(rollupWork).QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM eco_usage_dirty_days WHERE day >= $1 AND day < $2)`,
		p.Start, p.End).Scan(&dirty); err != nil {
		return false, FormatError(fmt.Errorf("check dirty days of %s: %w", p.Name, err))
	}
	if dirty {
		return true, nil
	}
	tag, err := s.db.with(rollupWork).Exec(ctx, `INSERT INTO eco_usage_dirty_days (day, marked_at)
		SELECT d::date, now() FROM generate_series($1::date, $2::date - 1, interval '1 day') AS d
		WHERE NOT EXISTS (SELECT 1 FROM eco_usage_aggregated_days a WHERE a.day = d::date)
		  AND EXISTS (SELECT 1 FROM eco_api_usage u
		              WHERE u.occurred_at >= d::date::timestamp AT TIME ZONE 'UTC'
		                AND u.occurred_at < (d::date + 1)::timestamp AT TIME ZONE 'UTC')
		ORDER BY 1
		ON CONFLICT (day) DO NOTHING`, p.Start, p.End)
	if err != nil {
		return false, FormatError(fmt.Errorf("check unaggregated days of %s: %w", p.Name, err))
	}
	return tag.RowsAffected() > 0, nil
}

// DropPartition implements usage.RollupStore: under lockTimeout, LOCK
// TABLE eco_api_usage (DROP needs that lock anyway), the dirty check, the
// DROP and the month's row in eco_usage_dropped_months (which keeps
// ensure_usage_partitions from creating it again), in one transaction. A
// timeout is usage.ErrDeferred.
func (s *RollupStore) DropPartition(ctx context.Context, p usage.Partition) (bool, error) {
	if !partitionName.MatchString(p.Name) {
		return false, usage.FieldErrorf("partition", "%q is not a raw usage partition", p.Name)
	}
	var dropped bool
	err := s.db.with(rollupWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, lockTimeout); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE eco_api_usage IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		var dirty bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM eco_usage_dirty_days WHERE day >= $1 AND day < $2)`,
			p.Start, p.End).Scan(&dirty); err != nil {
			return err
		}
		if dirty {
			return nil
		}
		if _, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{p.Name}.Sanitize()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO eco_usage_dropped_months (month, dropped_at) VALUES ($1, now())
			ON CONFLICT (month) DO UPDATE SET dropped_at = excluded.dropped_at`, p.Start); err != nil {
			return err
		}
		dropped = true
		return nil
	})
	if isLockTimeout(err) {
		return false, usage.ErrDeferred
	}
	if err != nil {
		return false, FormatError(fmt.Errorf("drop partition %s: %w", p.Name, err))
	}
	return dropped, nil
}
