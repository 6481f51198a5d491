package rollup

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Rollup run defaults.
const (
	// DefaultPartitionsAhead is how many months of raw partitions are kept
	// ready after the current one.
	DefaultPartitionsAhead = 2
	// DefaultRollupWorkers is how many recompute transactions run at once.
	DefaultRollupWorkers = 2
	// DefaultRollupLease is how long the job lock is held before another
	// run may take it over: longer than a Lambda can run.
	DefaultRollupLease = 20 * time.Minute
)

// Job is the daily aggregation job: it implements Rollup over a
// Store. One run, in order: take the job lock (a row with a lease;
// a held lock records a skipped run, after marking the backfill range
// dirty for the next run), open the run's record, ensure raw
// partitions and the event key store's generations ahead, mark the
// backfill range dirty (refusing days whose raw partition is gone),
// recompute the dirty days (Workers at a time, each in a transaction that
// also clears the day's mark only if it is unchanged), apply retention
// (raw partitions past it, key generations no batch reads any more), close
// the run's record and release the lock. A crash
// anywhere leaves the marks of the days not yet done and the lease runs
// out, so the next run finishes the work.
type Job struct {
	c Config // defaults filled in
}

// Config is what a Job is built from. Zero settings take the defaults.
type Config struct {
	Store Store
	// Now is the clock (required) of the runs' times: the lock's lease,
	// the run's record and the retention cutoff.
	Now func() time.Time
	// Logger receives what a run cannot report otherwise (a lock left to
	// its lease); nil means slog.Default().
	Logger *slog.Logger
	// RetentionDays is how long raw events are kept (DefaultRetentionDays).
	RetentionDays int
	// MaxEndpointsPerDay is how many endpoints of one user and day the
	// rollup keeps by name (DefaultMaxEndpointsPerDay, at most
	// MaxEndpointsPerDayLimit); the calls of the others are kept under
	// OtherEndpoint (see rolluptest.Rollup), so that no caller can grow the
	// rollup without bound.
	MaxEndpointsPerDay int
	// PartitionsAhead is how many months of raw partitions must exist after
	// the current one (DefaultPartitionsAhead).
	PartitionsAhead int
	// Workers is how many days are recomputed at once (DefaultRollupWorkers).
	Workers int
	// Lease is how long the job lock is held before another run may take it
	// over (DefaultRollupLease: longer than a Lambda can run).
	Lease time.Duration
}

// New returns the Job c describes, or a CodeInvalid error naming the
// setting that is wrong: a missing store or clock, a negative setting, a
// cap on endpoints outside 1 to MaxEndpointsPerDayLimit.
func New(c Config) (*Job, error) {
	switch {
	case c.Store == nil:
		return nil, usage.Errorf(usage.CodeInvalid, "rollup: a store is required")
	case c.Now == nil:
		return nil, usage.Errorf(usage.CodeInvalid, "rollup: a clock is required")
	case c.RetentionDays < 0:
		return nil, usage.NegativeSetting("rollup", "the retention in days", c.RetentionDays, DefaultRetentionDays)
	case c.RetentionDays > usage.MaxRetentionDays:
		return nil, usage.Errorf(usage.CodeInvalid, "rollup: the retention in days must be at most %d, not %d", usage.MaxRetentionDays, c.RetentionDays)
	case c.PartitionsAhead < 0:
		return nil, usage.NegativeSetting("rollup", "the partitions kept ahead, in months", c.PartitionsAhead, DefaultPartitionsAhead)
	case c.Workers < 0:
		return nil, usage.NegativeSetting("rollup", "the workers", c.Workers, DefaultRollupWorkers)
	case c.Lease < 0:
		return nil, usage.NegativeSetting("rollup", "the lease", c.Lease, DefaultRollupLease)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.RetentionDays = cmp.Or(c.RetentionDays, DefaultRetentionDays)
	c.MaxEndpointsPerDay = cmp.Or(c.MaxEndpointsPerDay, DefaultMaxEndpointsPerDay)
	c.PartitionsAhead = cmp.Or(c.PartitionsAhead, DefaultPartitionsAhead)
	c.Workers = cmp.Or(c.Workers, DefaultRollupWorkers)
	c.Lease = cmp.Or(c.Lease, DefaultRollupLease)
	if err := CheckMaxEndpointsPerDay(c.MaxEndpointsPerDay); err != nil {
		return nil, err
	}
	j := &Job{c: c}
	return j, nil
}

// Config returns the job's configuration, defaults filled in.
func (j *Job) Config() Config { return j.c }

var _ Runner = (*Job)(nil)

// RunRollup implements Rollup.
func (j *Job) RunRollup(ctx context.Context, opts Options) (*Run, error) {
	if opts.Holder == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.Holder = "run-" + hex.EncodeToString(b[:])
	}
	if opts.Backfill != nil {
		if err := opts.Backfill.Validate(); err != nil {
			return nil, err
		}
	}
	start := time.Now() // monotonic, for the duration only
	now := j.c.Now().UTC()

	ok, heldBy, err := j.c.Store.AcquireJobLock(ctx, opts.Holder, now, j.c.Lease)
	if err != nil {
		return nil, err
	}
	if !ok {
		if opts.Backfill != nil {
			// The backfill is not lost with the run: its days are marked
			// (marking needs no lock), and the next run recomputes them.
			kept, err := j.c.Store.Partitions(ctx)
			if err != nil {
				return nil, err
			}
			if err := j.markBackfill(ctx, *opts.Backfill, kept); err != nil {
				return nil, err
			}
		}
		id, err := j.c.Store.SkippedRun(ctx, opts.Holder, heldBy, now)
		if err != nil {
			return nil, err
		}
		return &Run{JobRunID: id, Skipped: true}, nil
	}
	defer j.release(context.WithoutCancel(ctx), opts.Holder)

	run := &Run{}
	if run.JobRunID, err = j.c.Store.OpenRun(ctx, opts.Holder, now); err != nil {
		return nil, err
	}
	runErr := j.run(ctx, now, opts, run)
	run.Duration = time.Since(start)
	if err := j.c.Store.CloseRun(context.WithoutCancel(ctx), run, j.c.Now().UTC(), runErr); err != nil && runErr == nil {
		runErr = err
	}
	return run, runErr
}

// release gives the job lock up; a failure is left to the lease.
func (j *Job) release(ctx context.Context, holder string) {
	if err := j.c.Store.ReleaseJobLock(ctx, holder); err != nil {
		j.c.Logger.WarnContext(ctx, "aggregate: job lock left to its lease", "holder", holder, "error", err.Error())
	}
}

func (j *Job) run(ctx context.Context, now time.Time, opts Options, run *Run) error {
	n, err := j.c.Store.EnsurePartitions(ctx, now, j.c.PartitionsAhead+1)
	switch {
	case errors.Is(err, ErrDeferred):
		// Harmless while partitions exist months ahead: the next hourly
		// run creates them.
		run.Deferred = append(run.Deferred, "partitions: lock timeout")
	case err != nil:
		return err
	}
	run.PartitionsCreated = n
	// The current generation and the next: a generation lasts DedupeWindow.
	gen := usage.KeyGeneration(now)
	n, err = j.c.Store.EnsureKeyGenerations(ctx, []int{gen, gen + 1})
	switch {
	case errors.Is(err, ErrDeferred):
		// The record path creates a missing generation itself.
		run.Deferred = append(run.Deferred, "key generations: lock timeout")
	case err != nil:
		return err
	}
	run.KeyGenerationsCreated = n

	kept, err := j.c.Store.Partitions(ctx)
	if err != nil {
		return err
	}
	if opts.Backfill != nil {
		if err := j.markBackfill(ctx, *opts.Backfill, kept); err != nil {
			return err
		}
	}
	if err := j.recomputeDirty(ctx, j.c.Workers, j.c.MaxEndpointsPerDay, kept, run); err != nil {
		return err
	}
	if len(run.Deferred) > 0 {
		// The raw table was too busy for the partition DDL just now.
		run.Deferred = append(run.Deferred, "retention: raw table busy")
		return nil
	}
	dropped, err := j.c.Store.DropKeyGenerations(ctx, usage.OldestKeyGeneration(now))
	run.KeyGenerationsDropped = dropped
	switch {
	case errors.Is(err, ErrDeferred):
		run.Deferred = append(run.Deferred, "key generations: lock timeout")
	case err != nil:
		return err
	}
	return j.retention(ctx, now, j.c.RetentionDays, run)
}

// holds reports whether one of the partitions kept holds day.
func holds(kept []Partition, day time.Time) bool {
	return slices.ContainsFunc(kept, func(p Partition) bool { return !day.Before(p.Start) && day.Before(p.End) })
}

// markBackfill marks every day of r dirty. Days whose raw partition is gone
// are refused (CodeInvalid): recomputing them would empty their rollup.
func (j *Job) markBackfill(ctx context.Context, r usage.DayRange, kept []Partition) error {
	days := r.Days()
	for _, d := range days {
		if !holds(kept, d) {
			return usage.FieldErrorf("from", "raw usage for %s is no longer kept (retention); its rollup cannot be recomputed", d.Format(time.DateOnly))
		}
	}
	return j.c.Store.MarkDirty(ctx, days)
}

// recomputeDirty recomputes every day dirty at the start of the run,
// workers transactions at a time. When fewer than 2×workers days are dirty,
// each day is split into workers parts by user so that a small run still
// uses every worker. A user's day keeps maxEndpoints endpoints by name.
// Every day is attempted; the first error is returned.
func (j *Job) recomputeDirty(ctx context.Context, workers, maxEndpoints int, kept []Partition, run *Run) error {
	dirty, err := j.c.Store.DirtyDays(ctx)
	if err != nil {
		return err
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
		wg.Go(func() {
			for u := range work {
				d := dirty[u.day]
				// A day done in one part clears its mark in the same
				// transaction; a split day clears it once every part is in.
				n, cleared, err := j.recomputePart(ctx, d, holds(kept, d.Day), u.part, parts, maxEndpoints)
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
					cleared, err = j.c.Store.ClearDirty(ctx, d)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if last && err == nil {
					run.Days = append(run.Days, d.Day)
					if !d.Whole() {
						run.UserDays += len(userIDs(d.Users))
					}
					run.RowsWritten += written[u.day]
					if !cleared {
						run.StillDirty = append(run.StillDirty, d.Day)
					}
				}
				mu.Unlock()
			}
		})
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
		firstErr = fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "the run was interrupted"), ctx.Err())
	}
	return firstErr
}

// userIDs returns the distinct users of marks, in their order.
func userIDs(marks []UserMark) []string {
	var ids []string
	for _, m := range marks {
		if len(ids) == 0 || ids[len(ids)-1] != m.UserID {
			ids = append(ids, m.UserID)
		}
	}
	return ids
}

// recomputePart recomputes part of parts of d; with a single part it also
// clears d's mark. A day without a raw partition has no raw events to
// aggregate: only its mark is cleared.
func (j *Job) recomputePart(ctx context.Context, d DirtyDay, kept bool, part, parts, maxEndpoints int) (int64, bool, error) {
	clear := parts == 1
	if !kept {
		if !clear {
			return 0, false, nil
		}
		cleared, err := j.c.Store.ClearDirty(ctx, d)
		return 0, cleared, err
	}
	return j.c.Store.RecomputeDay(ctx, d, part, parts, maxEndpoints, clear)
}

// retention drops the raw partitions that end on or before the retention
// cutoff (the start of today minus retentionDays), each only when none of
// its days is dirty and every day in it holding raw events has been
// aggregated. Unaggregated days found there are marked dirty (by the
// store), so the next run aggregates them and the partition can go after
// it. The last check is DropPartition's own, under the raw table's lock.
func (j *Job) retention(ctx context.Context, now time.Time, retentionDays int, run *Run) error {
	cutoff := usage.Day(now).AddDate(0, 0, -retentionDays)
	parts, err := j.c.Store.Partitions(ctx)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if p.End.After(cutoff) {
			continue
		}
		blocked, err := j.c.Store.RetentionBlocked(ctx, p)
		if err != nil {
			return err
		}
		if blocked {
			run.RetentionBlocked = append(run.RetentionBlocked, p.Name)
			continue
		}
		dropped, err := j.c.Store.DropPartition(ctx, p)
		if errors.Is(err, ErrDeferred) {
			// Don't stall the record path again for the next partition.
			run.Deferred = append(run.Deferred, "retention: lock timeout")
			return nil
		}
		if err != nil {
			return err
		}
		if dropped {
			run.PartitionsDropped = append(run.PartitionsDropped, p.Name)
		} else {
			run.RetentionBlocked = append(run.RetentionBlocked, p.Name)
		}
	}
	return nil
}
