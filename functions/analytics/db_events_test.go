package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/usage"
)

// TestDBEventsAtHardQuota: with the real limiter over PostgreSQL, a user
// at its hard quota is refused its next call by POST /v1/limits/check, but
// the report of a call already served is accepted by POST /v1/events (it
// costs the rate limit, not the quota): otherwise the last calls before
// the quota would go unrecorded, and free.
func TestDBEventsAtHardQuota(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	// bob is on free (1,000 calls, hard): 3 so far, 1,000 more counted.
	if _, err := f.db.Pool.Exec(context.Background(), `INSERT INTO eco_usage_counters
		(user_id, day, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, updated_at)
		VALUES ('`+bob+`', '2026-03-14', 1000, 0, 0, 0, 0, '2026-03-14T10:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	var published []usage.Event
	f.h.Publisher = &mock.Publisher{SendFn: func(_ context.Context, events []usage.Event) []error {
		published = append(published, events...)
		return make([]error, len(events))
	}}
	f.h.Limits = limits.NewLimiter(postgres.NewRateStore(f.db), limits.LimiterOptions{Now: func() time.Time { return testNow }})
	key := map[string]string{"X-Api-Key": f.bobKey}

	resp := f.do(t, request("POST", "/v1/limits/check", key, `{"cost":1}`))
	wantStatus(t, resp, 200)
	var d struct {
		Allowed bool    `json:"allowed"`
		Reason  *string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &d); err != nil || d.Allowed || d.Reason == nil || *d.Reason != usage.CodeQuotaExceeded {
		t.Fatalf("limits/check at the quota = %s; want quota_exceeded", resp.Body)
	}

	resp = f.do(t, request("POST", "/v1/events", key, `{"events":[`+event("30000000-0000-4000-8000-0000000000b1", 200, "")+`]}`))
	wantStatus(t, resp, 202)
	if len(published) != 1 || published[0].UserID != bob {
		t.Fatalf("published %+v; want bob's one event", published)
	}
	// The rate limit only: the quota is not what this route decided, and a
	// quota part read from nothing would tell a user at its quota that all
	// of it is left.
	if rl := resp.Headers["RateLimit"]; !strings.HasPrefix(rl, `"burst";`) || strings.Contains(rl, "quota") {
		t.Errorf("202's RateLimit = %q; want the burst alone", rl)
	}
}
