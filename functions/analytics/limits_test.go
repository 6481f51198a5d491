package main

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

func TestLimitsCheck(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		d       usage.Decision
		allowed bool
		reason  any
	}{
		{"allowed", allowedDecision, true, nil},
		{"rate limited", rateLimitedDecision, false, "rate_limited"},
		{"quota exceeded", quotaExceededDecision, false, "quota_exceeded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.limits.CheckFn = func(_ context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
				f.checked, f.cost = append(f.checked, id), cost
				return tt.d, nil
			}
			resp := f.do(t, request("POST", "/v1/limits/check", map[string]string{"X-Api-Key": f.aliceKey}, `{"cost":3}`))
			wantStatus(t, resp, 200) // a refusal is an answer, not an error
			if f.cost != 3 || f.checked[0].UserID != alice || f.checked[0].APIKeyID != f.keyID {
				t.Errorf("checked %+v cost %d", f.checked, f.cost)
			}
			got := decode[map[string]any](t, resp)
			if got["allowed"] != tt.allowed || got["reason"] != tt.reason {
				t.Errorf("decision = %v", got)
			}
			want := httpapi.RateLimitHeaders(tt.d, testNow)
			want["Content-Type"] = httpapi.ContentJSON
			if d := cmp.Diff(want, resp.Headers); d != "" {
				t.Errorf("headers (-want +got):\n%s", d)
			}
		})
	}
	f := newFixture(t)
	// No body (or only blanks) is a cost of 1; a JWT works too.
	for _, body := range []string{"", " \n"} {
		f.cost = 0
		wantStatus(t, f.do(t, request("POST", "/v1/limits/check", map[string]string{"Authorization": token(t, bob, false)}, body)), 200)
		if f.cost != 1 || f.checked[len(f.checked)-1].UserID != bob {
			t.Errorf("body %q: cost = %d for %+v; want 1 for bob", body, f.cost, f.checked)
		}
	}
	// The checker's own refusal of a cost keeps its field.
	f.limits.CheckFn = func(context.Context, usage.Identity, int64) (usage.Decision, error) {
		return usage.Decision{}, usage.FieldErrorf("cost", "must not exceed the burst of 100")
	}
	if p := decode[problem](t, f.do(t, request("POST", "/v1/limits/check", map[string]string{"X-Api-Key": f.aliceKey}, `{"cost":500}`))); p.Param != "cost" || p.Status != 400 {
		t.Errorf("problem = %+v", p)
	}
	f.h.Limits = nil
	wantStatus(t, f.do(t, request("POST", "/v1/limits/check", map[string]string{"X-Api-Key": f.aliceKey}, "")), 503)
}
