package rolluptest_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/rollup/rolluptest"
	"github.com/nexus/usage/shared/usage"
)

func TestPercentile(t *testing.T) {
	// Expected values are PostgreSQL's percentile_disc over the same sets.
	tests := []struct {
		name   string
		sorted []int64
		p      float64
		want   int64
	}{
		{"empty", nil, 0.5, 0},
		{"one", []int64{7}, 0.95, 7},
		{"median of two is the lower", []int64{1, 9}, 0.5, 1},
		{"median of three", []int64{1, 5, 9}, 0.5, 5},
		{"median of four", []int64{1, 2, 3, 4}, 0.5, 2},
		{"p95 of 20 is the 19th", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 0.95, 19},
		{"p95 of 21 is the 20th", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}, 0.95, 20},
		{"p95 of 10 is the max", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.95, 10},
		{"ties", []int64{3, 3, 3, 8}, 0.5, 3},
		{"p0", []int64{4, 5}, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rolluptest.Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %d; want %d", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestRollupEvents(t *testing.T) {
	const u1, u2, k = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-9000-000000000001"
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	ev := func(user, key, endpoint string, status int, lat, qty int64, when string) usage.Event {
		return usage.Event{UserID: user, APIKeyID: key, Endpoint: endpoint, StatusCode: status, LatencyMS: lat,
			RequestBytes: 10, ResponseBytes: 100, Quantity: qty, OccurredAt: at(when)}
	}
	events := []usage.Event{
		ev(u1, "", "GET /a", 200, 10, 1, "2031-03-01T00:00:00Z"),
		ev(u1, "", "GET /a", 404, 20, 3, "2031-03-01T23:59:59Z"),
		ev(u1, "", "GET /a", 503, 30, 0, "2031-03-01T12:00:00+05:00"), // 07:00 UTC, quantity 0 reads as 1
		ev(u1, k, "GET /a", 200, 5, 1, "2031-03-01T10:00:00Z"),        // another key: another row
		ev(u2, "", "GET /a", 200, 5, 1, "2031-03-02T00:00:00Z"),       // next UTC day
		ev(u1, "", "GET /a", 500, 40, 2, "2031-03-01T20:00:00-05:00"), // 01:00 UTC on the 2nd
	}
	d1, d2 := time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2031, 3, 2, 0, 0, 0, 0, time.UTC)
	want := []rollup.DailyRollup{
		{Day: d1, UserID: u1, Endpoint: "GET /a", Calls: 5, Errors4xx: 3, Errors5xx: 1, RequestBytes: 30, ResponseBytes: 300,
			LatencySumMS: 60, LatencyP50MS: 20, LatencyP95MS: 30, LatencyMaxMS: 30, Events: 3},
		{Day: d1, UserID: u1, Endpoint: "GET /a", APIKeyID: k, Calls: 1, RequestBytes: 10, ResponseBytes: 100,
			LatencySumMS: 5, LatencyP50MS: 5, LatencyP95MS: 5, LatencyMaxMS: 5, Events: 1},
		{Day: d2, UserID: u1, Endpoint: "GET /a", Calls: 2, Errors5xx: 2, RequestBytes: 10, ResponseBytes: 100,
			LatencySumMS: 40, LatencyP50MS: 40, LatencyP95MS: 40, LatencyMaxMS: 40, Events: 1},
		{Day: d2, UserID: u2, Endpoint: "GET /a", Calls: 1, RequestBytes: 10, ResponseBytes: 100,
			LatencySumMS: 5, LatencyP50MS: 5, LatencyP95MS: 5, LatencyMaxMS: 5, Events: 1},
	}
	if diff := cmp.Diff(want, rolluptest.Rollup(events, rollup.DefaultMaxEndpointsPerDay)); diff != "" {
		t.Errorf("RollupEvents (-want +got):\n%s", diff)
	}
}
