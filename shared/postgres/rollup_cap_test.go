package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/rollup/rolluptest"
	"github.com/nexus/usage/shared/usage"
)

// TestRollup_EndpointCap: aggregate_daily_usage keeps a user's day to its
// maxEndpoints most called endpoints by name and the rest under
// rollup.OtherEndpoint, exactly as rolluptest.Rollup defines it (the
// percentiles of (other) from its raw events), with the calls and every
// other total per user and day unchanged and the summaries in step. The
// recompute stays idempotent, is the same split into parts, and rows that
// a new cap folds (or unfolds) are replaced, not left behind.
func TestRollup_EndpointCap(t *testing.T) {
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	d := usage.Day(rollupNow.AddDate(0, 0, -3))
	g := newEventGen(14, 6)

	// Six users; the first two call 60 distinct endpoints that day, one of
	// them named (other), the others the six of testEndpoints.
	var all []usage.Event
	for i := 0; i < 3000; i++ {
		e := g.event(d, 24*time.Hour)
		switch e.UserID {
		case g.users[0], g.users[1]:
			n := g.r.IntN(60)
			e.Endpoint = fmt.Sprintf("GET /v1/things/%02d", n*n%61) // uneven calls per endpoint
			if n == 59 {
				e.Endpoint = rollup.OtherEndpoint
			}
		}
		all = append(all, e)
	}
	recordEvents(t, db, all)

	ctx := context.Background()
	recomputeCap := func(max, parts int) int64 {
		t.Helper()
		var written int64
		for part := range parts {
			n, _, err := s.RecomputeDay(ctx, rollup.DirtyDay{Day: d}, part, parts, max, false)
			if err != nil {
				t.Fatalf("RecomputeDay(cap %d, part %d of %d): %v", max, part, parts, err)
			}
			written += n
		}
		return written
	}
	check := func(max int) {
		t.Helper()
		got := dailyUsage(t, db)
		if diff := cmp.Diff(rolluptest.Rollup(all, max), got); diff != "" {
			t.Fatalf("rollup under a cap of %d differs from rolluptest.Rollup (-want +got):\n%s", max, diff)
		}
		perUser := map[string]map[string]bool{}
		for _, r := range got {
			if perUser[r.UserID] == nil {
				perUser[r.UserID] = map[string]bool{}
			}
			perUser[r.UserID][r.Endpoint] = true
		}
		for u, eps := range perUser {
			named := len(eps)
			if eps[rollup.OtherEndpoint] {
				named--
			}
			if named > max {
				t.Errorf("user %s keeps %d endpoints by name; cap %d", u, named, max)
			}
		}
		if diff := cmp.Diff(rowTotals(rolluptest.Rollup(all, 0)), rowTotals(got), cmp.AllowUnexported(dayTotals{})); diff != "" {
			t.Errorf("totals per user and day under a cap of %d differ from those without a cap (-want +got):\n%s", max, diff)
		}
		// The users whose day is under the cap keep every row they have
		// without one.
		uncapped := rolluptest.Rollup(all, 0)
		endpoints := map[string]map[string]bool{}
		for _, r := range uncapped {
			k := r.Day.Format(time.DateOnly) + " " + r.UserID
			if endpoints[k] == nil {
				endpoints[k] = map[string]bool{}
			}
			endpoints[k][r.Endpoint] = true
		}
		under := func(rows []rollup.DailyRollup) []rollup.DailyRollup {
			return slices.DeleteFunc(slices.Clone(rows), func(r rollup.DailyRollup) bool {
				return len(endpoints[r.Day.Format(time.DateOnly)+" "+r.UserID]) > max
			})
		}
		if len(under(uncapped)) == 0 && max >= len(testEndpoints) {
			t.Fatalf("no user under a cap of %d", max)
		}
		if diff := cmp.Diff(under(uncapped), under(got)); diff != "" {
			t.Errorf("the users under a cap of %d lost rows (-uncapped +got):\n%s", max, diff)
		}
		checkSummaries(t, db)
	}

	// Uncapped first: 60 named endpoints for the first two users.
	recomputeCap(1000, 1)
	check(1000)
	if n := len(dailyUsage(t, db)); n < 100 {
		t.Fatalf("%d rollup rows; the test wants the first users' 60 endpoints", n)
	}
	// A cap of 10 folds the rest of their endpoints, and (other) joins the
	// row it names; the other users are under it.
	if n := recomputeCap(10, 1); n == 0 {
		t.Fatal("folding wrote no rows")
	}
	check(10)
	folded := 0
	for _, r := range dailyUsage(t, db) {
		if r.Endpoint == rollup.OtherEndpoint {
			folded++
		}
	}
	if folded == 0 {
		t.Fatal("no (other) row under a cap of 10")
	}
	// Idempotent, and the same when the day is split into parts.
	if n := recomputeCap(10, 1); n != 0 {
		t.Errorf("recomputing under the same cap wrote %d rows; want 0", n)
	}
	if n := recomputeCap(10, 3); n != 0 {
		t.Errorf("recomputing in 3 parts wrote %d rows; want 0", n)
	}
	check(10)
	// A late event of a folded endpoint lands in (other); a tighter cap
	// folds more; lifting it brings the names back and (other) keeps only
	// what is literally named so.
	late := g.event(d, 24*time.Hour)
	late.UserID, late.APIKeyID, late.Endpoint, late.Quantity = g.users[0], "", "GET /v1/things/unseen", 7
	recordEvents(t, db, []usage.Event{late})
	all = append(all, late)
	recomputeCap(10, 2)
	check(10)
	recomputeCap(3, 1)
	check(3)
	recomputeCap(1000, 1)
	check(1000)
}

type dayTotals struct{ calls, e4, e5, rq, rs, lat, events int64 }

func rowTotals(rows []rollup.DailyRollup) map[string]dayTotals {
	out := map[string]dayTotals{}
	for _, r := range rows {
		k := r.Day.Format(time.DateOnly) + " " + r.UserID
		t := out[k]
		t.calls += r.Calls
		t.e4 += r.Errors4xx
		t.e5 += r.Errors5xx
		t.rq += r.RequestBytes
		t.rs += r.ResponseBytes
		t.lat += r.LatencySumMS
		t.events += r.Events
		out[k] = t
	}
	return out
}

// TestRollup_EndpointCapRefused: a cap below 1 is not a cap.
func TestRollup_EndpointCapRefused(t *testing.T) {
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	for _, max := range []int{0, -1} {
		if _, _, err := s.RecomputeDay(context.Background(), rollup.DirtyDay{Day: usage.Day(rollupNow)}, 0, 1, max, false); err == nil {
			t.Errorf("RecomputeDay with a cap of %d: no error", max)
		}
	}
}

// TestRollup_DefaultEndpointCap: a day of one caller sending
// rollup.DefaultMaxEndpointsPerDay + 1 distinct endpoints, run by the job
// with its default options, keeps the default number by name and the least
// called one under (other); aggregate_daily_usage(day) called without a cap
// (as a client of its three-argument form would) applies the same default.
func TestRollup_DefaultEndpointCap(t *testing.T) {
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	d := usage.Day(rollupNow.AddDate(0, 0, -1))
	g := newEventGen(15, 2)
	var all []usage.Event
	for i := range rollup.DefaultMaxEndpointsPerDay + 1 {
		e := g.event(d, 24*time.Hour)
		e.UserID, e.APIKeyID, e.Quantity = g.users[0], "", 2
		e.Endpoint = fmt.Sprintf("GET /v1/items/%04d", i)
		if i == rollup.DefaultMaxEndpointsPerDay {
			e.Quantity = 1 // the least called: folded
		}
		all = append(all, e)
	}
	for range 5 { // the other user: under the cap
		e := g.event(d, 24*time.Hour)
		e.UserID = g.users[1]
		all = append(all, e)
	}
	recordEvents(t, db, all)
	mustRun(t, newJob(t, s, rollupNow), rollup.Options{})
	want := rolluptest.Rollup(all, rollup.DefaultMaxEndpointsPerDay)
	if diff := cmp.Diff(want, dailyUsage(t, db)); diff != "" {
		t.Fatalf("rollup differs from rolluptest.Rollup under the default cap (-want +got):\n%s", diff)
	}
	var named, other int
	for _, r := range want {
		switch {
		case r.UserID != g.users[0]:
		case r.Endpoint == rollup.OtherEndpoint:
			other++
		default:
			named++
		}
	}
	if named != rollup.DefaultMaxEndpointsPerDay || other != 1 {
		t.Fatalf("%d endpoints by name and %d (other) rows; want %d and 1", named, other, rollup.DefaultMaxEndpointsPerDay)
	}
	if _, err := db.Pool.Exec(ctx, `DELETE FROM eco_usage_daily`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `SELECT aggregate_daily_usage($1)`, d); err != nil {
		t.Fatalf("aggregate_daily_usage(day): %v", err)
	}
	if diff := cmp.Diff(want, dailyUsage(t, db)); diff != "" {
		t.Errorf("aggregate_daily_usage(day) differs from rolluptest.Rollup under rollup.DefaultMaxEndpointsPerDay (-want +got):\n%s", diff)
	}
	checkSummaries(t, db)
}

// TestRollup_EndpointCapSaturates: the (other) row saturates its sums of
// bytes at the bigint maximum as every other row does, and keeps
// its calls exact.
func TestRollup_EndpointCapSaturates(t *testing.T) {
	const maxBigint = 9223372036854775807
	ctx := context.Background()
	db := newRollupDB(t, rollupNow)
	s := postgres.NewRollupStore(db)
	user := newEventGen(16, 1).users[0]
	d := usage.Day(rollupNow).AddDate(0, 0, -3)
	for _, endpoint := range []string{"GET /a", "GET /a", "GET /b", "GET /c"} {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code, latency_ms,
			request_bytes, response_bytes, quantity, occurred_at) VALUES (gen_random_uuid(), $1, $2, 'GET', 200, 2147483647, $3, $3, 1000000, $4)`,
			user, endpoint, int64(maxBigint), d.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.RecomputeDay(ctx, rollup.DirtyDay{Day: d}, 0, 1, 1, false); err != nil {
		t.Fatalf("recompute under a cap of 1: %v", err)
	}
	var calls, rq, rs, lat, events int64
	if err := db.Pool.QueryRow(ctx, `SELECT calls, request_bytes, response_bytes, latency_sum_ms, events FROM eco_usage_daily
		WHERE user_id = $1 AND day = $2 AND endpoint = $3`, user, d, rollup.OtherEndpoint).Scan(&calls, &rq, &rs, &lat, &events); err != nil {
		t.Fatal(err)
	}
	if calls != 2_000_000 || rq != maxBigint || rs != maxBigint || lat != 2*2147483647 || events != 2 {
		t.Errorf("(other) = %d calls, %d, %d bytes, %d ms, %d events; want 2000000 calls, bytes saturated, latency summed, 2 events",
			calls, rq, rs, lat, events)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT calls, request_bytes FROM eco_usage_user_daily WHERE user_id = $1 AND day = $2`,
		user, d).Scan(&calls, &rq); err != nil {
		t.Fatal(err)
	}
	if calls != 4_000_000 || rq != maxBigint {
		t.Errorf("user's day = %d calls, %d bytes; want 4000000 calls, bytes saturated", calls, rq)
	}
}
