package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// routeCall is a request to one route and a way to make the mock behind
// it fail with err.
type routeCall struct {
	name string
	req  func(t *testing.T, f *fixture) events.APIGatewayV2HTTPRequest
	fail func(f *fixture, err error)
}

func routeCalls() []routeCall {
	user := func(method, target, body string) func(*testing.T, *fixture) events.APIGatewayV2HTTPRequest {
		return func(t *testing.T, f *fixture) events.APIGatewayV2HTTPRequest {
			return request(method, target, map[string]string{"X-Api-Key": f.aliceKey}, body)
		}
	}
	admin := func(method, target, body string) func(*testing.T, *fixture) events.APIGatewayV2HTTPRequest {
		return func(t *testing.T, f *fixture) events.APIGatewayV2HTTPRequest {
			return request(method, target, map[string]string{"Authorization": token(t, operator, true)}, body)
		}
	}
	daily := func(f *fixture, err error) {
		f.usage.DailyUsageFn = func(context.Context, string, usage.DayRange, time.Time) ([]report.DailyUsage, error) { return nil, err }
	}
	return []routeCall{
		{"usage", user("GET", "/v1/usage", ""), func(f *fixture, err error) {
			f.usage.UsageSummaryFn = func(context.Context, string, time.Time) (*report.UsageSummary, error) { return nil, err }
		}},
		{"daily", user("GET", "/v1/usage/daily", ""), daily},
		{"export", user("GET", "/v1/usage/export?format=csv", ""), daily},
		{"endpoints", user("GET", "/v1/usage/endpoints", ""), func(f *fixture, err error) {
			f.usage.EndpointBreakdownFn = func(context.Context, report.BreakdownFilter) ([]report.Breakdown, error) { return nil, err }
		}},
		{"keys", user("GET", "/v1/usage/keys", ""), func(f *fixture, err error) {
			f.usage.KeyBreakdownFn = func(context.Context, report.BreakdownFilter) ([]report.Breakdown, error) { return nil, err }
		}},
		{"events", user("POST", "/v1/events", `{"events":[`+event("30000000-0000-4000-8000-000000000001", 200, "")+`]}`), func(f *fixture, err error) {
			f.pub.SendFn = func(_ context.Context, events []usage.Event) []error { return []error{err} }
		}},
		{"limits", user("POST", "/v1/limits/check", ""), func(f *fixture, err error) {
			f.limits.CheckFn = func(context.Context, usage.Identity, int64) (usage.Decision, error) { return usage.Decision{}, err }
		}},
		{"admin summary", admin("GET", "/v1/admin/summary", ""), func(f *fixture, err error) {
			f.admin.AdminSummaryFn = func(context.Context, usage.DayRange, time.Time) (*report.AdminSummary, error) { return nil, err }
		}},
		{"top users", admin("GET", "/v1/admin/top-users", ""), func(f *fixture, err error) {
			f.admin.TopUsersFn = func(context.Context, report.TopUsersFilter, time.Time) ([]report.TopUser, error) { return nil, err }
		}},
		{"user usage", admin("GET", "/v1/admin/users/"+bob+"/usage", ""), func(f *fixture, err error) {
			f.usage.UsageSummaryFn = func(context.Context, string, time.Time) (*report.UsageSummary, error) { return nil, err }
		}},
		{"plan", admin("PUT", "/v1/admin/users/"+bob+"/plan", `{"plan_id":"pro"}`), func(f *fixture, err error) {
			f.admin.PutPlanFn = func(context.Context, report.PlanChange) (*report.PlanChanged, error) { return nil, err }
		}},
		{"aggregate", admin("POST", "/v1/admin/aggregate", `{"from":"2026-03-01","to":"2026-03-02"}`), func(f *fixture, err error) {
			f.admin.QueueAggregationFn = func(context.Context, usage.DayRange) (int, error) { return 0, err }
		}},
		{"rejected", admin("GET", "/v1/admin/rejected", ""), func(f *fixture, err error) {
			f.admin.RejectedEventsFn = func(context.Context, int64, int) ([]report.RejectedEvent, error) { return nil, err }
		}},
		{"overage", admin("GET", "/v1/admin/overage", ""), func(f *fixture, err error) {
			f.admin.ListLedgerPageFn = func(context.Context, report.LedgerPage) ([]billing.LedgerEntry, error) { return nil, err }
		}},
	}
}

// TestErrorMapping: on every route, what the store (or queue, or limiter)
// fails with becomes the problem of its code, the same shape everywhere;
// the cause stays in the log, logged once, and never reaches the body.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	cause := errors.New(`dial tcp 10.0.0.7:5432: password authentication failed for user "nexus"`)
	tests := []struct {
		name      string
		err       error
		status    int
		typ       string
		detail    string
		logged    string // the level of the one log line
		retryHint bool
	}{
		{"unavailable", fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "database unavailable"), cause), 503,
			"urn:nexus:problem:unavailable", "database unavailable", "WARN", true},
		{"internal", fmt.Errorf("scan row: %w", cause), 500, "urn:nexus:problem:internal", "internal error", "ERROR", false},
	}
	for _, rc := range routeCalls() {
		for _, tt := range tests {
			t.Run(rc.name+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t)
				var log bytes.Buffer
				f.h.Logger = slog.New(slog.NewTextHandler(&log, nil))
				rc.fail(f, tt.err)
				resp := f.do(t, rc.req(t, f))
				wantStatus(t, resp, tt.status)
				p := decode[problem](t, resp)
				if p.Type != tt.typ || p.Title == "" || p.Status != tt.status || p.Detail != tt.detail || p.Param != "" {
					t.Errorf("problem = %+v; want %s %q", p, tt.typ, tt.detail)
				}
				if resp.Headers["Content-Type"] != "application/problem+json" || (resp.Headers["Retry-After"] == "1") != tt.retryHint {
					t.Errorf("headers = %v", resp.Headers)
				}
				if strings.Contains(resp.Body, "10.0.0.7") || strings.Contains(resp.Body, "password") {
					t.Errorf("the cause leaked: %s", resp.Body)
				}
				if strings.Count(log.String(), "\n") != 1 || !strings.Contains(log.String(), "level="+tt.logged) || !strings.Contains(log.String(), "10.0.0.7") {
					t.Errorf("log = %q; want one %s line with the cause", log.String(), tt.logged)
				}
			})
		}
	}
}
