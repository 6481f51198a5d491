package rolluptest_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/rollup/rolluptest"
	"github.com/nexus/usage/shared/usage"
)

// TestRollupEventsEndpointCap: a user's day beyond maxEndpoints distinct
// endpoints keeps its most called ones by name and the rest under
// rollup.OtherEndpoint, one row per API key, with every total unchanged;
// other users and days are untouched.
func TestRollupEventsEndpointCap(t *testing.T) {
	const u1, u2, k = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-9000-000000000001"
	d1 := time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC)
	ev := func(user, key, endpoint string, status int, lat, qty int64, day time.Time) usage.Event {
		return usage.Event{UserID: user, APIKeyID: key, Endpoint: endpoint, StatusCode: status, LatencyMS: lat,
			RequestBytes: 10, ResponseBytes: 100, Quantity: qty, OccurredAt: day.Add(time.Hour)}
	}
	events := []usage.Event{
		// u1 on d1: five endpoints, a cap of 2. /a has 6 calls, /b 4
		// (over two keys), /c and /d tie at 2 (byte order keeps /c's rank
		// ahead of /d's, both folded), and an endpoint named (other) with
		// 9 calls ranks last: folded into the row it names.
		ev(u1, "", "GET /a", 200, 10, 6, d1),
		ev(u1, "", "GET /b", 200, 20, 3, d1),
		ev(u1, k, "GET /b", 200, 30, 1, d1),
		ev(u1, "", "GET /d", 500, 40, 2, d1),
		ev(u1, k, "GET /c", 404, 50, 2, d1),
		ev(u1, "", rollup.OtherEndpoint, 200, 60, 9, d1),
		// u1 the next day and u2: under the cap.
		ev(u1, "", "GET /x", 200, 1, 1, d1.AddDate(0, 0, 1)),
		ev(u1, "", "GET /y", 200, 1, 1, d1.AddDate(0, 0, 1)),
		ev(u2, "", "GET /p", 200, 1, 1, d1),
		ev(u2, "", "GET /q", 200, 1, 1, d1),
	}
	d2 := d1.AddDate(0, 0, 1)
	row := func(user, endpoint, key string, calls, e4, e5, lsum, p50, p95, mx, n int64, day time.Time) rollup.DailyRollup {
		return rollup.DailyRollup{Day: day, UserID: user, Endpoint: endpoint, APIKeyID: key, Calls: calls, Errors4xx: e4, Errors5xx: e5,
			RequestBytes: 10 * n, ResponseBytes: 100 * n, LatencySumMS: lsum, LatencyP50MS: p50, LatencyP95MS: p95, LatencyMaxMS: mx, Events: n}
	}
	want := []rollup.DailyRollup{
		row(u1, "(other)", "", 11, 0, 2, 100, 40, 60, 60, 2, d1),
		row(u1, "(other)", k, 2, 2, 0, 50, 50, 50, 50, 1, d1),
		row(u1, "GET /a", "", 6, 0, 0, 10, 10, 10, 10, 1, d1),
		row(u1, "GET /b", "", 3, 0, 0, 20, 20, 20, 20, 1, d1),
		row(u1, "GET /b", k, 1, 0, 0, 30, 30, 30, 30, 1, d1),
		row(u2, "GET /p", "", 1, 0, 0, 1, 1, 1, 1, 1, d1),
		row(u2, "GET /q", "", 1, 0, 0, 1, 1, 1, 1, 1, d1),
		row(u1, "GET /x", "", 1, 0, 0, 1, 1, 1, 1, 1, d2),
		row(u1, "GET /y", "", 1, 0, 0, 1, 1, 1, 1, 1, d2),
	}
	rolluptest.Sort(want)
	got := rolluptest.Rollup(events, 2)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rolluptest.Rollup(events, 2) (-want +got):\n%s", diff)
	}
	if a, b := totals(got), totals(rolluptest.Rollup(events, 0)); a != b {
		t.Errorf("totals under the cap %+v; without it %+v", a, b)
	}
	// Without a cap, or with one the day does not reach, every endpoint is
	// kept by name.
	for _, max := range []int{0, 6} {
		for _, r := range rolluptest.Rollup(events, max) {
			if r.Endpoint == rollup.OtherEndpoint && r.Calls != 9 {
				t.Errorf("rolluptest.Rollup(events, %d) folded: %+v", max, r)
			}
		}
	}
}

type rollupTotals struct{ calls, e4, e5, rq, rs, lat, events int64 }

func totals(rows []rollup.DailyRollup) rollupTotals {
	var t rollupTotals
	for _, r := range rows {
		t.calls += r.Calls
		t.e4 += r.Errors4xx
		t.e5 += r.Errors5xx
		t.rq += r.RequestBytes
		t.rs += r.ResponseBytes
		t.lat += r.LatencySumMS
		t.events += r.Events
	}
	return t
}
