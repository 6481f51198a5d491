package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// TestUserRoutesReadTheCaller: the user routes read the caller's own id,
// whatever the query says, and the range the query asks for (the last 30
// days by default).
func TestUserRoutesReadTheCaller(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var users []string
	var ranges []usage.DayRange
	f.usage.UsageSummaryFn = func(ctx context.Context, userID string, now time.Time) (*report.UsageSummary, error) {
		users = append(users, userID)
		return cannedUsage().UsageSummaryFn(ctx, userID, now)
	}
	daily := f.usage.DailyUsageFn
	f.usage.DailyUsageFn = func(ctx context.Context, userID string, r usage.DayRange, now time.Time) ([]report.DailyUsage, error) {
		users, ranges = append(users, userID), append(ranges, r)
		return daily(ctx, userID, r, now)
	}
	jwt, key := token(t, alice, false), "ApiKey "+f.aliceKey
	for _, target := range []string{"/v1/usage?user_id=" + bob, "/v1/usage/daily?user_id=" + bob, "/v1/usage/daily?from=2026-03-12&to=2026-03-15"} {
		for _, authz := range []string{jwt, key} {
			wantStatus(t, f.get(t, target, authz), 200)
		}
	}
	for _, u := range users {
		if u != alice {
			t.Fatalf("the store was asked for %s; want only alice", u)
		}
	}
	last30 := usage.DayRange{From: time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC), To: usage.Day(testNow)}
	asked := usage.DayRange{From: time.Date(2026, 3, 12, 0, 0, 0, 0, time.UTC), To: usage.Day(testNow)}
	if d := cmp.Diff([]usage.DayRange{last30, last30, asked, asked}, ranges); d != "" {
		t.Errorf("ranges (-want +got):\n%s", d)
	}
	got := decode[struct {
		From, To string
		Days     []struct {
			Day  string
			Live bool
		}
	}](t, f.get(t, "/v1/usage/daily?from=2026-03-14&to=2026-03-15", jwt))
	if got.From != "2026-03-14" || got.To != "2026-03-15" || len(got.Days) != 2 || got.Days[0].Day != "2026-03-14" || !got.Days[1].Live {
		t.Errorf("daily = %+v", got)
	}
}

// TestBreakdownPaging: a page reads one row more than its limit to know
// whether another follows, and the cursor it hands out comes back as the
// filter's position.
func TestBreakdownPaging(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var filters []report.BreakdownFilter
	endpoints := f.usage.EndpointBreakdownFn
	f.usage.EndpointBreakdownFn = func(ctx context.Context, bf report.BreakdownFilter) ([]report.Breakdown, error) {
		filters = append(filters, bf)
		return endpoints(ctx, bf)
	}
	type row struct {
		Endpoint string `json:"endpoint"`
		Calls    int64  `json:"calls"`
	}
	authz := token(t, alice, false)
	p1 := decode[pageOf[row]](t, f.get(t, "/v1/usage/endpoints?from=2026-03-01&to=2026-03-14&limit=1", authz))
	if len(p1.Items) != 1 || p1.Items[0].Endpoint != "GET /v1/a" || p1.NextCursor == "" {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2 := decode[pageOf[row]](t, f.get(t, "/v1/usage/endpoints?from=2026-03-01&to=2026-03-14&limit=5&cursor="+p1.NextCursor, authz))
	if p2.NextCursor != "" {
		t.Errorf("page 2 = %+v; want no next cursor", p2)
	}
	want := []report.BreakdownFilter{
		{UserID: alice, Range: usage.DayRange{From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)}, Limit: 2},
		{UserID: alice, Range: usage.DayRange{From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)}, Limit: 6,
			After: &report.BreakdownCursor{Calls: 140, Key: "GET /v1/a"}},
	}
	if d := cmp.Diff(want, filters); d != "" {
		t.Errorf("filters (-want +got):\n%s", d)
	}

	// Keys: calls without a key have no api_key_id.
	type key struct {
		KeyID  *string `json:"api_key_id"`
		Prefix *string `json:"key_prefix"`
		Calls  int64   `json:"calls"`
	}
	keys := decode[pageOf[key]](t, f.get(t, "/v1/usage/keys", authz))
	if len(keys.Items) != 2 || keys.Items[0].KeyID == nil || *keys.Items[0].KeyID != f.keyID || keys.Items[1].KeyID != nil || keys.Items[1].Prefix != nil {
		t.Errorf("keys = %+v", keys)
	}
}

func TestExport(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	wantCSV := "day,calls,errors_4xx,errors_5xx,request_bytes,response_bytes,p95_latency_ms,live\n" +
		"2026-03-14,15,1,1,150,1500,200,false\n" +
		"2026-03-15,7,0,1,70,700,,true\n"
	authz := token(t, alice, false)
	for _, tt := range []struct {
		name, query string
		headers     map[string]string
		csv         bool
	}{
		{"accept", "", map[string]string{"Accept": "application/json;q=0.5, text/csv"}, true},
		{"format", "&format=csv", nil, true},
		{"format wins", "&format=json", map[string]string{"Accept": "text/csv"}, false},
		{"default", "", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Authorization": authz}
			for k, v := range tt.headers {
				h[k] = v
			}
			resp := f.do(t, request("GET", "/v1/usage/export?from=2026-03-14&to=2026-03-15"+tt.query, h, ""))
			wantStatus(t, resp, 200)
			ct := resp.Headers["Content-Type"]
			if tt.csv != strings.HasPrefix(ct, "text/csv") {
				t.Fatalf("Content-Type = %q; want csv %v", ct, tt.csv)
			}
			if tt.csv && (resp.Body != wantCSV || resp.Headers["Content-Disposition"] != `attachment; filename="usage-2026-03-14-2026-03-15.csv"`) {
				t.Errorf("CSV = %q (%s); want %q", resp.Body, resp.Headers["Content-Disposition"], wantCSV)
			}
		})
	}
}

// TestBreakdownCursorKeepsItsRange: a breakdown's cursor continues the
// list of the range it was handed out for. Asked with another range, the
// one the query names or the default range after midnight UTC moved it,
// it is refused naming the cursor: going on would show a page of another
// list (rows skipped or shown twice) as if it were the next.
func TestBreakdownCursorKeepsItsRange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Date(2026, 3, 15, 23, 59, 0, 0, time.UTC)
	f.h.Now = func() time.Time { return now }
	var after []*report.BreakdownCursor
	endpoints := f.usage.EndpointBreakdownFn
	f.usage.EndpointBreakdownFn = func(ctx context.Context, bf report.BreakdownFilter) ([]report.Breakdown, error) {
		after = append(after, bf.After)
		return endpoints(ctx, bf)
	}
	authz := "ApiKey " + f.aliceKey
	p1 := decode[pageOf[struct{}]](t, f.get(t, "/v1/usage/endpoints?limit=1", authz))
	if p1.NextCursor == "" {
		t.Fatalf("page 1 = %+v; want a next cursor", p1)
	}
	// The same list, by the default range or named: the next page.
	wantStatus(t, f.get(t, "/v1/usage/endpoints?limit=1&cursor="+p1.NextCursor, authz), 200)
	wantStatus(t, f.get(t, "/v1/usage/endpoints?from=2026-02-14&to=2026-03-15&limit=5&cursor="+p1.NextCursor, authz), 200)
	wantStatus(t, f.get(t, "/v1/admin/users/"+alice+"/endpoints?limit=1&cursor="+p1.NextCursor, token(t, operator, true)), 200)
	// (The admin's view of the page is the user's, from the cache.)
	if len(after) != 3 || after[0] != nil || after[1] == nil || after[2] == nil {
		t.Fatalf("cursors given to the store %v; want none, then two", after)
	}
	for _, tt := range []struct {
		name, query string
		at          time.Time
	}{
		{"the default range, after midnight", "limit=1", now.Add(2 * time.Minute)},
		{"another from", "from=2026-02-15&to=2026-03-15&limit=1", now},
		{"another to", "from=2026-02-14&to=2026-03-14&limit=1", now},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now = tt.at
			resp := f.get(t, "/v1/usage/endpoints?"+tt.query+"&cursor="+p1.NextCursor, authz)
			if p := decode[problem](t, resp); resp.StatusCode != 400 || p.Param != "cursor" || !strings.Contains(p.Detail, "from 2026-02-14 to 2026-03-15") {
				t.Errorf("%s: %d %s; want 400 naming cursor and its range", tt.query, resp.StatusCode, resp.Body)
			}
		})
	}
	// A cursor whose range is not two days was never one of these.
	forged := httpapi.EncodeCursor(map[string]any{"c": 140, "k": "GET /v1/a", "f": "2026-02-14", "t": "any text"})
	resp := f.get(t, "/v1/usage/endpoints?cursor="+forged, authz)
	if p := decode[problem](t, resp); resp.StatusCode != 400 || p.Param != "cursor" || strings.Contains(p.Detail, "any text") {
		t.Errorf("a forged cursor: %d %s; want 400 naming cursor, without its text", resp.StatusCode, resp.Body)
	}
	if len(after) != 3 {
		t.Errorf("%d breakdowns read; want none for a cursor of another range", len(after)-3)
	}
}
