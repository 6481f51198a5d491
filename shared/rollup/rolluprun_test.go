package rollup_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// rollupStore is a rollup.Store made of functions; a nil function
// does the harmless thing (lock taken, nothing dirty, nothing to drop).
// Every call is logged by name.
type rollupStore struct {
	AcquireJobLockFn   func(holder string, now time.Time, lease time.Duration) (bool, string, error)
	ReleaseJobLockFn   func(holder string) error
	SkippedRunFn       func(holder, heldBy string, at time.Time) (int64, error)
	OpenRunFn          func(holder string, at time.Time) (int64, error)
	CloseRunFn         func(run *rollup.Run, at time.Time, runErr error) error
	EnsurePartitionsFn func(from time.Time, months int) (int, error)
	PartitionsFn       func() ([]rollup.Partition, error)
	EnsureKeyGensFn    func(gens []int) (int, error)
	DropKeyGensFn      func(oldest int) ([]string, error)
	MarkDirtyFn        func(days []time.Time) error
	DirtyDaysFn        func() ([]rollup.DirtyDay, error)
	RecomputeDayFn     func(d rollup.DirtyDay, part, parts int, clear bool) (int64, bool, error)
	ClearDirtyFn       func(d rollup.DirtyDay) (bool, error)
	RetentionBlockedFn func(p rollup.Partition) (bool, error)
	DropPartitionFn    func(p rollup.Partition) (bool, error)

	mu    sync.Mutex
	calls []string
	// maxEndpoints are the caps RecomputeDay was given, in call order.
	maxEndpoints []int
}

var _ rollup.Store = (*rollupStore)(nil)

func (s *rollupStore) log(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
}

func (s *rollupStore) logged() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *rollupStore) AcquireJobLock(_ context.Context, holder string, now time.Time, lease time.Duration) (bool, string, error) {
	s.log("AcquireJobLock %s", holder)
	if s.AcquireJobLockFn == nil {
		return true, "", nil
	}
	return s.AcquireJobLockFn(holder, now, lease)
}

func (s *rollupStore) ReleaseJobLock(_ context.Context, holder string) error {
	s.log("ReleaseJobLock %s", holder)
	if s.ReleaseJobLockFn == nil {
		return nil
	}
	return s.ReleaseJobLockFn(holder)
}

func (s *rollupStore) SkippedRun(_ context.Context, holder, heldBy string, at time.Time) (int64, error) {
	s.log("SkippedRun %s %s", holder, heldBy)
	if s.SkippedRunFn == nil {
		return 9, nil
	}
	return s.SkippedRunFn(holder, heldBy, at)
}

func (s *rollupStore) OpenRun(_ context.Context, holder string, at time.Time) (int64, error) {
	s.log("OpenRun %s", holder)
	if s.OpenRunFn == nil {
		return 1, nil
	}
	return s.OpenRunFn(holder, at)
}

func (s *rollupStore) CloseRun(_ context.Context, run *rollup.Run, at time.Time, runErr error) error {
	s.log("CloseRun %d", run.JobRunID)
	if s.CloseRunFn == nil {
		return nil
	}
	return s.CloseRunFn(run, at, runErr)
}

func (s *rollupStore) EnsurePartitions(_ context.Context, from time.Time, months int) (int, error) {
	s.log("EnsurePartitions %s %d", from.Format(time.DateOnly), months)
	if s.EnsurePartitionsFn == nil {
		return 0, nil
	}
	return s.EnsurePartitionsFn(from, months)
}

func (s *rollupStore) Partitions(context.Context) ([]rollup.Partition, error) {
	s.log("Partitions")
	if s.PartitionsFn == nil {
		return nil, nil
	}
	return s.PartitionsFn()
}

func (s *rollupStore) EnsureKeyGenerations(_ context.Context, gens []int) (int, error) {
	s.log("EnsureKeyGenerations %v", gens)
	if s.EnsureKeyGensFn == nil {
		return 0, nil
	}
	return s.EnsureKeyGensFn(gens)
}

func (s *rollupStore) DropKeyGenerations(_ context.Context, oldest int) ([]string, error) {
	s.log("DropKeyGenerations %d", oldest)
	if s.DropKeyGensFn == nil {
		return nil, nil
	}
	return s.DropKeyGensFn(oldest)
}

func (s *rollupStore) MarkDirty(_ context.Context, days []time.Time) error {
	s.log("MarkDirty %d", len(days))
	if s.MarkDirtyFn == nil {
		return nil
	}
	return s.MarkDirtyFn(days)
}

func (s *rollupStore) DirtyDays(context.Context) ([]rollup.DirtyDay, error) {
	s.log("DirtyDays")
	if s.DirtyDaysFn == nil {
		return nil, nil
	}
	return s.DirtyDaysFn()
}

func (s *rollupStore) RecomputeDay(_ context.Context, d rollup.DirtyDay, part, parts, maxEndpoints int, clear bool) (int64, bool, error) {
	s.log("RecomputeDay %s %d/%d clear=%v", d.Day.Format(time.DateOnly), part, parts, clear)
	s.mu.Lock()
	s.maxEndpoints = append(s.maxEndpoints, maxEndpoints)
	s.mu.Unlock()
	if s.RecomputeDayFn == nil {
		return 1, clear, nil
	}
	return s.RecomputeDayFn(d, part, parts, clear)
}

func (s *rollupStore) ClearDirty(_ context.Context, d rollup.DirtyDay) (bool, error) {
	s.log("ClearDirty %s", d.Day.Format(time.DateOnly))
	if s.ClearDirtyFn == nil {
		return true, nil
	}
	return s.ClearDirtyFn(d)
}

func (s *rollupStore) RetentionBlocked(_ context.Context, p rollup.Partition) (bool, error) {
	s.log("RetentionBlocked %s", p.Name)
	if s.RetentionBlockedFn == nil {
		return false, nil
	}
	return s.RetentionBlockedFn(p)
}

func (s *rollupStore) DropPartition(_ context.Context, p rollup.Partition) (bool, error) {
	s.log("DropPartition %s", p.Name)
	if s.DropPartitionFn == nil {
		return true, nil
	}
	return s.DropPartitionFn(p)
}

// The job's clock: 15 June 2031; with 90 days of retention the cutoff is
// 17 March 2031.
var jobNow = time.Date(2031, 6, 15, 12, 0, 0, 0, time.UTC)

// newRollupJob returns the job over s on the clock jobNow, with c's
// settings.
func newRollupJob(tb testing.TB, s *rollupStore, c rollup.Config) *rollup.Job {
	tb.Helper()
	c.Store, c.Now = s, func() time.Time { return jobNow }
	j, err := rollup.New(c)
	if err != nil {
		tb.Fatal(err)
	}
	return j
}

func month(y int, m time.Month) rollup.Partition {
	start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	return rollup.Partition{Name: start.Format("p200601"), Start: start, End: start.AddDate(0, 1, 0)}
}

// months returns the partitions of January to August 2031.
func months() []rollup.Partition {
	var ps []rollup.Partition
	for m := time.January; m <= time.August; m++ {
		ps = append(ps, month(2031, m))
	}
	return ps
}

func dirty(days ...time.Time) func() ([]rollup.DirtyDay, error) {
	return func() ([]rollup.DirtyDay, error) {
		var out []rollup.DirtyDay
		for _, d := range days {
			out = append(out, rollup.DirtyDay{Day: d, MarkedAt: d.Add(time.Hour)})
		}
		return out, nil
	}
}

// withoutRecomputes drops the recompute calls, whose order depends on the
// workers, from a call log.
func withoutRecomputes(calls []string) []string {
	return slices.DeleteFunc(slices.Clone(calls), func(c string) bool {
		return strings.HasPrefix(c, "RecomputeDay") || strings.HasPrefix(c, "ClearDirty")
	})
}

// TestNew: a job is made only from a store, a clock and settings it can
// run with; each refusal is CodeInvalid and names what is wrong.
func TestNew(t *testing.T) {
	ok := rollup.Config{Store: &rollupStore{}, Now: time.Now}
	for _, tt := range []struct {
		name string
		edit func(*rollup.Config)
		want string // in the error; "" for a job
	}{
		{"defaults", func(*rollup.Config) {}, ""},
		{"settings", func(c *rollup.Config) {
			*c = rollup.Config{Store: c.Store, Now: c.Now, RetentionDays: 30, Workers: 4, Lease: time.Minute}
		}, ""},
		{"no store", func(c *rollup.Config) { c.Store = nil }, "a store is required"},
		{"no clock", func(c *rollup.Config) { c.Now = nil }, "a clock is required"},
		{"negative retention", func(c *rollup.Config) { c.RetentionDays = -1 }, "retention"},
		{"retention beyond the calendar", func(c *rollup.Config) { c.RetentionDays = math.MaxInt }, "retention in days must be at most 36500"},
		{"negative partitions ahead", func(c *rollup.Config) { c.PartitionsAhead = -1 }, "partitions kept ahead"},
		{"negative workers", func(c *rollup.Config) { c.Workers = -2 }, "workers"},
		{"negative lease", func(c *rollup.Config) { c.Lease = -time.Second }, "lease"},
		{"cap past the limit", func(c *rollup.Config) { c.MaxEndpointsPerDay = rollup.MaxEndpointsPerDayLimit + 1 }, "endpoints kept per user and day"},
		{"negative cap", func(c *rollup.Config) { c.MaxEndpointsPerDay = -1 }, "endpoints kept per user and day"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			j, err := rollup.New(c)
			if tt.want == "" {
				if err != nil || j == nil {
					t.Fatalf("New = %v, %v; want a job", j, err)
				}
				return
			}
			if j != nil || usage.ErrorCode(err) != usage.CodeInvalid || !strings.Contains(usage.ErrorMessage(err), tt.want) {
				t.Errorf("New = %v, %v; want a CodeInvalid error saying %q", j, err, tt.want)
			}
		})
	}
}

func TestRollupJob_Order(t *testing.T) {
	s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
	s.DirtyDaysFn = dirty(day(2031, 6, 1), day(2031, 6, 2), day(2031, 6, 3), day(2031, 6, 4), day(2031, 6, 5))
	s.RetentionBlockedFn = func(p rollup.Partition) (bool, error) { return p.Name == "p203102", nil }
	var closed *rollup.Run
	var closeErr error
	s.CloseRunFn = func(run *rollup.Run, _ time.Time, runErr error) error {
		closed, closeErr = run, runErr
		return nil
	}
	backfill := usage.DayRange{From: day(2031, 6, 4), To: day(2031, 6, 5)}

	run, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{Holder: "h", Backfill: &backfill})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"AcquireJobLock h",
		"OpenRun h",
		"EnsurePartitions 2031-06-15 3",
		// 2031-06-15 is in the generation 448 of 50 days from 1970-01-01.
		"EnsureKeyGenerations [448 449]",
		"Partitions",
		"MarkDirty 2",
		"DirtyDays",
		"DropKeyGenerations 447",
		// retention: January and February end before the cutoff; March
		// reaches past it.
		"Partitions",
		"RetentionBlocked p203101",
		"DropPartition p203101",
		"RetentionBlocked p203102",
		"CloseRun 1",
		"ReleaseJobLock h",
	}
	if diff := cmp.Diff(want, withoutRecomputes(s.logged())); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if closed != run || closeErr != nil {
		t.Errorf("CloseRun got %p, %v; want the run, nil", closed, closeErr)
	}
	if len(run.Days) != 5 || run.RowsWritten != 5 || len(run.StillDirty) != 0 ||
		!slices.Equal(run.PartitionsDropped, []string{"p203101"}) || !slices.Equal(run.RetentionBlocked, []string{"p203102"}) {
		t.Errorf("run = %+v", run)
	}
}

func TestRollupJob_Skipped(t *testing.T) {
	s := &rollupStore{AcquireJobLockFn: func(string, time.Time, time.Duration) (bool, string, error) { return false, "other", nil }}
	run, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{Holder: "h"})
	if err != nil || !run.Skipped || run.JobRunID != 9 {
		t.Fatalf("RunRollup = %+v, %v; want skipped run 9", run, err)
	}
	if diff := cmp.Diff([]string{"AcquireJobLock h", "SkippedRun h other"}, s.logged()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// A backfill whose run finds the lock held still marks its days, for the
// next run: a skipped run that dropped them answered the backfill as a
// success with nothing done. Days no longer kept are refused as when the
// run holds the lock.
func TestRollupJob_SkippedBackfill(t *testing.T) {
	held := func(string, time.Time, time.Duration) (bool, string, error) { return false, "other", nil }
	t.Run("marks the days", func(t *testing.T) {
		var marked []time.Time
		s := &rollupStore{AcquireJobLockFn: held, PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil },
			MarkDirtyFn: func(days []time.Time) error { marked = days; return nil }}
		r := usage.DayRange{From: day(2031, 3, 1), To: day(2031, 3, 3)}
		run, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{Holder: "h", Backfill: &r})
		if err != nil || !run.Skipped || run.JobRunID != 9 {
			t.Fatalf("RunRollup = %+v, %v; want skipped run 9", run, err)
		}
		if diff := cmp.Diff(r.Days(), marked); diff != "" {
			t.Errorf("days marked (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"AcquireJobLock h", "Partitions", "MarkDirty 3", "SkippedRun h other"}, s.logged()); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	})
	t.Run("refuses days no longer kept", func(t *testing.T) {
		s := &rollupStore{AcquireJobLockFn: held, PartitionsFn: func() ([]rollup.Partition, error) { return months()[2:], nil }}
		r := usage.DayRange{From: day(2031, 2, 27), To: day(2031, 3, 2)}
		_, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{Holder: "h", Backfill: &r})
		if usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != "from" {
			t.Fatalf("RunRollup = %v; want %s on from", err, usage.CodeInvalid)
		}
		if calls := s.logged(); slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "MarkDirty") }) {
			t.Errorf("calls %v: marked after the refusal", calls)
		}
	})
	t.Run("a store failure fails the run", func(t *testing.T) {
		boom := usage.Errorf(usage.CodeUnavailable, "database busy")
		s := &rollupStore{AcquireJobLockFn: held, PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil },
			MarkDirtyFn: func([]time.Time) error { return boom }}
		r := usage.DayRange{From: day(2031, 3, 1), To: day(2031, 3, 1)}
		if _, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{Holder: "h", Backfill: &r}); !errors.Is(err, boom) {
			t.Fatalf("RunRollup = %v; want the store's error", err)
		}
	})
}

func TestRollupJob_Lease(t *testing.T) {
	var gotNow time.Time
	var gotLease time.Duration
	var holder string
	s := &rollupStore{AcquireJobLockFn: func(h string, now time.Time, lease time.Duration) (bool, string, error) {
		holder, gotNow, gotLease = h, now, lease
		return true, "", nil
	}}
	if _, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{}); err != nil {
		t.Fatal(err)
	}
	if !gotNow.Equal(jobNow) || gotLease != rollup.DefaultRollupLease || len(holder) != len("run-")+16 {
		t.Errorf("lock taken at %v for %v by %q; want the clock, the default lease and a random holder", gotNow, gotLease, holder)
	}
}

func TestRollupJob_WorkerSplit(t *testing.T) {
	tests := []struct {
		name    string
		days    int
		workers int
		// wantParts is how many parts each day is recomputed in.
		wantParts int
	}{
		{"one day, two workers", 1, 2, 2},
		{"three days, two workers", 3, 2, 2},
		{"four days, two workers", 4, 2, 1},
		{"one day, one worker", 1, 1, 1},
		{"five days, four workers", 5, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var days []time.Time
			for i := range tt.days {
				days = append(days, day(2031, 6, 1+i))
			}
			s := &rollupStore{DirtyDaysFn: dirty(days...), PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
			var (
				mu      sync.Mutex
				parts   = map[string][]int{}
				clears  = map[string]int{}
				running int
				peak    int
			)
			s.RecomputeDayFn = func(d rollup.DirtyDay, part, n int, clear bool) (int64, bool, error) {
				mu.Lock()
				running++
				peak = max(peak, running)
				k := d.Day.Format(time.DateOnly)
				parts[k] = append(parts[k], part)
				if n != tt.wantParts || clear != (n == 1) {
					t.Errorf("RecomputeDay(%s, %d/%d, clear %v); want %d parts, clear only when whole", k, part, n, clear, tt.wantParts)
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				running--
				mu.Unlock()
				return 10, clear, nil
			}
			s.ClearDirtyFn = func(d rollup.DirtyDay) (bool, error) {
				mu.Lock()
				defer mu.Unlock()
				clears[d.Day.Format(time.DateOnly)]++
				if got := len(parts[d.Day.Format(time.DateOnly)]); got != tt.wantParts {
					t.Errorf("ClearDirty(%s) after %d of %d parts", d.Day.Format(time.DateOnly), got, tt.wantParts)
				}
				return true, nil
			}
			run, err := newRollupJob(t, s, rollup.Config{Workers: tt.workers}).RunRollup(context.Background(), rollup.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range days {
				k := d.Format(time.DateOnly)
				slices.Sort(parts[k])
				if want := seq(tt.wantParts); !slices.Equal(parts[k], want) {
					t.Errorf("%s recomputed in parts %v; want %v", k, parts[k], want)
				}
				if wantClears := map[bool]int{true: 1, false: 0}[tt.wantParts > 1]; clears[k] != wantClears {
					t.Errorf("%s: ClearDirty called %d times; want %d", k, clears[k], wantClears)
				}
			}
			if peak > tt.workers {
				t.Errorf("%d recomputes at once; want at most %d workers", peak, tt.workers)
			}
			if !slices.Equal(run.Days, days) || run.RowsWritten != int64(10*tt.days*tt.wantParts) || len(run.StillDirty) != 0 {
				t.Errorf("run: days %v, rows %d, still dirty %v", run.Days, run.RowsWritten, run.StillDirty)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestRollupJob_StillDirty(t *testing.T) {
	for _, days := range []int{1, 4} { // split and whole
		s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
		var ds []time.Time
		for i := range days {
			ds = append(ds, day(2031, 6, 1+i))
		}
		s.DirtyDaysFn = dirty(ds...)
		moved := day(2031, 6, 1) // an event arrived during the run
		s.RecomputeDayFn = func(d rollup.DirtyDay, _, _ int, clear bool) (int64, bool, error) {
			return 1, clear && !d.Day.Equal(moved), nil
		}
		s.ClearDirtyFn = func(d rollup.DirtyDay) (bool, error) { return !d.Day.Equal(moved), nil }
		run, err := newRollupJob(t, s, rollup.Config{Workers: 2}).RunRollup(context.Background(), rollup.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(run.StillDirty, []time.Time{moved}) || len(run.Days) != days {
			t.Errorf("%d days: still dirty %v, days %v; want [%s] still dirty, all recomputed", days, run.StillDirty, run.Days, moved.Format(time.DateOnly))
		}
	}
}

func TestRollupJob_DayWithoutPartition(t *testing.T) {
	gone := day(2030, 12, 31) // its partition was dropped
	s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
	for _, tt := range []struct {
		days      []time.Time
		wantCalls []string
	}{
		{[]time.Time{gone, day(2031, 6, 1), day(2031, 6, 2), day(2031, 6, 3)}, []string{"ClearDirty 2030-12-31"}},
		{[]time.Time{gone}, []string{"ClearDirty 2030-12-31"}}, // split in two parts: cleared once
	} {
		s.calls = nil
		s.DirtyDaysFn = dirty(tt.days...)
		run, err := newRollupJob(t, s, rollup.Config{Workers: 2}).RunRollup(context.Background(), rollup.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range s.logged() {
			if strings.Contains(c, "2030-12-31") {
				got = append(got, c)
			}
		}
		if diff := cmp.Diff(tt.wantCalls, got); diff != "" {
			t.Errorf("calls for the day without a partition (-want +got):\n%s", diff)
		}
		if !slices.Contains(run.Days, gone) {
			t.Errorf("days %v; want %s among them (its mark cleared)", run.Days, gone.Format(time.DateOnly))
		}
	}
}

func TestRollupJob_Backfill(t *testing.T) {
	t.Run("refuses days no longer kept", func(t *testing.T) {
		s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months()[2:], nil }} // from March
		var runErr error
		s.CloseRunFn = func(_ *rollup.Run, _ time.Time, err error) error { runErr = err; return nil }
		r := usage.DayRange{From: day(2031, 2, 27), To: day(2031, 3, 2)}
		_, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{Holder: "h", Backfill: &r})
		if usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != "from" {
			t.Fatalf("RunRollup = %v; want %s on from", err, usage.CodeInvalid)
		}
		calls := s.logged()
		if slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "MarkDirty") || strings.HasPrefix(c, "DirtyDays") }) {
			t.Errorf("calls %v: marked or recomputed after the refusal", calls)
		}
		if !errors.Is(runErr, err) || calls[len(calls)-1] != "ReleaseJobLock h" {
			t.Errorf("run closed with %v, calls %v; want closed failed and the lock released", runErr, calls)
		}
	})
	t.Run("bad range before the lock", func(t *testing.T) {
		s := &rollupStore{}
		r := usage.DayRange{From: day(2031, 3, 2), To: day(2031, 3, 1)}
		if _, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{Backfill: &r}); usage.ErrorCode(err) != usage.CodeInvalid {
			t.Fatalf("reversed range: %v; want %s", err, usage.CodeInvalid)
		}
		if calls := s.logged(); len(calls) != 0 {
			t.Errorf("calls %v; want none", calls)
		}
	})
}

func TestRollupJob_DayErrors(t *testing.T) {
	boom := usage.Errorf(usage.CodeUnavailable, "database busy, retry")
	bad := day(2031, 6, 2)
	s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
	s.DirtyDaysFn = dirty(day(2031, 6, 1), bad, day(2031, 6, 3), day(2031, 6, 4), day(2031, 6, 5))
	s.RecomputeDayFn = func(d rollup.DirtyDay, _, _ int, clear bool) (int64, bool, error) {
		if d.Day.Equal(bad) {
			return 0, false, boom
		}
		return 1, clear, nil
	}
	var runErr error
	s.CloseRunFn = func(_ *rollup.Run, _ time.Time, err error) error { runErr = err; return nil }
	run, err := newRollupJob(t, s, rollup.Config{Workers: 2}).RunRollup(context.Background(), rollup.Options{Holder: "h"})
	if !errors.Is(err, boom) || !errors.Is(runErr, boom) {
		t.Fatalf("RunRollup = %v (closed with %v); want the day's error", err, runErr)
	}
	if want := []time.Time{day(2031, 6, 1), day(2031, 6, 3), day(2031, 6, 4), day(2031, 6, 5)}; !slices.Equal(run.Days, want) {
		t.Errorf("days %v; want every other day recomputed", run.Days)
	}
	calls := s.logged()
	if slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "Retention") }) {
		t.Errorf("retention ran after a failed recompute: %v", calls)
	}
	if calls[len(calls)-1] != "ReleaseJobLock h" {
		t.Errorf("last call %q; want the lock released", calls[len(calls)-1])
	}

	// A split day whose part fails is not cleared.
	s.calls = nil
	s.DirtyDaysFn = dirty(bad)
	if _, err := newRollupJob(t, s, rollup.Config{Workers: 2}).RunRollup(context.Background(), rollup.Options{}); !errors.Is(err, boom) {
		t.Fatalf("split day: %v; want the error", err)
	}
	if slices.ContainsFunc(s.logged(), func(c string) bool { return strings.HasPrefix(c, "ClearDirty") }) {
		t.Error("a split day with a failed part was cleared")
	}
}

func TestRollupJob_Cancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
	s.DirtyDaysFn = dirty(day(2031, 6, 1), day(2031, 6, 2), day(2031, 6, 3), day(2031, 6, 4), day(2031, 6, 5), day(2031, 6, 6))
	s.RecomputeDayFn = func(d rollup.DirtyDay, _, _ int, clear bool) (int64, bool, error) {
		cancel() // the Lambda's deadline passes during the first day
		return 1, clear, nil
	}
	closed := false
	s.CloseRunFn = func(*rollup.Run, time.Time, error) error { closed = true; return nil }
	run, err := newRollupJob(t, s, rollup.Config{Workers: 1}).RunRollup(ctx, rollup.Options{})
	if usage.ErrorCode(err) != usage.CodeUnavailable || !errors.Is(err, context.Canceled) {
		t.Fatalf("RunRollup = %v; want %s wrapping the cancellation", err, usage.CodeUnavailable)
	}
	if len(run.Days) >= 6 || !closed {
		t.Errorf("days %v, closed %v; want the run stopped early and closed", run.Days, closed)
	}
}

func TestRollupJob_Deferred(t *testing.T) {
	t.Run("partitions", func(t *testing.T) {
		s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }, DirtyDaysFn: dirty(day(2031, 6, 1))}
		s.EnsurePartitionsFn = func(time.Time, int) (int, error) { return 0, rollup.ErrDeferred }
		run, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(run.Deferred, []string{"partitions: lock timeout", "retention: raw table busy"}) || len(run.Days) != 1 {
			t.Errorf("deferred %v, days %v; want the upkeep deferred and the day recomputed", run.Deferred, run.Days)
		}
		if slices.ContainsFunc(s.logged(), func(c string) bool { return strings.HasPrefix(c, "Retention") }) {
			t.Error("retention ran behind a busy raw table")
		}
	})
	t.Run("partitions failing otherwise", func(t *testing.T) {
		boom := usage.Errorf(usage.CodeUnavailable, "database unavailable")
		s := &rollupStore{EnsurePartitionsFn: func(time.Time, int) (int, error) { return 0, boom }}
		if _, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{}); !errors.Is(err, boom) {
			t.Errorf("RunRollup = %v; want the failure, not a deferral", err)
		}
	})
	t.Run("retention", func(t *testing.T) {
		s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
		s.DropPartitionFn = func(p rollup.Partition) (bool, error) {
			if p.Name == "p203102" {
				return false, rollup.ErrDeferred
			}
			return p.Name != "p203101", nil // January: dirtied under the lock
		}
		run, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(run.Deferred, []string{"retention: lock timeout"}) || !slices.Equal(run.RetentionBlocked, []string{"p203101"}) ||
			len(run.PartitionsDropped) != 0 {
			t.Errorf("run = %+v; want January blocked, then retention deferred", run)
		}
	})
}

func TestRollupJob_RetentionCutoff(t *testing.T) {
	for _, tt := range []struct {
		days int
		want []string
	}{
		{90, []string{"p203101", "p203102"}},            // cutoff 2031-03-17
		{76, []string{"p203101", "p203102"}},            // cutoff 2031-03-31: March reaches past it
		{75, []string{"p203101", "p203102", "p203103"}}, // cutoff 2031-04-01: March ends on it
		{400, nil},
	} {
		s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
		run, err := newRollupJob(t, s, rollup.Config{RetentionDays: tt.days}).RunRollup(context.Background(), rollup.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(run.PartitionsDropped, tt.want) {
			t.Errorf("retention %d days: dropped %v; want %v", tt.days, run.PartitionsDropped, tt.want)
		}
	}
}

// TestRollupJob_UserDays: the run counts the users' days it recomputed
// alone, each user once however many marks its day holds, and none of a
// day recomputed whole (marked as a whole, or most of its users marked).
func TestRollupJob_UserDays(t *testing.T) {
	d1, d2, d3 := day(2031, 6, 1), day(2031, 6, 2), day(2031, 6, 3)
	s := &rollupStore{PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
	s.DirtyDaysFn = func() ([]rollup.DirtyDay, error) {
		return []rollup.DirtyDay{
			{Day: d1, Users: []rollup.UserMark{{UserID: "a", Slot: 0}, {UserID: "a", Slot: 1}, {UserID: "b", Slot: 0}}},
			{Day: d2, MarkedAt: d2, Users: []rollup.UserMark{{UserID: "a", Slot: 0}}},
			{Day: d3, Most: true, Users: []rollup.UserMark{{UserID: "c", Slot: 0}}},
		}, nil
	}
	s.RecomputeDayFn = func(d rollup.DirtyDay, part, parts int, clear bool) (int64, bool, error) { return 1, true, nil }
	run, err := newRollupJob(t, s, rollup.Config{}).RunRollup(context.Background(), rollup.Options{Holder: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Time{d1, d2, d3}, run.Days); diff != "" || run.UserDays != 2 {
		t.Errorf("days (-want +got):\n%s; %d users' days alone, want 2 (a and b of %s)", diff, run.UserDays, d1.Format(time.DateOnly))
	}
}
