package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/rollup/rolluptest"
	"github.com/nexus/usage/shared/usage"
)

// rollupNow is the fixed clock of the rollup tests.
var rollupNow = time.Date(2031, 3, 20, 10, 30, 0, 0, time.UTC)

// newRollupDB returns a test database on a fixed clock with raw partitions
// for the months around now.
func newRollupDB(t *testing.T, now time.Time) *postgres.DB {
	t.Helper()
	db := pgtest.NewDB(t)
	db.Now = func() time.Time { return now }
	if _, err := postgres.NewRollupStore(db).EnsurePartitions(context.Background(), now.AddDate(0, -3, 0), 7); err != nil {
		t.Fatal(err)
	}
	return db
}

// newJob returns the aggregation job over the store on the fixed clock now.
func newJob(tb testing.TB, s *postgres.RollupStore, now time.Time) *rollup.Job {
	tb.Helper()
	j, err := rollup.New(rollup.Config{Store: s, Now: func() time.Time { return now }})
	if err != nil {
		tb.Fatal(err)
	}
	return j
}

// partition returns the raw partition named name.
func partition(t *testing.T, s *postgres.RollupStore, name string) rollup.Partition {
	t.Helper()
	ps, err := s.Partitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no partition %s in %v", name, ps)
	return rollup.Partition{}
}

// recompute rebuilds the whole rollup of day, leaving its dirty mark alone.
func recompute(t *testing.T, s *postgres.RollupStore, day time.Time) (int64, error) {
	t.Helper()
	n, _, err := s.RecomputeDay(context.Background(), rollup.DirtyDay{Day: day}, 0, 1, rollup.DefaultMaxEndpointsPerDay, false)
	return n, err
}

// recordEvents writes events the way the record path does: one statement that
// stores the ids in the event key store (its generation of now), inserts
// the raw rows of the ids it returned and moves the counters and dirty
// marks by the rows actually inserted (increment_api_calls).
func recordEvents(t *testing.T, db *postgres.DB, events []usage.Event) {
	t.Helper()
	recordTx(t, db.Pool, usage.KeyGeneration(db.Now()), events)
}

// recordTx is recordEvents on q (a transaction, say), storing the keys in the
// key store's generation gen (usage.KeyGeneration of the database's clock).
func recordTx(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, gen int, events []usage.Event) {
	t.Helper()
	const stmt = `WITH e AS (
		SELECT DISTINCT ON (event_id) * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::smallint[], $7::int[],
			$8::bigint[], $9::bigint[], $10::int[], $11::timestamptz[])
			AS e(event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms, request_bytes, response_bytes, quantity, occurred_at)
	), k AS (
		INSERT INTO eco_event_keys (gen, event_id) SELECT $12, event_id FROM e ORDER BY 2
		ON CONFLICT DO NOTHING
		RETURNING event_id
	), ins AS (
		INSERT INTO eco_api_usage (event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms,
			request_bytes, response_bytes, quantity, occurred_at)
		SELECT e.* FROM e JOIN k USING (event_id)
		RETURNING user_id, occurred_at, quantity, status_code, request_bytes, response_bytes
	), d AS (
		SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, sum(quantity)::bigint AS c,
			coalesce(sum(quantity) FILTER (WHERE status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
			coalesce(sum(quantity) FILTER (WHERE status_code BETWEEN 500 AND 599), 0)::bigint AS e5,
			sum(request_bytes)::bigint AS rq, sum(response_bytes)::bigint AS rs
		FROM ins GROUP BY 1, 2
	)
	SELECT coalesce(increment_api_calls(array_agg(user_id), array_agg(day), array_agg(c), array_agg(e4),
		array_agg(e5), array_agg(rq), array_agg(rs)), 0) FROM d`
	var created int
	if err := q.QueryRow(context.Background(), `SELECT ensure_event_key_generations($1)`, []int{gen}).Scan(&created); err != nil {
		t.Fatalf("ensure the key generation: %v", err)
	}
	for chunk := range slices.Chunk(events, 1000) {
		var (
			ids, users, keys   []*string
			endpoints, methods []string
			statuses           []int16
			lat, qty           []int32
			rq, rs             []int64
			at                 []time.Time
		)
		for _, e := range chunk {
			id, user := e.EventID, e.UserID
			ids, users = append(ids, &id), append(users, &user)
			if e.APIKeyID == "" {
				keys = append(keys, nil)
			} else {
				k := e.APIKeyID
				keys = append(keys, &k)
			}
			endpoints, methods = append(endpoints, e.Endpoint), append(methods, e.Method)
			statuses = append(statuses, int16(e.StatusCode))
			lat, qty = append(lat, int32(e.LatencyMS)), append(qty, int32(e.Quantity))
			rq, rs = append(rq, e.RequestBytes), append(rs, e.ResponseBytes)
			at = append(at, e.OccurredAt)
		}
		var n int64
		if err := q.QueryRow(context.Background(), stmt, ids, users, keys, endpoints, methods, statuses, lat,
			rq, rs, qty, at, gen).Scan(&n); err != nil {
			t.Fatalf("record events: %v", err)
		}
	}
}

// eventGen makes random events: many users, endpoints, statuses and
// latencies (with ties), quantities above 1, keys and no keys.
type eventGen struct {
	r     *rand.Rand
	users []string
	keys  map[string][]string
}

func newEventGen(seed uint64, users int) *eventGen {
	g := &eventGen{r: rand.New(rand.NewPCG(seed, 7)), keys: map[string][]string{}}
	for i := 0; i < users; i++ {
		u := g.uuid()
		g.users = append(g.users, u)
		for k := 0; k < i%3; k++ {
			g.keys[u] = append(g.keys[u], g.uuid())
		}
	}
	return g
}

func (g *eventGen) uuid() string {
	return uuid.Must(uuid.NewRandomFromReader(randReader{g.r})).String()
}

type randReader struct{ r *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.UintN(256))
	}
	return len(p), nil
}

var (
	testEndpoints = []string{"GET /v1/games", "GET /v1/games/{id}", "POST /v1/games", "DELETE /v1/games/{id}", "GET /v1/users/{id}", "PUT /v1/scores"}
	testStatuses  = []int{200, 200, 200, 201, 204, 301, 400, 401, 404, 429, 500, 502, 503}
)

// event returns a random event that occurred in [from, from+span).
func (g *eventGen) event(from time.Time, span time.Duration) usage.Event {
	u := g.users[g.r.IntN(len(g.users))]
	e := usage.Event{
		Version:       usage.EventVersion,
		EventID:       g.uuid(),
		UserID:        u,
		Endpoint:      testEndpoints[g.r.IntN(len(testEndpoints))],
		Method:        "GET",
		StatusCode:    testStatuses[g.r.IntN(len(testStatuses))],
		LatencyMS:     int64(g.r.IntN(40)) * int64(1+g.r.IntN(50)), // many ties
		RequestBytes:  int64(g.r.IntN(5000)),
		ResponseBytes: int64(g.r.IntN(100000)),
		Quantity:      1,
		OccurredAt:    from.Add(time.Duration(g.r.Int64N(int64(span)))).Truncate(time.Microsecond),
	}
	if g.r.IntN(5) == 0 {
		e.Quantity = int64(2 + g.r.IntN(9))
	}
	if ks := g.keys[u]; len(ks) > 0 && g.r.IntN(4) != 0 {
		e.APIKeyID = ks[g.r.IntN(len(ks))]
	}
	return e
}

// dedupe keeps the first event of each (event_id, occurred_at), as the raw
// table's primary key does.
func dedupe(events []usage.Event) []usage.Event {
	type key struct {
		id string
		at time.Time
	}
	seen := map[key]bool{}
	var out []usage.Event
	for _, e := range events {
		k := key{e.EventID, e.OccurredAt.UTC()}
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// dailyUsage reads the whole rollup, ordered as rolluptest.Sort does.
func dailyUsage(t *testing.T, db *postgres.DB) []rollup.DailyRollup {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT day, user_id::text, endpoint, coalesce(api_key_id::text, ''),
		calls, errors_4xx, errors_5xx, request_bytes, response_bytes, latency_sum_ms, latency_p50_ms, latency_p95_ms,
		latency_max_ms, events FROM eco_usage_daily`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rollup.DailyRollup, error) {
		var d rollup.DailyRollup
		err := r.Scan(&d.Day, &d.UserID, &d.Endpoint, &d.APIKeyID, &d.Calls, &d.Errors4xx, &d.Errors5xx,
			&d.RequestBytes, &d.ResponseBytes, &d.LatencySumMS, &d.LatencyP50MS, &d.LatencyP95MS, &d.LatencyMaxMS, &d.Events)
		return d, err
	})
	if err != nil {
		t.Fatal(err)
	}
	rolluptest.Sort(out)
	return out
}

func mustRun(t *testing.T, job *rollup.Job, opts rollup.Options) *rollup.Run {
	t.Helper()
	run, err := job.RunRollup(context.Background(), opts)
	if err != nil {
		t.Fatalf("RunRollup: %v", err)
	}
	return run
}

func checkRollup(t *testing.T, db *postgres.DB, all []usage.Event) {
	t.Helper()
	want := rolluptest.Rollup(dedupe(all), rollup.DefaultMaxEndpointsPerDay)
	if diff := cmp.Diff(want, dailyUsage(t, db)); diff != "" {
		t.Fatalf("rollup differs from the brute force (-want +got):\n%s", diff)
	}
	checkSummaries(t, db)
}

func day(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func days(ds ...string) []time.Time {
	out := []time.Time{}
	for _, d := range ds {
		out = append(out, day(d))
	}
	return out
}

// aggregatedAt returns when each day was last aggregated.
func aggregatedAt(t *testing.T, db *postgres.DB) map[string]time.Time {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT day::text, aggregated_at FROM eco_usage_aggregated_days`)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]time.Time{}
	var d string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&d, &at}, func() error { m[d] = at; return nil }); err != nil {
		t.Fatal(err)
	}
	return m
}

func dirtyDays(t *testing.T, db *postgres.DB) []time.Time {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT day FROM eco_usage_dirty_days
		UNION SELECT day FROM eco_usage_dirty_user_days ORDER BY day`)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		t.Fatal(err)
	}
	if ds == nil {
		ds = []time.Time{}
	}
	return ds
}

func TestRollup_MatchesBruteForce(t *testing.T) {
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	job := newJob(t, s, rollupNow)
	g := newEventGen(1, 40)
	start := rollupNow.AddDate(0, 0, -40)

	// Round 1: 40 days of events, with redeliveries of some of them.
	var all []usage.Event
	for i := 0; i < 6000; i++ {
		all = append(all, g.event(start, 40*24*time.Hour))
	}
	for i := 0; i < 600; i++ {
		all = append(all, all[g.r.IntN(len(all))])
	}
	recordEvents(t, db, all)
	run := mustRun(t, job, rollup.Options{})
	if len(run.Days) < 40 {
		t.Fatalf("run 1 recomputed %d days, want every day with events", len(run.Days))
	}
	checkRollup(t, db, all)

	// Round 2: late events spread over the 40 days, more redeliveries,
	// and events for today.
	var late []usage.Event
	for i := 0; i < 800; i++ {
		late = append(late, g.event(start, 40*24*time.Hour))
	}
	for i := 0; i < 300; i++ {
		late = append(late, all[g.r.IntN(len(all))])
	}
	for i := 0; i < 100; i++ {
		late = append(late, g.event(usage.Day(rollupNow), 10*time.Hour))
	}
	recordEvents(t, db, late)
	all = append(all, late...)
	mustRun(t, job, rollup.Options{})
	checkRollup(t, db, all)

	// Redeliveries only: nothing new is dirty, nothing is recomputed, the
	// rollup stays the same.
	recordEvents(t, db, all[:500])
	run = mustRun(t, job, rollup.Options{})
	if len(run.Days) != 0 {
		t.Errorf("a run after redeliveries only recomputed %v", run.Days)
	}
	checkRollup(t, db, all)

	// Recomputing every day again (twice) changes nothing.
	for i := 0; i < 2; i++ {
		mustRun(t, job, rollup.Options{Backfill: &usage.DayRange{From: usage.Day(start), To: usage.Day(rollupNow)}})
		checkRollup(t, db, all)
	}
}

func TestRollup_LateEventForClosedDay(t *testing.T) {
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	job := newJob(t, s, rollupNow)
	g := newEventGen(2, 10)
	start := rollupNow.AddDate(0, 0, -20)
	var all []usage.Event
	for i := 0; i < 2000; i++ {
		all = append(all, g.event(start, 20*24*time.Hour))
	}
	recordEvents(t, db, all)
	mustRun(t, job, rollup.Options{})
	checkRollup(t, db, all)
	before := aggregatedAt(t, db)

	// An event 12 days late, into a day closed long ago.
	lateDay := usage.Day(rollupNow).AddDate(0, 0, -12)
	e := g.event(lateDay, 24*time.Hour)
	e.StatusCode, e.Quantity = 503, 3
	recordEvents(t, db, []usage.Event{e})
	all = append(all, e)

	run := mustRun(t, job, rollup.Options{})
	if diff := cmp.Diff([]time.Time{lateDay}, run.Days); diff != "" {
		t.Errorf("recomputed days (-want +got):\n%s", diff)
	}
	checkRollup(t, db, all)
	after := aggregatedAt(t, db)
	for d, at := range before {
		if d == lateDay.Format(time.DateOnly) {
			if !after[d].After(at) {
				t.Errorf("day %s: aggregated_at %v not after %v", d, after[d], at)
			}
			continue
		}
		if !after[d].Equal(at) {
			t.Errorf("unchanged day %s was recomputed (aggregated_at %v, was %v)", d, after[d], at)
		}
	}

	// The run is in the job runs table with what it did.
	var outcome string
	var n int
	var detailDays []string
	err := db.Pool.QueryRow(context.Background(), `SELECT outcome, days_recomputed,
		ARRAY(SELECT jsonb_array_elements_text(detail->'days')) FROM eco_job_runs WHERE run_id = $1`, run.JobRunID).
		Scan(&outcome, &n, &detailDays)
	if err != nil {
		t.Fatal(err)
	}
	if outcome != "succeeded" || n != 1 || !slices.Equal(detailDays, []string{lateDay.Format(time.DateOnly)}) {
		t.Errorf("job run = %s, %d days %v; want succeeded, 1 day [%s]", outcome, n, detailDays, lateDay.Format(time.DateOnly))
	}
}

// waitFor polls cond until it holds (no timing assertion: it fails only if
// the condition never comes within a minute).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRollup_EventDuringRunKeepsDayDirty(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	s.LockTimeout = 300 * time.Millisecond // the upkeep waits behind the record transaction first
	job := newJob(t, s, rollupNow)
	g := newEventGen(3, 5)
	d := usage.Day(rollupNow).AddDate(0, 0, -3)
	first := []usage.Event{g.event(d, 24*time.Hour), g.event(d, 24*time.Hour)}
	recordEvents(t, db, first)

	// A record transaction in flight: its event (of a user whose day is
	// marked) is inserted and the user's dirty mark updated, but it has
	// not committed when the run reads.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	inFlight := g.event(d, 24*time.Hour)
	inFlight.UserID, inFlight.APIKeyID = first[0].UserID, first[0].APIKeyID
	recordTx(t, tx, usage.KeyGeneration(db.Now()), []usage.Event{inFlight})

	done := make(chan *rollup.Run)
	go func() {
		run, err := job.RunRollup(ctx, rollup.Options{Holder: "run-a"})
		if err != nil {
			t.Errorf("RunRollup: %v", err)
		}
		done <- run
	}()
	// The run blocks on the dirty row the record transaction holds.
	waitFor(t, "the run to wait on the dirty mark", func() bool {
		var waiting bool
		_ = db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM eco_usage_dirty_user_days%')`).Scan(&waiting)
		return waiting
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	run := <-done
	if diff := cmp.Diff([]time.Time{d}, run.StillDirty); diff != "" {
		t.Errorf("still dirty (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Time{d}, dirtyDays(t, db)); diff != "" {
		t.Errorf("dirty days after the run (-want +got):\n%s", diff)
	}
	// The run's snapshot could not see the in-flight event; the next does.
	mustRun(t, job, rollup.Options{})
	checkRollup(t, db, append(first, inFlight))
	if got := dirtyDays(t, db); len(got) != 0 {
		t.Errorf("dirty days after the second run: %v", got)
	}
}

func TestRollup_ConcurrentRunsOneSkips(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	job := newJob(t, s, rollupNow)
	g := newEventGen(4, 20)
	var all []usage.Event
	for i := 0; i < 3000; i++ {
		all = append(all, g.event(rollupNow.AddDate(0, 0, -10), 10*24*time.Hour))
	}
	recordEvents(t, db, all)

	// Hold run A in the middle of its work: lock one dirty mark.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM eco_usage_dirty_user_days WHERE day = $1 FOR UPDATE`, usage.Day(rollupNow).AddDate(0, 0, -5)); err != nil {
		t.Fatal(err)
	}
	done := make(chan *rollup.Run)
	go func() {
		run, err := job.RunRollup(ctx, rollup.Options{Holder: "run-a"})
		if err != nil {
			t.Errorf("run a: %v", err)
		}
		done <- run
	}()
	waitFor(t, "run a to hold the job lock", func() bool {
		var held bool
		_ = db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM eco_job_locks WHERE holder = 'run-a')`).Scan(&held)
		return held
	})
	b, err := job.RunRollup(ctx, rollup.Options{Holder: "run-b"})
	if err != nil {
		t.Fatalf("run b: %v", err)
	}
	if !b.Skipped || len(b.Days) != 0 {
		t.Errorf("run b = %+v; want skipped", b)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.Skipped || len(a.Days) != 10 && len(a.Days) != 11 {
		t.Errorf("run a: skipped %v, %d days", a.Skipped, len(a.Days))
	}
	checkRollup(t, db, all)

	var outcomes []string
	rows, _ := db.Pool.Query(ctx, `SELECT outcome || ':' || (detail->>'holder') FROM eco_job_runs ORDER BY run_id`)
	outcomes, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(outcomes)
	if diff := cmp.Diff([]string{"skipped:run-b", "succeeded:run-a"}, outcomes); diff != "" {
		t.Errorf("job runs (-want +got):\n%s", diff)
	}
	var locks int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_job_locks`).Scan(&locks); err != nil || locks != 0 {
		t.Errorf("lock rows after the runs: %d (%v); want 0", locks, err)
	}

	// Free-for-all: four runs started together over new events. Each
	// either runs or skips; none fails and the rollup is right.
	for i := 0; i < 1000; i++ {
		all = append(all, g.event(rollupNow.AddDate(0, 0, -10), 10*24*time.Hour))
	}
	recordEvents(t, db, all[len(all)-1000:])
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := job.RunRollup(ctx, rollup.Options{Holder: fmt.Sprintf("free-%d", i)}); err != nil {
				t.Errorf("run %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	mustRun(t, job, rollup.Options{}) // whatever a skip left behind
	checkRollup(t, db, all)
}

func TestRollup_StaleLockIsTakenOver(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	job := newJob(t, s, rollupNow)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_job_locks (job, holder, acquired_at, locked_until) VALUES ('aggregate', 'crashed', $1, $2)`,
		rollupNow.Add(-time.Hour), rollupNow.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if run := mustRun(t, job, rollup.Options{}); run.Skipped {
		t.Fatal("a run behind an expired lease skipped")
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_job_locks (job, holder, acquired_at, locked_until) VALUES ('aggregate', 'alive', $1, $2)`,
		rollupNow.Add(-time.Minute), rollupNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if run := mustRun(t, job, rollup.Options{}); !run.Skipped {
		t.Fatal("a run behind a live lease did not skip")
	}
}

// TestRollup_AbandonedRunIsClosed: the record of a run that stopped
// without closing it (its function killed, its connection lost) is closed
// as failed by the run that takes the lock over: it said "running" for
// ever. A run that skips leaves the live holder's record alone.
func TestRollup_AbandonedRunIsClosed(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	job := newJob(t, s, rollupNow)
	var crashed int64
	if err := db.Pool.QueryRow(ctx, `INSERT INTO eco_job_runs (job, started_at, detail)
		VALUES ('aggregate', $1, '{"holder":"crashed"}') RETURNING run_id`, rollupNow.Add(-time.Hour)).Scan(&crashed); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_job_locks (job, holder, acquired_at, locked_until) VALUES ('aggregate', 'crashed', $1, $2)`,
		rollupNow.Add(-time.Hour), rollupNow.Add(-40*time.Minute)); err != nil {
		t.Fatal(err)
	}
	outcome := func(id int64) (string, *time.Time, *string) {
		t.Helper()
		var (
			o   string
			at  *time.Time
			msg *string
		)
		if err := db.Pool.QueryRow(ctx, `SELECT outcome, finished_at, error FROM eco_job_runs WHERE run_id = $1`, id).Scan(&o, &at, &msg); err != nil {
			t.Fatal(err)
		}
		return o, at, msg
	}

	// Behind a live lease, a run skips and leaves the holder's record
	// running.
	if _, err := db.Pool.Exec(ctx, `UPDATE eco_job_locks SET locked_until = $1`, rollupNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if run := mustRun(t, job, rollup.Options{Holder: "b"}); !run.Skipped {
		t.Fatal("a run behind a live lease did not skip")
	}
	if o, _, _ := outcome(crashed); o != "running" {
		t.Fatalf("the live holder's run is %s after a skip; want running", o)
	}

	// The lease runs out: the next run closes the abandoned record.
	if _, err := db.Pool.Exec(ctx, `UPDATE eco_job_locks SET locked_until = $1`, rollupNow.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	run := mustRun(t, job, rollup.Options{Holder: "c"})
	if run.Skipped {
		t.Fatal("a run behind an expired lease skipped")
	}
	o, at, msg := outcome(crashed)
	if o != "failed" || at == nil || !at.Equal(rollupNow) || msg == nil || *msg == "" {
		t.Errorf("abandoned run: outcome %s, finished %v, error %v; want failed at %s with a reason", o, at, msg, rollupNow)
	}
	if o, _, _ := outcome(run.JobRunID); o != "succeeded" {
		t.Errorf("the run that took over: %s; want succeeded", o)
	}
}

func partitionExists(t *testing.T, db *postgres.DB, name string) bool {
	t.Helper()
	var ok bool
	if err := db.Pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestRollup_Retention(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2031, 6, 15, 12, 0, 0, 0, time.UTC) // cutoff with 90 days: 2031-03-17
	db := newRollupDB(t, now)
	s := postgres.NewRollupStore(db)
	job := newJob(t, s, now)
	if _, err := s.EnsurePartitions(ctx, day("2031-01-01"), 3); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(5, 5)

	// January: a recorded (dirty) day. February: raw rows loaded without
	// dirty marks, never aggregated. March 2031 reaches past the cutoff and
	// is kept whatever happens.
	jan := []usage.Event{g.event(day("2031-01-10"), 24*time.Hour), g.event(day("2031-01-10"), 24*time.Hour)}
	recordEvents(t, db, jan)
	feb := []usage.Event{g.event(day("2031-02-20"), 24*time.Hour)}
	recordEvents(t, db, feb)
	if _, err := db.Pool.Exec(ctx, `DELETE FROM eco_usage_dirty_user_days WHERE day = '2031-02-20'`); err != nil {
		t.Fatal(err)
	}
	mar := []usage.Event{g.event(day("2031-03-02"), 24*time.Hour)}
	recordEvents(t, db, mar)

	// The retention checks alone: January holds a dirty day, February a
	// day never aggregated (which the check marks dirty for the next run);
	// neither may be dropped.
	for _, name := range []string{"eco_api_usage_p203101", "eco_api_usage_p203102"} {
		p := partition(t, s, name)
		if blocked, err := s.RetentionBlocked(ctx, p); err != nil || !blocked {
			t.Errorf("RetentionBlocked(%s) = %v, %v; want blocked", name, blocked, err)
		}
		if dropped, err := s.DropPartition(ctx, p); err != nil || dropped {
			t.Errorf("DropPartition(%s) = %v, %v; want kept: a day in it is dirty", name, dropped, err)
		}
	}
	if !partitionExists(t, db, "eco_api_usage_p203101") || !partitionExists(t, db, "eco_api_usage_p203102") {
		t.Fatal("a partition with unaggregated days is gone")
	}
	if diff := cmp.Diff(days("2031-01-10", "2031-02-20", "2031-03-02"), dirtyDays(t, db)); diff != "" {
		t.Errorf("dirty days (-want +got):\n%s", diff)
	}

	// A full run aggregates those days first, then drops January and
	// February; the rollups stay.
	run := mustRun(t, job, rollup.Options{})
	if !slices.Contains(run.PartitionsDropped, "eco_api_usage_p203101") || !slices.Contains(run.PartitionsDropped, "eco_api_usage_p203102") {
		t.Errorf("dropped %v; want January and February 2031", run.PartitionsDropped)
	}
	if partitionExists(t, db, "eco_api_usage_p203101") || !partitionExists(t, db, "eco_api_usage_p203103") {
		t.Error("wrong partitions dropped")
	}
	all := slices.Concat(jan, feb, mar)
	checkRollup(t, db, all)

	// A backfill cannot reach days whose raw rows are gone: their rollup
	// would be emptied.
	_, err := job.RunRollup(ctx, rollup.Options{Backfill: &usage.DayRange{From: day("2031-01-05"), To: day("2031-01-12")}})
	if usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("backfill over dropped days: %v; want %s", err, usage.CodeInvalid)
	}
	checkRollup(t, db, all)
	// And the partitions ahead exist: the current month and two more.
	for _, p := range []string{"eco_api_usage_p203106", "eco_api_usage_p203107", "eco_api_usage_p203108"} {
		if !partitionExists(t, db, p) {
			t.Errorf("partition %s missing", p)
		}
	}
}

func TestRollup_RetentionWaitsForDirtyDay(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2031, 6, 15, 12, 0, 0, 0, time.UTC)
	db := newRollupDB(t, now)
	s := postgres.NewRollupStore(db)
	job := newJob(t, s, now)
	if _, err := s.EnsurePartitions(ctx, day("2031-01-01"), 1); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(6, 3)
	ev := []usage.Event{g.event(day("2031-01-20"), 24*time.Hour)}
	recordEvents(t, db, ev)
	mustRun(t, job, rollup.Options{}) // aggregated, and January dropped
	if partitionExists(t, db, "eco_api_usage_p203101") {
		t.Fatal("January kept although aggregated and clean")
	}

	// A dropped month stays dropped: recreating it would let a late event
	// recompute its days from that event alone.
	if n, err := s.EnsurePartitions(ctx, day("2031-01-01"), 1); err != nil || n != 0 || partitionExists(t, db, "eco_api_usage_p203101") {
		t.Fatalf("EnsurePartitions(January) after its drop = %d, %v; want nothing created", n, err)
	}

	// Again, in February, with the day aggregated but dirtied afterwards.
	if _, err := s.EnsurePartitions(ctx, day("2031-02-01"), 1); err != nil {
		t.Fatal(err)
	}
	ev2 := []usage.Event{g.event(day("2031-02-20"), 24*time.Hour)}
	recordEvents(t, db, ev2)
	if _, err := recompute(t, s, day("2031-02-20")); err != nil {
		t.Fatal(err)
	}
	late := []usage.Event{g.event(day("2031-02-20"), 24*time.Hour)}
	recordEvents(t, db, late) // dirty again
	feb := partition(t, s, "eco_api_usage_p203102")
	if blocked, err := s.RetentionBlocked(ctx, feb); err != nil || !blocked {
		t.Fatalf("RetentionBlocked(February) = %v, %v; want blocked", blocked, err)
	}
	if dropped, err := s.DropPartition(ctx, feb); err != nil || dropped {
		t.Fatalf("DropPartition(February) = %v, %v; want kept", dropped, err)
	}
	mustRun(t, job, rollup.Options{})
	if partitionExists(t, db, "eco_api_usage_p203102") {
		t.Fatal("February kept after its dirty day was aggregated")
	}
	// The rollups outlive their raw months.
	checkRollup(t, db, slices.Concat(ev, ev2, late))
}

func TestRollup_Backfill(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	job := newJob(t, s, rollupNow)
	g := newEventGen(7, 10)
	var all []usage.Event
	for i := 0; i < 500; i++ {
		all = append(all, g.event(rollupNow.AddDate(0, 0, -6), 5*24*time.Hour))
	}
	// Loaded behind the record path's back: no dirty marks.
	recordEvents(t, db, all)
	if _, err := db.Pool.Exec(ctx, `DELETE FROM eco_usage_dirty_user_days`); err != nil {
		t.Fatal(err)
	}
	if run := mustRun(t, job, rollup.Options{}); len(run.Days) != 0 {
		t.Fatalf("a run without dirty days recomputed %v", run.Days)
	}
	r := usage.DayRange{From: usage.Day(rollupNow).AddDate(0, 0, -7), To: usage.Day(rollupNow)}
	run := mustRun(t, job, rollup.Options{Backfill: &r})
	if diff := cmp.Diff(r.Days(), run.Days); diff != "" {
		t.Errorf("backfilled days (-want +got):\n%s", diff)
	}
	checkRollup(t, db, all)

	bad := usage.DayRange{From: r.To, To: r.From}
	if _, err := job.RunRollup(ctx, rollup.Options{Backfill: &bad}); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("reversed range: %v; want %s", err, usage.CodeInvalid)
	}
}

func TestAggregateDailyUsage_Idempotent(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	g := newEventGen(8, 10)
	d := usage.Day(rollupNow).AddDate(0, 0, -1)
	var all []usage.Event
	for i := 0; i < 1000; i++ {
		all = append(all, g.event(d, 24*time.Hour))
	}
	recordEvents(t, db, all)
	var first int64
	for i := 0; i < 2; i++ {
		n, err := recompute(t, s, d)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = n
		} else if n != 0 {
			t.Errorf("second recompute rewrote %d rows (first wrote %d); want 0: nothing changed", n, first)
		}
		checkRollup(t, db, all)
	}
	// Groups whose raw rows are gone leave the rollup; the rest stay.
	gone := all[0].UserID
	if _, err := db.Pool.Exec(ctx, `DELETE FROM eco_api_usage WHERE user_id = $1`, gone); err != nil {
		t.Fatal(err)
	}
	var kept []usage.Event
	for _, e := range all {
		if e.UserID != gone {
			kept = append(kept, e)
		}
	}
	if _, err := recompute(t, s, d); err != nil {
		t.Fatal(err)
	}
	checkRollup(t, db, kept)
	// A day whose partition does not exist is refused.
	if _, err := recompute(t, s, day("2001-01-01")); err == nil {
		t.Error("recompute of a day without a raw partition succeeded")
	}
}

// TestRollup_UpkeepDefersToBusyRecordPath: partition DDL needs the raw
// table's lock; behind a long record transaction the run gives up on it
// after the lock timeout (instead of queueing every later insert behind
// itself), still recomputes the dirty days, and the next run does the
// upkeep.
func TestRollup_UpkeepDefersToBusyRecordPath(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	db.Now = func() time.Time { return rollupNow }
	s := postgres.NewRollupStore(db)
	s.LockTimeout = 300 * time.Millisecond // the wait this test makes twice a run
	job := newJob(t, s, rollupNow)
	if _, err := s.EnsurePartitions(ctx, day("2031-03-01"), 1); err != nil { // April and May missing
		t.Fatal(err)
	}
	g := newEventGen(9, 3)
	ev := []usage.Event{g.event(day("2031-03-10"), 24*time.Hour)}
	recordEvents(t, db, ev)

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	busy := g.event(day("2031-03-11"), 24*time.Hour)
	recordTx(t, tx, usage.KeyGeneration(db.Now()), []usage.Event{busy})

	run := mustRun(t, job, rollup.Options{})
	if !slices.Contains(run.Deferred, "partitions: lock timeout") {
		t.Errorf("deferred = %v; want the partition upkeep", run.Deferred)
	}
	if diff := cmp.Diff(days("2031-03-10"), run.Days); diff != "" {
		t.Errorf("recomputed (-want +got):\n%s", diff)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	run = mustRun(t, job, rollup.Options{})
	if len(run.Deferred) != 0 || run.PartitionsCreated != 2 {
		t.Errorf("second run: deferred %v, created %d; want none deferred, 2 created", run.Deferred, run.PartitionsCreated)
	}
	checkRollup(t, db, append(ev, busy))
}

// TestRollup_BackfillRefusesDaysWithoutRawPartition: the admin route's
// backfill (QueueAggregation) and the store's MarkDirty refuse days whose
// raw partition is gone, as the job's backfill does, and they decide it
// under the raw table's lock: a partition dropped by a run at the same time
// is either seen gone (refused) or kept by the marks (the drop sees them).
// Marks of such days were answered as queued, and the next run could only
// clear them.
func TestRollup_BackfillRefusesDaysWithoutRawPartition(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2031, 6, 15, 12, 0, 0, 0, time.UTC)
	db := newRollupDB(t, now) // partitions from March 2031
	s := postgres.NewRollupStore(db)
	a := postgres.NewAnalyticsStore(db)
	if _, err := s.EnsurePartitions(ctx, day("2031-01-01"), 1); err != nil {
		t.Fatal(err)
	}
	g := newEventGen(8, 3)
	ev := []usage.Event{g.event(day("2031-01-20"), 24*time.Hour)}
	recordEvents(t, db, ev)
	mustRun(t, newJob(t, s, now), rollup.Options{}) // aggregated, and January dropped
	if partitionExists(t, db, "eco_api_usage_p203101") {
		t.Fatal("January kept although aggregated and clean")
	}

	refused := func(what string, err error) {
		t.Helper()
		if usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != "from" {
			t.Errorf("%s: %v; want %s on from", what, err, usage.CodeInvalid)
		}
		if diff := cmp.Diff([]time.Time{}, dirtyDays(t, db)); diff != "" {
			t.Errorf("%s: dirty days (-want +got):\n%s", what, diff)
		}
	}
	_, err := a.QueueAggregation(ctx, usage.DayRange{From: day("2031-01-30"), To: day("2031-03-02")})
	refused("QueueAggregation over a dropped month", err)
	_, err = a.QueueAggregation(ctx, usage.DayRange{From: day("2031-02-10"), To: day("2031-02-11")})
	refused("QueueAggregation of a month never kept", err)
	refused("MarkDirty of a dropped month", s.MarkDirty(ctx, days("2031-01-20")))
	checkRollup(t, db, ev)

	// Days whose partitions are kept are queued.
	if n, err := a.QueueAggregation(ctx, usage.DayRange{From: day("2031-03-30"), To: day("2031-04-01")}); err != nil || n != 3 {
		t.Fatalf("QueueAggregation of kept days = %d, %v; want 3", n, err)
	}
	if _, err := db.Pool.Exec(ctx, `DELETE FROM eco_usage_dirty_days`); err != nil {
		t.Fatal(err)
	}

	// A drop of March in progress (locked, not committed): the queueing
	// waits for it and then refuses, rather than marking days of a
	// partition about to go.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE eco_api_usage IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DROP TABLE eco_api_usage_p203103`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.QueueAggregation(ctx, usage.DayRange{From: day("2031-03-05"), To: day("2031-03-06")})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("QueueAggregation during a drop returned %v before the drop committed", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	refused("QueueAggregation during the drop", <-done)
}
