package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// jwtWith builds a token from raw header and claims, signed with HS256 over
// secret, or unsigned when alg is "none".
func jwtWith(t *testing.T, alg string, claims map[string]any, secret []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]string{"alg": alg, "typ": "JWT"}) + "." + enc(claims)
	if alg == "none" {
		return head + "."
	}
	tok, err := auth.Sign(secret, fmt.Sprint(claims["iss"]), fmt.Sprint(claims["aud"]), fmt.Sprint(claims["sub"]), false,
		time.Unix(int64(claims["iat"].(int64)), 0), time.Duration(claims["exp"].(int64)-claims["iat"].(int64))*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": testIssuer, "aud": testAudience, "sub": alice,
			"iat": testNow.Add(-time.Minute).Unix(), "exp": testNow.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	cases := []struct {
		name    string
		headers map[string]string
		user    int // status on GET /v1/usage
		admin   int // status on GET /v1/admin/summary
	}{
		{"missing", nil, 401, 401},
		{"malformed header", map[string]string{"Authorization": "Token abc"}, 401, 401},
		{"malformed token", bearer("not.a.token"), 401, 401},
		{"alg none", bearer(jwtWith(t, "none", claims(nil), nil)), 401, 401},
		{"expired", bearer(jwtWith(t, "HS256", claims(func(c map[string]any) {
			c["iat"], c["exp"] = testNow.Add(-3*time.Hour).Unix(), testNow.Add(-2*time.Hour).Unix()
		}), testSecret)), 401, 401},
		{"wrong audience", bearer(jwtWith(t, "HS256", claims(func(c map[string]any) { c["aud"] = "someone-else" }), testSecret)), 401, 401},
		{"wrong issuer", bearer(jwtWith(t, "HS256", claims(func(c map[string]any) { c["iss"] = "https://evil.test/" }), testSecret)), 401, 401},
		{"wrong key", bearer(jwtWith(t, "HS256", claims(nil), []byte("another-secret-of-at-least-32-bytes!"))), 401, 401},
		{"unknown api key", map[string]string{"X-Api-Key": auth.KeyPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, 401, 401},
		{"valid user", map[string]string{"Authorization": token(t, alice, false)}, 200, 403},
		{"valid api key", map[string]string{"X-Api-Key": f.aliceKey}, 200, 403},
		{"admin", map[string]string{"Authorization": token(t, operator, true)}, 200, 200},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.do(t, request("GET", "/v1/usage", tt.headers, ""))
			wantStatus(t, resp, tt.user)
			if tt.user == 401 && resp.Headers["WWW-Authenticate"] == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if tt.user != 200 && strings.Contains(resp.Body, "used") {
				t.Errorf("refused response carries data: %s", resp.Body)
			}
			wantStatus(t, f.do(t, request("GET", "/v1/admin/summary", tt.headers, "")), tt.admin)
		})
	}
}

// TestAuthGates: each gate refuses before anything is read, with the
// problem of its status.
func TestAuthGates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.noStore(t)
	user := map[string]string{"Authorization": token(t, alice, false)}
	for _, tt := range []struct {
		method, target string
		headers        map[string]string
		status         int
		typ            string
	}{
		{"POST", "/v1/events", user, 401, "urn:nexus:problem:unauthorized"},
		{"POST", "/v1/limits/check", nil, 401, "urn:nexus:problem:unauthorized"},
		{"GET", "/v1/usage/export", map[string]string{"X-Api-Key": "nx_short"}, 401, "urn:nexus:problem:unauthorized"},
		{"GET", "/v1/admin/users/" + bob + "/usage", user, 403, "urn:nexus:problem:forbidden"},
		{"GET", "/v1/admin/top-users", map[string]string{"X-Api-Key": f.aliceKey}, 403, "urn:nexus:problem:forbidden"},
		{"GET", "/v1/admin/rejected", user, 403, "urn:nexus:problem:forbidden"},
		{"GET", "/v1/admin/overage", user, 403, "urn:nexus:problem:forbidden"},
		{"PUT", "/v1/admin/users/" + bob + "/plan", map[string]string{"X-Api-Key": f.aliceKey}, 403, "urn:nexus:problem:forbidden"},
		{"POST", "/v1/admin/aggregate", user, 403, "urn:nexus:problem:forbidden"},
		{"GET", "/v1/admin/users/" + alice + "/daily", user, 403, "urn:nexus:problem:forbidden"},
		{"GET", "/v1/admin/users/" + alice + "/endpoints", map[string]string{"X-Api-Key": f.aliceKey}, 403, "urn:nexus:problem:forbidden"},
		{"GET", "/v1/admin/users/" + alice + "/keys", nil, 401, "urn:nexus:problem:unauthorized"},
		{"GET", "/v1/admin/users/" + bob + "/audit", user, 403, "urn:nexus:problem:forbidden"},
	} {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			body := ""
			if tt.method != "GET" {
				body = `{"plan_id":"enterprise"}`
			}
			resp := f.do(t, request(tt.method, tt.target, tt.headers, body))
			wantStatus(t, resp, tt.status)
			if p := decode[problem](t, resp); p.Type != tt.typ || p.Status != tt.status || p.Detail == "" {
				t.Errorf("problem = %+v; want %s", p, tt.typ)
			}
			if (tt.status == 401) != (resp.Headers["WWW-Authenticate"] == "Bearer, ApiKey") {
				t.Errorf("WWW-Authenticate = %q on a %d", resp.Headers["WWW-Authenticate"], tt.status)
			}
		})
	}
}

// TestAuthenticatorErrors: the authenticator's own failures keep their
// status, and no authenticator at all admits no one.
func TestAuthenticatorErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.noStore(t)
	f.h.Auth = &mock.Authenticator{AuthenticateFn: func(context.Context, func(string) string) (usage.Identity, error) {
		return usage.Identity{}, fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "api keys unavailable"), errors.New("dial tcp: refused"))
	}}
	resp := f.get(t, "/v1/usage", "ApiKey "+f.aliceKey)
	wantStatus(t, resp, 503)
	if p := decode[problem](t, resp); p.Detail != "api keys unavailable" || resp.Headers["Retry-After"] != "1" {
		t.Errorf("problem = %+v, headers %v", p, resp.Headers)
	}
	f.h = &Handler{Usage: f.usage, Admin: f.admin, Now: f.h.Now}
	wantStatus(t, f.get(t, "/v1/usage", token(t, alice, false)), 401)
}

func TestRouting(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.noStore(t)
	for _, tt := range []struct {
		method, path string
		status       int
		typ, allow   string
	}{
		{"GET", "/v1/nothing", 404, "urn:nexus:problem:not_found", ""},
		{"DELETE", "/v1/usage", 405, "urn:nexus:problem:method_not_allowed", "GET"},
		{"GET", "/v1/admin/users/" + bob + "/plan", 405, "urn:nexus:problem:method_not_allowed", "PUT, PATCH"},
	} {
		resp, _ := f.h.Handle(context.Background(), request(tt.method, tt.path, nil, ""))
		wantStatus(t, resp, tt.status)
		if p := decode[problem](t, resp); p.Type != tt.typ || resp.Headers["Allow"] != tt.allow {
			t.Errorf("%s %s: %+v, Allow %q; want %s, Allow %q", tt.method, tt.path, p, resp.Headers["Allow"], tt.typ, tt.allow)
		}
	}
	// As API Gateway sends it: the matched route key and path parameters.
	req := request("GET", "/v1/admin/users/"+alice+"/usage", map[string]string{"Authorization": token(t, operator, true)}, "")
	req.RouteKey, req.PathParameters = "GET /v1/admin/users/{id}/usage", map[string]string{"id": bob}
	var asked string
	f.usage.UsageSummaryFn = func(_ context.Context, userID string, _ time.Time) (*report.UsageSummary, error) {
		asked = userID
		return cannedUsage().UsageSummaryFn(context.Background(), userID, testNow)
	}
	wantStatus(t, f.do(t, req), 200)
	if asked != bob {
		t.Errorf("route key dispatch read %q; want the path parameter %q", asked, bob)
	}
}
