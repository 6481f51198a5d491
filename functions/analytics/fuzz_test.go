package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/httpapi"
)

// goText matches what would betray Go or driver internals in a body.
var goText = regexp.MustCompile(`json: |struct \{|\*[a-z]+\.[A-Z]|goroutine |runtime\.|panic|SQLSTATE|pgx|\bint64\b|\bfloat64\b|unmarshal`)

// FuzzHandle feeds arbitrary requests (method, path, query, credentials,
// body, base64 flag) to the handler over the canned stores: it never
// panics, answers a status of the code table, and every error is
// problem+json of our own type in our own words.
func FuzzHandle(f *testing.F) {
	fx := newFixture(f)
	user, admin := token(f, bob, false), token(f, bob, true)
	for _, s := range []struct{ method, path, query, auth, body string }{
		{"GET", "/v1/usage", "", user, ""},
		{"GET", "/v1/usage/daily", "from=2026-03-01&to=2026-03-15", user, ""},
		{"GET", "/v1/usage/endpoints", "limit=0&cursor=%%%", user, ""},
		{"GET", "/v1/usage/export", "format=csv", user, ""},
		{"POST", "/v1/events", "", fx.aliceKey, `{"events":[{"event_id":"x","status_code":"nope"}]}`},
		{"POST", "/v1/limits/check", "", fx.aliceKey, `1`},
		{"PUT", "/v1/admin/users/bbbbbbbb-0000-4000-8000-000000000002/plan", "", admin, `{"plan_id":"pro","overrides":{"burst":-1}}`},
		{"POST", "/v1/admin/aggregate", "", admin, `{"from":"2026-02-30"}`},
		{"GET", "/v1/admin/overage", "period=2026-13", admin, ""},
		{"GET", "/v1/admin/users/%00/usage", "", admin, ""},
		{"DELETE", "/v1/usage", "", user, ""},
		{"GET", "/dashboard/../../etc/passwd", "", "", ""},
	} {
		f.Add(s.method, s.path, s.query, s.auth, s.body, false)
	}
	codes := map[int]bool{200: true, 202: true, 304: true}
	for _, c := range []string{"invalid", "unauthorized", "forbidden", "not_found", "conflict", "rate_limited",
		"quota_exceeded", "unavailable", "internal", "too_large"} {
		codes[httpapi.Status(c)] = true
	}
	codes[http.StatusMethodNotAllowed] = true
	f.Fuzz(func(t *testing.T, method, path, query, authz, body string, b64 bool) {
		req := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "$default", RawPath: path, RawQueryString: query,
			Headers: map[string]string{"content-type": "application/json"}, Body: body, IsBase64Encoded: b64}
		req.RequestContext.HTTP.Method, req.RequestContext.HTTP.Path = method, path
		switch {
		case strings.HasPrefix(authz, "Bearer "):
			req.Headers["authorization"] = authz
		case authz != "":
			req.Headers["x-api-key"] = authz
		}
		resp, err := fx.h.Handle(context.Background(), req)
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}
		if !codes[resp.StatusCode] {
			t.Fatalf("status %d is not in the code table (body %s)", resp.StatusCode, resp.Body)
		}
		if resp.StatusCode < 400 {
			return
		}
		if resp.Headers["Content-Type"] != httpapi.ContentProblem {
			t.Fatalf("error %d with Content-Type %q; want problem+json", resp.StatusCode, resp.Headers["Content-Type"])
		}
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal([]byte(resp.Body), &p); err != nil || !strings.HasPrefix(p.Type, "urn:nexus:problem:") || p.Status != resp.StatusCode {
			t.Fatalf("error body %s is not our problem+json", resp.Body)
		}
		if goText.MatchString(resp.Body) {
			t.Fatalf("error body %s carries Go or driver text", resp.Body)
		}
	})
}
