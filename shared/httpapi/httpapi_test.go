package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		code string
		want int
	}{
		{usage.CodeInvalid, 400}, {usage.CodeUnauthorized, 401}, {usage.CodeForbidden, 403},
		{usage.CodeNotFound, 404}, {usage.CodeConflict, 409}, {usage.CodeRateLimited, 429},
		{usage.CodeQuotaExceeded, 429}, {usage.CodeUnavailable, 503}, {usage.CodeInternal, 500}, {"other", 500},
	}
	for _, tt := range tests {
		if got := httpapi.Status(tt.code); got != tt.want {
			t.Errorf("Status(%q) = %d; want %d", tt.code, got, tt.want)
		}
	}
}

func TestErrorHidesInternals(t *testing.T) {
	resp := httpapi.Error(context.Background(), nil, fmt.Errorf("query: %w", errors.New("password=secret")))
	var p httpapi.Problem
	if err := json.Unmarshal([]byte(resp.Body), &p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 500 || p.Detail != "internal error" || resp.Headers["Content-Type"] != "application/problem+json" {
		t.Errorf("internal error response = %d %s", resp.StatusCode, resp.Body)
	}
}

func TestRouter(t *testing.T) {
	r := httpapi.NewRouter()
	hit := func(name string) httpapi.HandlerFunc {
		return func(_ context.Context, req *httpapi.Request) httpapi.Response {
			return httpapi.JSON(200, map[string]string{"route": name, "id": req.Param("id")})
		}
	}
	r.Handle("GET /v1/users/{id}/usage", hit("usage"))
	r.Handle("PUT /v1/users/{id}/plan", hit("plan"))
	tests := []struct {
		name   string
		ev     events.APIGatewayV2HTTPRequest
		status int
		body   string
	}{
		{"route key", events.APIGatewayV2HTTPRequest{RouteKey: "GET /v1/users/{id}/usage", PathParameters: map[string]string{"id": "u1"}}, 200, `{"id":"u1","route":"usage"}`},
		{"raw path", raw("PUT", "/v1/users/u%202/plan"), 200, `{"id":"u 2","route":"plan"}`},
		{"wrong method", raw("DELETE", "/v1/users/u1/plan"), 405, ""},
		{"no route", raw("GET", "/v1/users/u1"), 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := r.Serve(context.Background(), &tt.ev)
			if resp.StatusCode != tt.status || (tt.body != "" && resp.Body != tt.body) {
				t.Errorf("Serve = %d %s; want %d %s", resp.StatusCode, resp.Body, tt.status, tt.body)
			}
		})
	}
}

func raw(method, path string) events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{RouteKey: "$default", RawPath: path,
		RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path}}}
}

func TestParams(t *testing.T) {
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		query, param string
		from, to     string
		detail       string // in the error's message, when set
	}{
		{"", "", "2026-02-14", "2026-03-15", ""},
		{"from=2026-03-01&to=2026-03-02", "", "2026-03-01", "2026-03-02", ""},
		{"from=2025-03-15", "", "2025-03-15", "2026-03-15", ""}, // 366 days
		{"from=2025-03-14", "from", "", "", ""},
		{"from=2026-02-30", "from", "", "", ""},
		{"to=2026-03-17", "to", "", "", ""},
		{"from=2026-03-02&to=2026-03-01", "from", "", "", ""},
		// Go's zero time is 0001-01-01: a date before the floor, not a
		// missing one.
		{"from=0001-01-01&to=0001-01-02", "to", "", "", "on or after 1970-01-01"},
		{"from=1969-12-31&to=1970-01-01", "from", "", "", "on or after 1970-01-01"},
		{"from=0000-01-01&to=0000-01-02", "to", "", "", "on or after 1970-01-01"},
		{"from=1970-01-01&to=1970-01-02", "", "1970-01-01", "1970-01-02", ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			ev := raw("GET", "/")
			ev.RawQueryString = tt.query
			req := &httpapi.Request{Event: &ev}
			rg, err := req.DayRange(now, 30)
			if f := usage.ErrorField(err); f != tt.param {
				t.Fatalf("DayRange error %v; want one naming %q", err, tt.param)
			}
			if tt.detail != "" && !strings.Contains(usage.ErrorMessage(err), tt.detail) {
				t.Errorf("DayRange error %q; want it to say %q", usage.ErrorMessage(err), tt.detail)
			}
			if err == nil && (rg.From.Format(time.DateOnly) != tt.from || rg.To.Format(time.DateOnly) != tt.to) {
				t.Errorf("DayRange = %v..%v; want %s..%s", rg.From, rg.To, tt.from, tt.to)
			}
		})
	}
	type key struct{ A int }
	ev := raw("GET", "/")
	ev.RawQueryString = "cursor=" + httpapi.EncodeCursor(key{7})
	var k key
	if ok, err := (&httpapi.Request{Event: &ev}).DecodeCursor(&k); !ok || err != nil || k.A != 7 {
		t.Errorf("cursor round trip = %v, %v, %v", k, ok, err)
	}
}
