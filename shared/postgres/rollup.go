package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/usage"
)

// RollupJob is the job name of the daily aggregation in eco_job_runs and
// eco_job_locks.
const RollupJob = "aggregate"

// RollupStore runs the daily aggregation: dirty days into eco_usage_daily,
// partition upkeep and retention of the raw table.
type RollupStore struct{ db *DB }

// NewRollupStore returns a store over db.
func NewRollupStore(db *DB) *RollupStore { return &RollupStore{db: db} }

var _ usage.Rollup = (*RollupStore)(nil)

// dirtyDay is a row of eco_usage_dirty_days as read at the start of a run.
type dirtyDay struct {
	day      time.Time
	markedAt time.Time
}

// RunRollup implements usage.Rollup.
//
// The order of a run: take the job lock (a row with a lease; a held lock
// records a skipped run), open the run's eco_job_runs row, ensure partitions
// ahead, mark a backfill range dirty, recompute the dirty days
// (opts.Workers at a time, one transaction per day that also clears the
// day's dirty mark only if its marked_at is the one read, so an event that
// arrives meanwhile keeps the day dirty), apply retention, close the run row
// and release the lock. A crash anywhere leaves the dirty marks of the days
// not yet done, and the lease expires, so the next run finishes the work.
func (s *RollupStore) RunRollup(ctx context.Context, opts usage.RollupOptions) (*usage.RollupRun, error) {
	opts = rollupDefaults(opts)
	if opts.Backfill != nil {
		if err := opts.Backfill.Validate(); err != nil {
			return nil, err
		}
	}
	start := time.Now() // monotonic, for the duration only
	now := s.db.now()

	ok, held, err := s.acquireLock(ctx, opts.Holder, now, opts.Lease)
	if err != nil {
		return nil, err
	}
	if !ok {
		run := &usage.RollupRun{Skipped: true}
		detail, _ := json.Marshal(map[string]any{"holder": opts.Holder, "held_by": held})
		err := s.db.Pool.QueryRow(ctx, `INSERT INTO eco_job_runs (job, started_at, finished_at, outcome, detail)
			VALUES ($1, $2, $2, 'skipped', $3) RETURNING run_id`, RollupJob, now, detail).Scan(&run.RunID)
		if err != nil {
			return nil, FormatError(fmt.Errorf("record skipped run: %w", err))
		}
		return run, nil
	}
	defer s.releaseLock(context.WithoutCancel(ctx), opts.Holder)

	run := &usage.RollupRun{}
	if err := s.db.Pool.QueryRow(ctx, `INSERT INTO eco_job_runs (job, started_at, detail)
		VALUES ($1, $2, jsonb_build_object('holder', $3::text)) RETURNING run_id`,
		RollupJob, now, opts.Holder).Scan(&run.RunID); err != nil {
		return nil, FormatError(fmt.Errorf("open job run: %w", err))
	}

	runErr := s.run(ctx, now, opts, run)
	run.Duration = time.Since(start)
	if err := s.closeRun(context.WithoutCancel(ctx), run, runErr); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return run, runErr
	}
	return run, nil
}

func rollupDefaults(o usage.RollupOptions) usage.RollupOptions {
	if o.RetentionDays <= 0 {
		o.RetentionDays = usage.DefaultRetentionDays
	}
	if o.PartitionsAhead <= 0 {
		o.PartitionsAhead = 2
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Lease <= 0 {
		o.Lease = 20 * time.Minute
	}
	if o.Holder == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.Holder = "run-" + hex.EncodeToString(b[:])
	}
	return o
}

func (s *RollupStore) run(ctx context.Context, now time.Time, opts usage.RollupOptions, run *usage.RollupRun) error {
	if err := s.ensurePartitions(ctx, now, opts.PartitionsAhead+1, run); err != nil {
		return err
	}

	kept, err := s.partitionMonths(ctx)
	if err != nil {
		return err
	}
	if opts.Backfill != nil {
		if err := s.markBackfill(ctx, *opts.Backfill, kept); err != nil {
			return err
		}
	}
	if err := s.recomputeDirty(ctx, opts.Workers, kept, run); err != nil {
		return err
	}
	if len(run.Deferred) > 0 {
		// The raw table was too busy for the partition DDL just now.
		run.Deferred = append(run.Deferred, "retention: raw table busy")
		return nil
	}
	return s.retention(ctx, now, opts.RetentionDays, run)
}

// ensurePartitions creates the raw partitions of the months months from
// now's. Creating a partition locks the raw table, so it waits at most
// lockTimeout for in-flight record transactions (and holds new ones up no
// longer); on a timeout the upkeep is deferred to the next hourly run, which
// is harmless while partitions exist months ahead.
func (s *RollupStore) ensurePartitions(ctx context.Context, now time.Time, months int, run *usage.RollupRun) error {
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, lockTimeout); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT ensure_usage_partitions($1, $2)`, now, months).Scan(&run.PartitionsCreated)
	})
	if isLockTimeout(err) {
		run.Deferred = append(run.Deferred, "partitions: lock timeout")
		return nil
	}
	if err != nil {
		return FormatError(fmt.Errorf("ensure usage partitions: %w", err))
	}
	return nil
}

// lockTimeout bounds how long partition DDL waits for the raw table's lock.
const lockTimeout = "5s"

func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// closeRun writes the outcome of the run into its eco_job_runs row.
func (s *RollupStore) closeRun(ctx context.Context, run *usage.RollupRun, runErr error) error {
	outcome, errText := "succeeded", (*string)(nil)
	if runErr != nil {
		outcome = "failed"
		t := runErr.Error()
		errText = &t
	}
	detail, err := json.Marshal(map[string]any{
		"days":               dayStrings(run.Days),
		"still_dirty":        dayStrings(run.StillDirty),
		"partitions_created": run.PartitionsCreated,
		"deferred":           run.Deferred,
		"partitions_dropped": run.PartitionsDropped,
		"retention_blocked":  run.RetentionBlocked,
		"duration_ms":        run.Duration.Milliseconds(),
	})
	if err != nil {
		return err
	}
	_, err = s.db.Pool.Exec(ctx, `UPDATE eco_job_runs SET finished_at = $2, outcome = $3, days_recomputed = $4,
		rows_written = $5, detail = detail || $6::jsonb, error = $7 WHERE run_id = $1`,
		run.RunID, s.db.now(), outcome, len(run.Days), run.RowsWritten, detail, errText)
	if err != nil {
		return FormatError(fmt.Errorf("close job run %d: %w", run.RunID, err))
	}
	return nil
}

func dayStrings(days []time.Time) []string {
	out := make([]string, len(days))
	for i, d := range days {
		out[i] = d.Format(time.DateOnly)
	}
	return out
}

// acquireLock takes the job lock row for holder until now+lease, unless
// another holder's lease is still running; then it returns false and that
// holder's name. The lock is a row, not an advisory lock: no session state.
func (s *RollupStore) acquireLock(ctx context.Context, holder string, now time.Time, lease time.Duration) (bool, string, error) {
	var got string
	err := s.db.Pool.QueryRow(ctx, `INSERT INTO eco_job_locks AS l (job, holder, acquired_at, locked_until)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
			locked_until = excluded.locked_until
		WHERE l.locked_until <= excluded.acquired_at OR l.holder = excluded.holder
		RETURNING holder`, RollupJob, holder, now, now.Add(lease)).Scan(&got)
	if err == nil {
		return true, "", nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, "", FormatError(fmt.Errorf("acquire job lock: %w", err))
	}
	var held string
	if err := s.db.Pool.QueryRow(ctx, `SELECT holder FROM eco_job_locks WHERE job = $1`, RollupJob).Scan(&held); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, "", FormatError(fmt.Errorf("read job lock: %w", err))
	}
	return false, held, nil
}

// releaseLock gives the lock up if holder still has it. A failure is left to
// the lease.
func (s *RollupStore) releaseLock(ctx context.Context, holder string) {
	_, _ = s.db.Pool.Exec(ctx, `DELETE FROM eco_job_locks WHERE job = $1 AND holder = $2`, RollupJob, holder)
}

// errDeferred reports a step given up on a lock timeout, for the next run.
var errDeferred = errors.New("deferred: lock timeout")

var partitionName = regexp.MustCompile(`^eco_api_usage_p(\d{4})(\d{2})$`)

// partitionMonths returns the first day of the month of every raw partition
// (named eco_api_usage_pYYYYMM by ensure_usage_partitions), sorted.
func (s *RollupStore) partitionMonths(ctx context.Context) ([]time.Time, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'eco_api_usage'::regclass`)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list partitions: %w", err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, FormatError(fmt.Errorf("list partitions: %w", err))
	}
	var months []time.Time
	for _, n := range names {
		if m, ok := partitionMonth(n); ok {
			months = append(months, m)
		}
	}
	slices.SortFunc(months, time.Time.Compare)
	return months, nil
}

func partitionMonth(name string) (time.Time, bool) {
	m := partitionName.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse("200601", m[1]+m[2])
	return t, err == nil
}

func monthOf(day time.Time) time.Time {
	return time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func hasPartition(months []time.Time, day time.Time) bool {
	_, ok := slices.BinarySearchFunc(months, monthOf(day), time.Time.Compare)
	return ok
}

// markBackfill marks every day of r dirty. Days whose raw partition is gone
// are refused (CodeInvalid): recomputing them would empty their rollup.
func (s *RollupStore) markBackfill(ctx context.Context, r usage.DayRange, kept []time.Time) error {
	days := r.Days()
	for _, d := range days {
		if !hasPartition(kept, d) {
			return usage.FieldErrorf("from", "raw usage for %s is no longer kept (retention); its rollup cannot be recomputed", d.Format(time.DateOnly))
		}
	}
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO eco_usage_dirty_days (day, marked_at)
		SELECT d, now() FROM unnest($1::date[]) AS d ORDER BY d
		ON CONFLICT (day) DO UPDATE SET marked_at = now()`, days)
	if err != nil {
		return FormatError(fmt.Errorf("mark backfill days: %w", err))
	}
	return nil
}

// recomputeDirty recomputes every day dirty at the start of the run,
// workers transactions at a time. When fewer than 2×workers days are dirty,
// each day is split into workers parts by user (see aggregate_daily_usage)
// so that a small run still uses every worker. Every day is attempted; the
// first error is returned.
func (s *RollupStore) recomputeDirty(ctx context.Context, workers int, kept []time.Time, run *usage.RollupRun) error {
	rows, err := s.db.Pool.Query(ctx, `SELECT day, marked_at FROM eco_usage_dirty_days ORDER BY day`)
	if err != nil {
		return FormatError(fmt.Errorf("read dirty days: %w", err))
	}
	dirty, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dirtyDay, error) {
		var d dirtyDay
		err := r.Scan(&d.day, &d.markedAt)
		return d, err
	})
	if err != nil {
		return FormatError(fmt.Errorf("read dirty days: %w", err))
	}
	parts := 1
	if len(dirty) < 2*workers {
		parts = workers
	}

	type unit struct {
		day  int // index into dirty
		part int
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		work     = make(chan unit)
		left     = make([]int, len(dirty)) // parts not yet done, per day
		failed   = make([]bool, len(dirty))
		written  = make([]int64, len(dirty))
	)
	for i := range left {
		left[i] = parts
	}
	for range min(workers, max(len(dirty)*parts, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				d := dirty[u.day]
				// A day done in one part clears its mark in the same
				// transaction; a split day clears it once every part is in.
				n, cleared, err := s.recomputeDay(ctx, d, hasPartition(kept, d.day), u.part, parts, parts == 1)
				mu.Lock()
				left[u.day]--
				written[u.day] += n
				if err != nil {
					failed[u.day] = true
					if firstErr == nil {
						firstErr = err
					}
				}
				last := left[u.day] == 0 && !failed[u.day]
				mu.Unlock()
				if last && parts > 1 {
					cleared, err = s.clearDirty(ctx, d)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if last && err == nil {
					run.Days = append(run.Days, d.day)
					run.RowsWritten += written[u.day]
					if !cleared {
						run.StillDirty = append(run.StillDirty, d.day)
					}
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range dirty {
		for p := 0; p < parts; p++ {
			if ctx.Err() != nil {
				break feed
			}
			work <- unit{i, p}
		}
	}
	close(work)
	wg.Wait()
	slices.SortFunc(run.Days, time.Time.Compare)
	slices.SortFunc(run.StillDirty, time.Time.Compare)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = FormatError(ctx.Err())
	}
	return firstErr
}

// recomputeDay rebuilds part of parts of one day's rollup in one
// transaction and, with clear, clears the day's dirty mark in it if the mark
// is still the one read. It reports the rows written and whether the mark
// was cleared. A day without a raw partition has no raw events to
// aggregate: only its mark is cleared.
func (s *RollupStore) recomputeDay(ctx context.Context, d dirtyDay, kept bool, part, parts int, clear bool) (int64, bool, error) {
	var n int64
	var cleared bool
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		if kept {
			if err := tx.QueryRow(ctx, `SELECT aggregate_daily_usage($1, $2, $3)`, d.day, part, parts).Scan(&n); err != nil {
				return err
			}
		}
		if !clear {
			return nil
		}
		tag, err := tx.Exec(ctx, `DELETE FROM eco_usage_dirty_days WHERE day = $1 AND marked_at = $2`, d.day, d.markedAt)
		cleared = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return 0, false, FormatError(fmt.Errorf("recompute %s: %w", d.day.Format(time.DateOnly), err))
	}
	return n, cleared, nil
}

// clearDirty clears the day's dirty mark if it is still the one read, and
// reports whether it did.
func (s *RollupStore) clearDirty(ctx context.Context, d dirtyDay) (bool, error) {
	tag, err := s.db.Pool.Exec(ctx, `DELETE FROM eco_usage_dirty_days WHERE day = $1 AND marked_at = $2`, d.day, d.markedAt)
	if err != nil {
		return false, FormatError(fmt.Errorf("clear dirty mark of %s: %w", d.day.Format(time.DateOnly), err))
	}
	return tag.RowsAffected() == 1, nil
}

// RecomputeDay rebuilds the rollup of one day (without touching its dirty
// mark) and returns the rows written.
func (s *RollupStore) RecomputeDay(ctx context.Context, day time.Time) (int64, error) {
	var n int64
	if err := s.db.Pool.QueryRow(ctx, `SELECT aggregate_daily_usage($1)`, usage.Day(day)).Scan(&n); err != nil {
		return 0, FormatError(fmt.Errorf("recompute %s: %w", day.Format(time.DateOnly), err))
	}
	return n, nil
}

// ApplyRetention runs the retention step alone, at the store's clock: it
// returns the raw partitions dropped and those kept past retention because
// a day in them is dirty or not yet aggregated (see RunRollup).
func (s *RollupStore) ApplyRetention(ctx context.Context, retentionDays int) (dropped, blocked []string, err error) {
	var run usage.RollupRun
	err = s.retention(ctx, s.db.now(), rollupDefaults(usage.RollupOptions{RetentionDays: retentionDays}).RetentionDays, &run)
	return run.PartitionsDropped, run.RetentionBlocked, err
}

// retention drops the raw partitions that end on or before the retention
// cutoff (the start of today minus retentionDays), each only when none of
// its days is dirty and every day in it holding raw events has been
// aggregated. Unaggregated days found there are marked dirty, so the next
// run aggregates them and the partition can go after it.
//
// The final check and the DROP run in one transaction that first locks the
// raw table (DROP needs that lock anyway; lock_timeout bounds the wait on
// the record path): a record transaction that slipped an event into the
// partition after the first check has committed by then, and its dirty
// mark is seen.
func (s *RollupStore) retention(ctx context.Context, now time.Time, retentionDays int, run *usage.RollupRun) error {
	cutoff := usage.Day(now).AddDate(0, 0, -retentionDays)
	months, err := s.partitionMonths(ctx)
	if err != nil {
		return err
	}
	for _, m := range months {
		lo, hi := m, m.AddDate(0, 1, 0)
		if hi.After(cutoff) {
			continue
		}
		name := "eco_api_usage_p" + m.Format("200601")
		blocked, err := s.retentionBlocked(ctx, lo, hi)
		if err != nil {
			return err
		}
		if blocked {
			run.RetentionBlocked = append(run.RetentionBlocked, name)
			continue
		}
		dropped, err := s.dropPartition(ctx, name, lo, hi)
		if errors.Is(err, errDeferred) {
			// Don't stall the record path again for the next partition.
			run.Deferred = append(run.Deferred, "retention: lock timeout")
			return nil
		}
		if err != nil {
			return err
		}
		if dropped {
			run.PartitionsDropped = append(run.PartitionsDropped, name)
		} else {
			run.RetentionBlocked = append(run.RetentionBlocked, name)
		}
	}
	return nil
}

// retentionBlocked reports whether [lo, hi) holds a dirty day or a day with
// raw events that has never been aggregated; the latter are marked dirty.
func (s *RollupStore) retentionBlocked(ctx context.Context, lo, hi time.Time) (bool, error) {
	var dirty bool
	if err := s.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM eco_usage_dirty_days WHERE day >= $1 AND day < $2)`,
		lo, hi).Scan(&dirty); err != nil {
		return false, FormatError(fmt.Errorf("check dirty days: %w", err))
	}
	if dirty {
		return true, nil
	}
	tag, err := s.db.Pool.Exec(ctx, `INSERT INTO eco_usage_dirty_days (day, marked_at)
		SELECT d::date, now() FROM generate_series($1::date, $2::date - 1, interval '1 day') AS d
		WHERE NOT EXISTS (SELECT 1 FROM eco_usage_aggregated_days a WHERE a.day = d::date)
		  AND EXISTS (SELECT 1 FROM eco_api_usage u
		              WHERE u.occurred_at >= d::date::timestamp AT TIME ZONE 'UTC'
		                AND u.occurred_at < (d::date + 1)::timestamp AT TIME ZONE 'UTC')
		ORDER BY 1
		ON CONFLICT (day) DO NOTHING`, lo, hi)
	if err != nil {
		return false, FormatError(fmt.Errorf("check unaggregated days: %w", err))
	}
	return tag.RowsAffected() > 0, nil
}

// dropPartition drops the partition if, under the table lock, no day of it
// is dirty. It reports whether it did.
func (s *RollupStore) dropPartition(ctx context.Context, name string, lo, hi time.Time) (bool, error) {
	var dropped bool
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, lockTimeout); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE eco_api_usage IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		var dirty bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM eco_usage_dirty_days WHERE day >= $1 AND day < $2)`,
			lo, hi).Scan(&dirty); err != nil {
			return err
		}
		if dirty {
			return nil
		}
		if _, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{name}.Sanitize()); err != nil {
			return err
		}
		dropped = true
		return nil
	})
	if isLockTimeout(err) {
		return false, errDeferred
	}
	if err != nil {
		return false, FormatError(fmt.Errorf("drop partition %s: %w", name, err))
	}
	return dropped, nil
}
