package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// TestReadBudgetCostsByRange: every read route takes from the caller's
// read budget, a unit per started 31 days of the range asked for; the
// routes the write path's rate limit meters take nothing from it.
func TestReadBudgetCostsByRange(t *testing.T) {
	tests := []struct {
		method, target string
		cost           int64 // 0: not budgeted
	}{
		{"GET", "/v1/usage", 1},
		{"GET", "/v1/usage/daily", 1},
		{"GET", "/v1/usage/endpoints?from=2025-03-15&to=2026-03-15", 12},
		{"GET", "/v1/usage/keys?from=2026-01-01", 3},
		{"GET", "/v1/usage/export?from=2026-02-13&to=2026-03-15", 1},
		{"GET", "/v1/usage/export?from=2026-02-12&to=2026-03-15", 2},
		{"GET", "/v1/usage/daily?from=not-a-day", 1},
		{"POST", "/v1/limits/check", 0},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			f := newFixture(t)
			f.do(t, request(tt.method, tt.target, map[string]string{"X-Api-Key": f.aliceKey}, ""))
			want := []int64{tt.cost}
			if tt.cost == 0 {
				want = nil
			}
			if !slices.Equal(f.readCosts, want) {
				t.Errorf("read budget taken %v; want %v", f.readCosts, want)
			}
		})
	}
	f := newFixture(t)
	f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, `{"events":[{"endpoint":"GET /x","method":"GET","status_code":200,"occurred_at":"2026-03-15T11:00:00Z"}]}`))
	f.get(t, "/v1/admin/top-users?from=2025-03-15&to=2026-03-15", token(t, operator, true))
	if !slices.Equal(f.readCosts, []int64{12}) {
		t.Errorf("POST /v1/events, then an admin's year-long report took %v; want [12] (the report alone)", f.readCosts)
	}
}

// TestReadBudgetRefusal: past the budget, a read is the write path's 429
// problem with its rate limit headers and Retry-After, and reads nothing.
func TestReadBudgetRefusal(t *testing.T) {
	f := newFixture(t)
	f.reads.TakeFn = func(context.Context, usage.Identity, int64) (usage.Decision, error) {
		return usage.Decision{Reason: usage.CodeRateLimited, Limit: 60, Reset: 29 * time.Second, RetryAfter: 2500 * time.Millisecond,
			RatePerSecond: 2}, nil
	}
	f.usage.EndpointBreakdownFn = func(context.Context, report.BreakdownFilter) ([]report.Breakdown, error) {
		t.Error("a refused read reached the store")
		return nil, nil
	}
	resp := f.get(t, "/v1/usage/endpoints?from=2025-03-15&to=2026-03-15", "ApiKey "+f.aliceKey)
	wantStatus(t, resp, http.StatusTooManyRequests)
	p := decode[problem](t, resp)
	want := map[string]string{"Retry-After": "3", "X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "29",
		"RateLimit-Policy": `"burst";q=60;w=30`, "RateLimit": `"burst";r=0;t=29`, "Content-Type": "application/problem+json"}
	for k, v := range want {
		if resp.Headers[k] != v {
			t.Errorf("%s = %q; want %q", k, resp.Headers[k], v)
		}
	}
	if p.Type != "urn:nexus:problem:rate_limited" || !strings.Contains(p.Detail, "read budget of 60") || !strings.Contains(p.Detail, "retry in 3 s") {
		t.Errorf("problem = %+v; want rate_limited about the read budget, retry in 3 s", p)
	}
}

// TestConditionalReads: a read's answer has an ETag; asking again with it
// answers 304 without a body; a range that ended before today may be kept
// a minute, anything else is revalidated.
func TestConditionalReads(t *testing.T) {
	f := newFixture(t)
	authz := map[string]string{"X-Api-Key": f.aliceKey}
	first := f.do(t, request("GET", "/v1/usage/daily", authz, ""))
	wantStatus(t, first, http.StatusOK)
	etag := first.Headers["ETag"]
	if etag == "" || first.Headers["Cache-Control"] != "private, no-cache" {
		t.Fatalf("headers %v; want an ETag and private, no-cache", first.Headers)
	}
	again := f.do(t, request("GET", "/v1/usage/daily", map[string]string{"X-Api-Key": f.aliceKey, "If-None-Match": `W/` + etag}, ""))
	if again.StatusCode != http.StatusNotModified || again.Body != "" || again.Headers["ETag"] != etag || again.Headers["X-RateLimit-Limit"] != "60" {
		t.Errorf("with If-None-Match: %d %v %q; want 304 with the ETag and the rate limit headers, no body", again.StatusCode, again.Headers, again.Body)
	}
	other := f.do(t, request("GET", "/v1/usage/daily", map[string]string{"X-Api-Key": f.aliceKey, "If-None-Match": `"other"`}, ""))
	wantStatus(t, other, http.StatusOK)
	past := f.do(t, request("GET", "/v1/usage/daily?from=2026-03-01&to=2026-03-14", authz, ""))
	if past.Headers["Cache-Control"] != "private, max-age=60" {
		t.Errorf("a range before today: Cache-Control %q; want private, max-age=60", past.Headers["Cache-Control"])
	}
	// An answer a client may keep is another caller's under other
	// credentials, and the export's another representation under another
	// Accept: a cache must not give it for a request that differs in them.
	csv := f.do(t, request("GET", "/v1/usage/export?from=2026-03-01&to=2026-03-14", map[string]string{"X-Api-Key": f.aliceKey, "Accept": "text/csv"}, ""))
	for name, resp := range map[string]events.APIGatewayV2HTTPResponse{"a read": first, "its 304": again, "a range before today": past, "the CSV export": csv} {
		if v := resp.Headers["Vary"]; v != "Authorization, X-Api-Key, Accept" {
			t.Errorf("%s: Vary %q; want Authorization, X-Api-Key, Accept", name, v)
		}
	}
}

// TestHandleStopsBeforeDeadline: the handler's work ends deadlineMargin
// before the invocation's deadline, so that a statement still running is
// cancelled on the server and the answer still goes out.
func TestHandleStopsBeforeDeadline(t *testing.T) {
	f := newFixture(t)
	deadline := time.Now().Add(10 * time.Second)
	var got time.Time
	f.usage.DailyUsageFn = func(ctx context.Context, _ string, _ usage.DayRange, _ time.Time) ([]report.DailyUsage, error) {
		got, _ = ctx.Deadline()
		return nil, nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	req := request("GET", "/v1/usage/daily", map[string]string{"X-Api-Key": f.aliceKey}, "")
	if _, err := f.h.Handle(ctx, req); err != nil {
		t.Fatal(err)
	}
	if want := deadline.Add(-deadlineMargin); !got.Equal(want) {
		t.Errorf("the store's deadline is %s; want %s, %s before the invocation's", got.Format(time.StampMilli), want.Format(time.StampMilli), deadlineMargin)
	}
}

// endpointLister is a notify.Manager that lists no webhook endpoints (its
// other methods are not called).
type endpointLister struct{ notify.Manager }

func (endpointLister) Endpoints(context.Context, notify.Owner, notify.EndpointFilter) ([]notify.Endpoint, error) {
	return []notify.Endpoint{}, nil
}

// TestCacheControlOfOtherLists: max-age=60 is for the breakdowns, and the
// ranges that end before today, which only the hourly rollup changes.
// The list of webhook endpoints, which its owner changes at will (PATCH,
// DELETE, rotate: none of them invalidates a cached GET of the list), is
// revalidated each time, though its path also ends in /endpoints; so is
// the current billing period of GET /v1/usage, which reads no range,
// whatever from and to the query adds.
func TestCacheControlOfOtherLists(t *testing.T) {
	f := newFixture(t)
	f.h.Notify = endpointLister{}
	for _, routes := range []map[string]bool{breakdownRoutes, rangeRoutes} {
		for route := range routes {
			if !slices.Contains(f.h.Routes(), route) {
				t.Errorf("%s kept a minute is not a route of the handler", route)
			}
		}
	}
	for _, tt := range []struct{ path, authz string }{
		{"/v1/webhooks/endpoints", token(t, alice, false)},
		{"/v1/admin/webhooks/endpoints", token(t, operator, true)},
		{"/v1/webhooks/endpoints?to=2026-03-01", token(t, alice, false)},
		{"/v1/usage?to=2026-03-01", token(t, alice, false)},
		{"/v1/admin/users/" + alice + "/usage?from=2026-02-01&to=2026-03-01", token(t, operator, true)},
	} {
		resp := f.get(t, tt.path, tt.authz)
		wantStatus(t, resp, http.StatusOK)
		if cc := resp.Headers["Cache-Control"]; cc != "private, no-cache" {
			t.Errorf("%s: Cache-Control %q; want private, no-cache", tt.path, cc)
		}
	}
	for _, path := range []string{"/v1/usage/endpoints", "/v1/usage/keys", "/v1/admin/users/" + alice + "/endpoints", "/v1/admin/users/" + alice + "/keys",
		"/v1/usage/daily?to=2026-03-14", "/v1/usage/export?to=2026-03-14", "/v1/admin/users/" + alice + "/daily?to=2026-03-14",
		"/v1/admin/summary?to=2026-03-14", "/v1/admin/top-users?to=2026-03-14"} {
		authz := token(t, alice, false)
		if strings.HasPrefix(path, "/v1/admin") {
			authz = token(t, operator, true)
		}
		if cc := f.get(t, path, authz).Headers["Cache-Control"]; cc != "private, max-age=60" {
			t.Errorf("%s: Cache-Control %q; want private, max-age=60", path, cc)
		}
	}
}
