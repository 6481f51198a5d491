package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// Dirty marks per user and day (eco_usage_dirty_user_days): the record path marks
// the days of the users whose events it inserts, the rollup recomputes
// those users' rows alone, and analytics reads a user's day live only
// while that user's day (or the whole day) is dirty.

// TestRollup_LateEventsOfOneUser: one user's backdated events, one a day,
// make only that user's days dirty; the next run recomputes that user's
// rows of those days and no other user's (a rollup row of another user,
// made wrong on purpose, stays as it was: it was not re-aggregated), and
// analytics reads the user's days live until then, the other users' from
// the rollup.
func TestRollup_LateEventsOfOneUser(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	store := postgres.NewEventStore(db)
	job := newJob(t, s, rollupNow)
	g := newEventGen(11, 6)
	start := usage.Day(rollupNow).AddDate(0, 0, -20)
	var all []usage.Event
	for i := 0; i < 3000; i++ {
		all = append(all, g.event(start, 20*24*time.Hour))
	}
	for chunk := range slices.Chunk(all, 1000) {
		if _, err := store.RecordBatch(ctx, rollupNow, chunk, nil); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, job, rollup.Options{})
	checkRollup(t, db, all)

	// Another user's row of a day the late events reach, made wrong: a
	// recompute of that user's day would correct it.
	late, other := g.users[0], g.users[1]
	target := start.AddDate(0, 0, 5)
	tag, err := db.Pool.Exec(ctx, `UPDATE eco_usage_daily SET calls = calls + 1000 WHERE user_id = $1 AND day = $2`, other, target)
	if err != nil || tag.RowsAffected() == 0 {
		t.Fatalf("spoil the other user's rollup: %d rows, %v", tag.RowsAffected(), err)
	}

	// One backdated event of the late user on each of 15 closed days.
	var backdated []usage.Event
	var lateDays []time.Time
	for i := 0; i < 15; i++ {
		d := start.AddDate(0, 0, i)
		e := g.event(d, 24*time.Hour)
		e.UserID, e.APIKeyID = late, ""
		backdated = append(backdated, e)
		lateDays = append(lateDays, d)
	}
	if n, err := store.RecordBatch(ctx, rollupNow, backdated, nil); err != nil || n != 15 {
		t.Fatalf("record the backdated events = %d, %v", n, err)
	}
	var wholeDays, otherMarks int64
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM eco_usage_dirty_days),
		(SELECT count(*) FROM eco_usage_dirty_user_days WHERE user_id <> $1)`, late).Scan(&wholeDays, &otherMarks); err != nil {
		t.Fatal(err)
	}
	if wholeDays != 0 || otherMarks != 0 {
		t.Errorf("%d days dirty as a whole, %d marks of other users; want none", wholeDays, otherMarks)
	}

	// Analytics: the late user's day is live (its counters hold the late
	// event), the other user's same day is read from the rollup.
	a := postgres.NewAnalyticsStore(db)
	r := usage.DayRange{From: target, To: target}
	for _, tt := range []struct {
		user string
		live bool
	}{{late, true}, {other, false}} {
		days, err := a.DailyUsage(ctx, tt.user, r, rollupNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(days) != 1 || days[0].Live != tt.live {
			t.Errorf("DailyUsage(%s, %s) = %+v; want live %v", tt.user, target.Format(time.DateOnly), days, tt.live)
		}
	}

	run := mustRun(t, job, rollup.Options{})
	if diff := cmp.Diff(lateDays, run.Days); diff != "" {
		t.Errorf("days recomputed (-want +got):\n%s", diff)
	}
	if run.UserDays != 15 || len(run.StillDirty) != 0 {
		t.Errorf("run = %d users' days, still dirty %v; want 15, none", run.UserDays, run.StillDirty)
	}
	var spoiled int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_usage_daily WHERE user_id = $1 AND day = $2 AND calls >= 1000`,
		other, target).Scan(&spoiled); err != nil || spoiled == 0 {
		t.Errorf("the other user's row of %s was re-aggregated (%d rows still spoiled, %v): its day was not dirty",
			target.Format(time.DateOnly), spoiled, err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE eco_usage_daily SET calls = calls - 1000 WHERE user_id = $1 AND day = $2`, other, target); err != nil {
		t.Fatal(err)
	}
	checkRollup(t, db, append(all, backdated...))
	if got := dirtyDays(t, db); len(got) != 0 {
		t.Errorf("dirty days after the run: %v", got)
	}
	if days, err := a.DailyUsage(ctx, late, r, rollupNow); err != nil || len(days) != 1 || days[0].Live {
		t.Errorf("DailyUsage(late user) after the run = %+v, %v; want read from the rollup", days, err)
	}
}

// TestRollup_WholeDayMarkClearsUsersMarks: a day marked as a whole (a
// backfill) is recomputed for every user, and the users' marks of that
// day, read with it, are cleared with it.
func TestRollup_WholeDayMarkClearsUsersMarks(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	job := newJob(t, s, rollupNow)
	g := newEventGen(12, 4)
	d := usage.Day(rollupNow).AddDate(0, 0, -2)
	var all []usage.Event
	for i := 0; i < 200; i++ {
		all = append(all, g.event(d, 24*time.Hour))
	}
	if _, err := postgres.NewEventStore(db).RecordBatch(ctx, rollupNow, all, nil); err != nil {
		t.Fatal(err)
	}
	run := mustRun(t, job, rollup.Options{Backfill: &usage.DayRange{From: d, To: d}})
	if diff := cmp.Diff([]time.Time{d}, run.Days); diff != "" || run.UserDays != 0 {
		t.Errorf("days recomputed (-want +got):\n%s; %d users' days alone, want 0", diff, run.UserDays)
	}
	checkRollup(t, db, all)
	if got := dirtyDays(t, db); len(got) != 0 {
		t.Errorf("dirty days after the run: %v", got)
	}
}

// TestRollup_MostUsersMarkedRecomputesWholeDay: when the users marked are
// at least half of a day's, the run recomputes the day for every user
// (one pass over the day's raw rows costs the same): a row of an unmarked
// user, spoiled on purpose, is corrected, and the run counts no user's day
// alone.
func TestRollup_MostUsersMarkedRecomputesWholeDay(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	store := postgres.NewEventStore(db)
	job := newJob(t, postgres.NewRollupStore(db), rollupNow)
	g := newEventGen(13, 4)
	d := usage.Day(rollupNow).AddDate(0, 0, -3)
	var all []usage.Event
	for i := 0; i < 400; i++ {
		all = append(all, g.event(d, 24*time.Hour))
	}
	if _, err := store.RecordBatch(ctx, rollupNow, all, nil); err != nil {
		t.Fatal(err)
	}
	mustRun(t, job, rollup.Options{})
	checkRollup(t, db, all)
	quiet := g.users[3]
	if _, err := db.Pool.Exec(ctx, `UPDATE eco_usage_daily SET calls = calls + 1000 WHERE user_id = $1 AND day = $2`, quiet, d); err != nil {
		t.Fatal(err)
	}
	var more []usage.Event
	for _, u := range g.users[:2] {
		e := g.event(d, 24*time.Hour)
		e.UserID, e.APIKeyID = u, ""
		more = append(more, e)
	}
	if _, err := store.RecordBatch(ctx, rollupNow, more, nil); err != nil {
		t.Fatal(err)
	}
	run := mustRun(t, job, rollup.Options{})
	if diff := cmp.Diff([]time.Time{d}, run.Days); diff != "" || run.UserDays != 0 {
		t.Errorf("days recomputed (-want +got):\n%s; %d users' days alone, want 0", diff, run.UserDays)
	}
	checkRollup(t, db, append(all, more...)) // the spoiled row too
}
