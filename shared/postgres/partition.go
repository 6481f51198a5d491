package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// RollupStore's upkeep of the raw table: its monthly partitions and the
// event key store's generations made ahead, and retention, which drops a
// month only once every day in it is aggregated. Its dirty marks and
// recompute are in rollup.go.

// DefaultLockTimeout is RollupStore.LockTimeout's default.
const DefaultLockTimeout = 5 * time.Second

// lockTimeout is LockTimeout as lock_timeout takes it.
func (s *RollupStore) lockTimeout() string {
	return strconv.FormatInt(cmp.Or(s.LockTimeout, DefaultLockTimeout).Milliseconds(), 10) + "ms"
}

func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// EnsurePartitions implements rollup.Store: ensure_usage_partitions
// in a transaction whose lock_timeout is LockTimeout. A timeout is
// rollup.ErrDeferred.
func (s *RollupStore) EnsurePartitions(ctx context.Context, from time.Time, months int) (int, error) {
	var n int
	err := s.db.with(rollupWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, s.lockTimeout()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT ensure_usage_partitions($1, $2)`, from, months).Scan(&n)
	})
	if isLockTimeout(err) {
		return 0, rollup.ErrDeferred
	}
	if err != nil {
		return 0, FormatError(fmt.Errorf("ensure usage partitions: %w", err))
	}
	return n, nil
}

// EnsureKeyGenerations implements rollup.Store:
// ensure_event_key_generations in a transaction whose lock_timeout is
// LockTimeout. A timeout is rollup.ErrDeferred.
func (s *RollupStore) EnsureKeyGenerations(ctx context.Context, gens []int) (int, error) {
	var n int
	err := s.db.with(rollupWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, s.lockTimeout()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT ensure_event_key_generations($1)`, gens).Scan(&n)
	})
	if isLockTimeout(err) {
		return 0, rollup.ErrDeferred
	}
	if err != nil {
		return 0, FormatError(fmt.Errorf("ensure event key generations: %w", err))
	}
	return n, nil
}

var keyGenerationName = regexp.MustCompile(`^eco_event_keys_g(-?\d+)$`)

// DropKeyGenerations implements rollup.Store: the partitions of
// eco_event_keys named eco_event_keys_g<gen> (as
// ensure_event_key_generations names them) with gen before oldest, each
// dropped in a transaction whose lock_timeout is LockTimeout. A timeout is
// rollup.ErrDeferred, returned with the names dropped before it.
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
			if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, s.lockTimeout()); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{name}.Sanitize())
			return err
		})
		if isLockTimeout(err) {
			return dropped, rollup.ErrDeferred
		}
		if err != nil {
			return dropped, FormatError(fmt.Errorf("drop event key generation %s: %w", name, err))
		}
		dropped = append(dropped, name)
	}
	return dropped, nil
}

var partitionName = regexp.MustCompile(`^eco_api_usage_p(\d{4})(\d{2})$`)

// Partitions implements rollup.Store: the partitions of eco_api_usage
// named eco_api_usage_pYYYYMM (as ensure_usage_partitions names them),
// one calendar month (UTC) each.
func (s *RollupStore) Partitions(ctx context.Context) ([]rollup.Partition, error) {
	rows, err := s.db.with(rollupWork).Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'eco_api_usage'::regclass`)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list partitions: %w", err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, FormatError(fmt.Errorf("list partitions: %w", err))
	}
	var out []rollup.Partition
	for _, n := range names {
		m := partitionName.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		start, err := time.Parse("200601", m[1]+m[2])
		if err != nil {
			continue
		}
		out = append(out, rollup.Partition{Name: n, Start: start, End: start.AddDate(0, 1, 0)})
	}
	slices.SortFunc(out, func(a, b rollup.Partition) int { return a.Start.Compare(b.Start) })
	return out, nil
}

// anyDirtySQL reports whether a day of [$1, $2) is dirty, as a whole or
// of a user.
const anyDirtySQL = `SELECT EXISTS (SELECT 1 FROM eco_usage_dirty_days WHERE day >= $1 AND day < $2)
	OR EXISTS (SELECT 1 FROM eco_usage_dirty_user_days WHERE day >= $1 AND day < $2)`

// RetentionBlocked implements rollup.Store: a dirty day in p blocks
// it; otherwise the days of p with raw events and no row in
// eco_usage_aggregated_days are marked dirty, and any such day blocks it.
func (s *RollupStore) RetentionBlocked(ctx context.Context, p rollup.Partition) (bool, error) {
	var dirty bool
	if err := s.db.with(rollupWork).QueryRow(ctx, anyDirtySQL, p.Start, p.End).Scan(&dirty); err != nil {
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

// DropPartition implements rollup.Store: under LockTimeout, LOCK
// TABLE eco_api_usage (DROP needs that lock anyway), the dirty check, the
// DROP and the month's row in eco_usage_dropped_months (which keeps
// ensure_usage_partitions from creating it again), in one transaction. A
// timeout is rollup.ErrDeferred.
func (s *RollupStore) DropPartition(ctx context.Context, p rollup.Partition) (bool, error) {
	if !partitionName.MatchString(p.Name) {
		return false, usage.FieldErrorf("partition", "%q is not a raw usage partition", p.Name)
	}
	var dropped bool
	err := s.db.with(rollupWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, s.lockTimeout()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE eco_api_usage IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		var dirty bool
		if err := tx.QueryRow(ctx, anyDirtySQL, p.Start, p.End).Scan(&dirty); err != nil {
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
		return false, rollup.ErrDeferred
	}
	if err != nil {
		return false, FormatError(fmt.Errorf("drop partition %s: %w", p.Name, err))
	}
	return dropped, nil
}
