package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/usage/shared/rollup"
)

// rollupJob is the job name of the daily aggregation in eco_job_runs and
// eco_job_locks.
const rollupJob = "aggregate"

// AcquireJobLock implements rollup.Store: an upsert of the lock row
// that takes it over only when its lease has run out (or holder has it
// already), then, when that fails, a read of who holds it.
func (s *RollupStore) AcquireJobLock(ctx context.Context, holder string, now time.Time, lease time.Duration) (bool, string, error) {
	var got string
	err := s.db.with(rollupWork).QueryRow(ctx, `INSERT INTO eco_job_locks AS l (job, holder, acquired_at, locked_until)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
			locked_until = excluded.locked_until
		WHERE l.locked_until <= excluded.acquired_at OR l.holder = excluded.holder
		RETURNING holder`, rollupJob, holder, now, now.Add(lease)).Scan(&got)
	if err == nil {
		return true, "", nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, "", FormatError(fmt.Errorf("acquire job lock: %w", err))
	}
	var held string
	if err := s.db.with(rollupWork).QueryRow(ctx, `SELECT holder FROM eco_job_locks WHERE job = $1`, rollupJob).Scan(&held); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, "", FormatError(fmt.Errorf("read job lock: %w", err))
	}
	return false, held, nil
}

// ReleaseJobLock implements rollup.Store.
func (s *RollupStore) ReleaseJobLock(ctx context.Context, holder string) error {
	if _, err := s.db.with(rollupWork).Exec(ctx, `DELETE FROM eco_job_locks WHERE job = $1 AND holder = $2`, rollupJob, holder); err != nil {
		return FormatError(fmt.Errorf("release job lock: %w", err))
	}
	return nil
}

// SkippedRun implements rollup.Store: a finished run row with outcome
// skipped and both holders in its detail.
func (s *RollupStore) SkippedRun(ctx context.Context, holder, heldBy string, at time.Time) (int64, error) {
	detail, err := json.Marshal(map[string]any{"holder": holder, "held_by": heldBy})
	if err != nil {
		return 0, err
	}
	var id int64
	if err := s.db.with(rollupWork).QueryRow(ctx, `INSERT INTO eco_job_runs (job, started_at, finished_at, outcome, detail)
		VALUES ($1, $2, $2, 'skipped', $3::jsonb) RETURNING run_id`, rollupJob, at, string(detail)).Scan(&id); err != nil {
		return 0, FormatError(fmt.Errorf("record skipped run: %w", err))
	}
	return id, nil
}

// abandonedRun is the error of a run record closed by a later run: the
// run stopped without closing it.
const abandonedRun = "the run stopped before recording how it ended (its function was stopped or lost the database); " +
	"the days it did not recompute stayed dirty for the runs after it"

// OpenRun implements rollup.Store: the run's record, and, in the same
// statement, every other aggregate record still running closed as failed
// at at. Only the holder of the job lock opens a run, so a running record
// of another is one whose run stopped without closing it (its lease ran
// out, or it is this holder's own from before a retry); it would say
// "running" for ever.
func (s *RollupStore) OpenRun(ctx context.Context, holder string, at time.Time) (int64, error) {
	var id int64
	if err := s.db.with(rollupWork).QueryRow(ctx, `WITH abandoned AS (
			UPDATE eco_job_runs SET outcome = 'failed', finished_at = $2, error = $4
			WHERE job = $1 AND outcome = 'running'
		)
		INSERT INTO eco_job_runs (job, started_at, detail)
		VALUES ($1, $2, jsonb_build_object('holder', $3::text)) RETURNING run_id`,
		rollupJob, at, holder, abandonedRun).Scan(&id); err != nil {
		return 0, FormatError(fmt.Errorf("open job run: %w", err))
	}
	return id, nil
}

// CloseRun implements rollup.Store: the outcome (succeeded or
// failed, with runErr's text), the counts, and what the run did in detail.
func (s *RollupStore) CloseRun(ctx context.Context, run *rollup.Run, at time.Time, runErr error) error {
	outcome, errText := "succeeded", (*string)(nil)
	if runErr != nil {
		outcome = "failed"
		t := runErr.Error()
		errText = &t
	}
	detail, err := json.Marshal(map[string]any{
		"days":                    dayStrings(run.Days),
		"user_days":               run.UserDays,
		"still_dirty":             dayStrings(run.StillDirty),
		"partitions_created":      run.PartitionsCreated,
		"deferred":                run.Deferred,
		"partitions_dropped":      run.PartitionsDropped,
		"key_generations_created": run.KeyGenerationsCreated,
		"key_generations_dropped": run.KeyGenerationsDropped,
		"retention_blocked":       run.RetentionBlocked,
		"duration_ms":             run.Duration.Milliseconds(),
	})
	if err != nil {
		return err
	}
	_, err = s.db.with(rollupWork).Exec(ctx, `UPDATE eco_job_runs SET finished_at = $2, outcome = $3, days_recomputed = $4,
		rows_written = $5, detail = detail || $6::jsonb, error = $7 WHERE run_id = $1`,
		run.JobRunID, at, outcome, len(run.Days), run.RowsWritten, string(detail), errText)
	if err != nil {
		return FormatError(fmt.Errorf("close job run %d: %w", run.JobRunID, err))
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
