package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// eventsBody is a POST /v1/events body of n valid events.
func eventsBody(n int, extra string) string {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("40000000-0000-4000-8000-%012d", i), 200, extra)
	}
	return `{"events":[` + strings.Join(evs, ",") + `]}`
}

// TestPostEventsMetered: ingestion costs the caller's rate limit one call
// per event; a refusal is the middleware's 429 with the decision's headers
// and queues nothing.
func TestPostEventsMetered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	refused := usage.Decision{Reason: usage.CodeRateLimited, Limit: 10, RetryAfter: 1500 * time.Millisecond, RatePerSecond: 2,
		Quota: usage.QuotaStatus{Period: usage.Period{Start: testNow.AddDate(0, 0, -14), End: testNow.AddDate(0, 0, 16)}, Included: 1000}}
	f.limits.CheckRateFn = func(_ context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
		f.cost = cost
		return refused, nil
	}
	resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, eventsBody(7, "")))
	wantStatus(t, resp, http.StatusTooManyRequests)
	if f.cost != 7 {
		t.Errorf("the request cost %d; want 7, one per event", f.cost)
	}
	if len(f.published) != 0 {
		t.Errorf("a refused request queued %d events", len(f.published))
	}
	for _, h := range []string{"Retry-After", "RateLimit", "RateLimit-Policy", "X-RateLimit-Limit"} {
		if resp.Headers[h] == "" {
			t.Errorf("429 lacks %s: %v", h, resp.Headers)
		}
	}
	if !strings.Contains(resp.Body, "urn:nexus:problem:rate_limited") {
		t.Errorf("429 body %s is not the rate_limited problem", resp.Body)
	}
}

// TestPostEventsBeyondBurst: more events than the burst admits at once is
// a 400 naming events (waiting cannot help), not a 429.
func TestPostEventsBeyondBurst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.limits.CheckRateFn = func(context.Context, usage.Identity, int64) (usage.Decision, error) {
		return usage.Decision{}, usage.FieldErrorf("cost", "exceeds the burst of 10")
	}
	resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, eventsBody(11, "")))
	wantStatus(t, resp, http.StatusBadRequest)
	if !strings.Contains(resp.Body, `"param":"events"`) || !strings.Contains(resp.Body, "burst of 10") {
		t.Errorf("body %s; want a problem naming events and the burst", resp.Body)
	}
}

// TestPostEventsQuantityCap: an event above the quantity cap is rejected
// naming quantity; the others are queued.
func TestPostEventsQuantityCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.MaxEventQuantity = 500
	body := `{"events":[` + event("40000000-0000-4000-8000-000000000001", 200, `,"quantity":500`) + "," +
		event("40000000-0000-4000-8000-000000000002", 200, `,"quantity":501`) + `]}`
	resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, body))
	wantStatus(t, resp, http.StatusAccepted)
	got := decode[struct{ Results []eventResult }](t, resp)
	if len(got.Results) != 2 || got.Results[0].Status != "accepted" || got.Results[1].Param != "quantity" ||
		got.Results[1].Detail != "quantity: must be between 1 and 500" {
		t.Errorf("results %+v; want the first accepted, the second rejected naming quantity", got.Results)
	}
	if len(f.published) != 1 {
		t.Errorf("queued %d events; want 1", len(f.published))
	}
}

// TestPostEventsDefaultQuantityCap: without a setting the cap is
// DefaultMaxEventQuantity.
func TestPostEventsDefaultQuantityCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey},
		eventsBody(1, fmt.Sprintf(`,"quantity":%d`, DefaultMaxEventQuantity+1))))
	got := decode[struct{ Results []eventResult }](t, resp)
	if got.Results[0].Param != "quantity" {
		t.Errorf("quantity %d accepted; want refused by the default cap", DefaultMaxEventQuantity+1)
	}
}
