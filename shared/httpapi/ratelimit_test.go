package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

var (
	t0     = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	period = usage.Period{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}

	allowed = usage.Decision{Allowed: true, Limit: 100, Remaining: 57, Reset: 860 * time.Millisecond, RatePerSecond: 50,
		Quota: usage.QuotaStatus{Period: period, Included: 100_000, Used: 400, Remaining: 99_600}}
	rateLimited = usage.Decision{Reason: usage.CodeRateLimited, Limit: 10, Reset: 5 * time.Second, RetryAfter: 200 * time.Millisecond,
		RatePerSecond: 2, Quota: usage.QuotaStatus{Period: period, Included: 1000, Used: 10, Remaining: 990, Hard: true}}
	quotaExceeded = usage.Decision{Reason: usage.CodeQuotaExceeded, Limit: 10, RetryAfter: period.End.Sub(t0),
		RatePerSecond: 2, Quota: usage.QuotaStatus{Period: period, Included: 1000, Used: 1000, Hard: true}}
)

func TestRateLimitHeaders(t *testing.T) {
	tests := []struct {
		name string
		d    usage.Decision
		want map[string]string
	}{
		{"allowed", allowed, map[string]string{
			"RateLimit-Policy":  `"burst";q=100;w=2, "quota";q=100000;w=2678400`,
			"RateLimit":         `"burst";r=57;t=1, "quota";r=99600;t=1857600`,
			"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "57", "X-RateLimit-Reset": "1",
		}},
		{"rate limited", rateLimited, map[string]string{
			"RateLimit-Policy":  `"burst";q=10;w=5, "quota";q=1000;w=2678400`,
			"RateLimit":         `"burst";r=0;t=5, "quota";r=990;t=1857600`,
			"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "5",
			"Retry-After": "1",
		}},
		{"quota exceeded", quotaExceeded, map[string]string{
			"RateLimit-Policy":  `"burst";q=10;w=5, "quota";q=1000;w=2678400`,
			"RateLimit":         `"burst";r=0;t=0, "quota";r=0;t=1857600`,
			"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0",
			"Retry-After": "1857600",
		}},
		// LimitChecker.CheckRate's decision: the rate limit alone.
		{"rate only", usage.Decision{Allowed: true, Limit: 10, Remaining: 4, Reset: 3 * time.Second, RatePerSecond: 2}, map[string]string{
			"RateLimit-Policy":  `"burst";q=10;w=5`,
			"RateLimit":         `"burst";r=4;t=3`,
			"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "4", "X-RateLimit-Reset": "3",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, httpapi.RateLimitHeaders(tt.d, t0)); diff != "" {
				t.Errorf("RateLimitHeaders (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRefusal(t *testing.T) {
	tests := []struct {
		d      usage.Decision
		typ    string
		detail string
	}{
		{rateLimited, "urn:nexus:problem:rate_limited", "rate limit of 10 calls at 2/s exceeded; retry in 1 s"},
		{quotaExceeded, "urn:nexus:problem:quota_exceeded", "the 1000 calls included in the billing period are used; the next period starts at 2026-04-01T00:00:00Z"},
	}
	for _, tt := range tests {
		resp := httpapi.Refusal(tt.d, t0)
		var p httpapi.Problem
		if err := json.Unmarshal([]byte(resp.Body), &p); err != nil {
			t.Fatal(err)
		}
		want := httpapi.Problem{Type: tt.typ, Title: "Too Many Requests", Status: 429, Detail: tt.detail}
		if resp.StatusCode != 429 || resp.Headers["Content-Type"] != httpapi.ContentProblem {
			t.Errorf("Refusal(%s) = %d %v", tt.d.Reason, resp.StatusCode, resp.Headers)
		}
		if diff := cmp.Diff(want, p); diff != "" {
			t.Errorf("Refusal(%s) problem (-want +got):\n%s", tt.d.Reason, diff)
		}
		for k, v := range httpapi.RateLimitHeaders(tt.d, t0) {
			if resp.Headers[k] != v {
				t.Errorf("Refusal(%s) %s = %q; want %q", tt.d.Reason, k, resp.Headers[k], v)
			}
		}
	}
}

// TestProblemHeaders: a 401 always challenges and a 503 always says when
// to retry, and nothing else adds headers.
func TestProblemHeaders(t *testing.T) {
	for status, want := range map[int]map[string]string{
		400: {"Content-Type": httpapi.ContentProblem},
		401: {"Content-Type": httpapi.ContentProblem, "WWW-Authenticate": "Bearer, ApiKey"},
		500: {"Content-Type": httpapi.ContentProblem},
		503: {"Content-Type": httpapi.ContentProblem, "Retry-After": "1"},
	} {
		resp := httpapi.ProblemResponse(httpapi.Problem{Type: "urn:nexus:problem:x", Title: "x", Status: status})
		if diff := cmp.Diff(want, resp.Headers); diff != "" || !strings.Contains(resp.Body, `"status":`) {
			t.Errorf("ProblemResponse(%d) headers (-want +got):\n%s", status, diff)
		}
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{-time.Second: 0, 0: 0, time.Nanosecond: 1, time.Second: 1, 1001 * time.Millisecond: 2} {
		if got := httpapi.Seconds(d); got != want {
			t.Errorf("Seconds(%v) = %d; want %d", d, got, want)
		}
	}
}

// TestErrorRetryAfter: a 503 says when to retry as its error asks (a
// statement that timed out: 5 s), else after 1 s.
func TestErrorRetryAfter(t *testing.T) {
	timedOut := &usage.Error{Code: usage.CodeUnavailable, RetryAfter: 4500 * time.Millisecond,
		Message: "the database did not answer within the 3s this request may take; retry later, or ask for less"}
	resp := httpapi.Error(context.Background(), nil, fmt.Errorf("daily usage: %w", timedOut))
	if resp.StatusCode != 503 || resp.Headers["Retry-After"] != "5" || !strings.Contains(resp.Body, "within the 3s") {
		t.Errorf("timed-out read = %d %v %s; want 503, Retry-After 5, the message", resp.StatusCode, resp.Headers, resp.Body)
	}
	if resp := httpapi.Error(context.Background(), nil, usage.Errorf(usage.CodeUnavailable, "down")); resp.Headers["Retry-After"] != "1" {
		t.Errorf("unavailable without a retry after: Retry-After %q; want 1", resp.Headers["Retry-After"])
	}
}
