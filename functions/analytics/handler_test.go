package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/usage"
)

// The handler tests run on mocks (shared/mock) and the real authenticator
// over an in-memory key store: routing, auth gates, parameter and body
// validation and error mapping need no database. db_test.go and
// db_admin_test.go run the routes over PostgreSQL.

var (
	testNow    = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	testSecret = []byte("0123456789abcdef0123456789abcdef")
)

const (
	testIssuer   = "https://issuer.test/"
	testAudience = "nexus-usage"
	alice        = "aaaaaaaa-0000-4000-8000-000000000001"
	bob          = "bbbbbbbb-0000-4000-8000-000000000002"
	charlie      = "cccccccc-0000-4000-8000-000000000003"
	dave         = "dddddddd-0000-4000-8000-000000000004"
	operator     = "eeeeeeee-0000-4000-8000-000000000005"
)

// fixture is a handler over mocks, with alice's API key and what the
// publisher and the limit checker were given.
type fixture struct {
	h        *Handler
	usage    *mock.UsageReader
	admin    *mock.AdminStore
	overage  *mock.OveragePreviewer
	pub      *mock.Publisher
	limits   *mock.LimitChecker
	reads    *mock.BudgetChecker
	aliceKey string
	keyID    string

	published []usage.Event
	sends     int
	checked   []usage.Identity
	cost      int64
	// readCosts are the costs taken from the read budget.
	readCosts []int64
}

// readAllowed is the read budget's answer in the fixture: 60 at 2/s, one
// unit taken.
var readAllowed = usage.Decision{Allowed: true, Limit: 60, Remaining: 59, Reset: 500 * time.Millisecond, RatePerSecond: 2}

// newFixture returns a handler whose stores answer the canned data of
// canned_test.go; tests replace the functions they need otherwise.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	secret, k, err := auth.NewAPIKey(alice, "ci")
	if err != nil {
		t.Fatal(err)
	}
	k.ID = "4b1d0000-0000-4000-8000-0000000000a1"
	keys := &mock.APIKeyStore{APIKeyByHashFn: func(_ context.Context, hash []byte) (*usage.APIKey, error) {
		if string(hash) == string(k.Hash) {
			return k, nil
		}
		return nil, usage.Errorf(usage.CodeNotFound, "no such key")
	}}
	verifier, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: testIssuer, Audience: testAudience,
		Algorithms: []string{"HS256"}, HMACSecret: testSecret, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{aliceKey: secret, keyID: k.ID, usage: cannedUsage(), admin: cannedAdmin(), overage: cannedOverage()}
	f.pub = &mock.Publisher{SendFn: func(_ context.Context, events []usage.Event) []error {
		f.sends++
		f.published = append(f.published, events...)
		return make([]error, len(events))
	}}
	decide := func(_ context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
		f.checked, f.cost = append(f.checked, id), cost
		return allowedDecision, nil
	}
	f.limits = &mock.LimitChecker{CheckFn: decide, CheckRateFn: decide}
	f.reads = &mock.BudgetChecker{TakeFn: func(_ context.Context, _ usage.Identity, cost int64) (usage.Decision, error) {
		f.readCosts = append(f.readCosts, cost)
		return readAllowed, nil
	}}
	f.h = &Handler{Usage: f.usage, Admin: f.admin, Overage: f.overage, Auth: &auth.Authenticator{Keys: keys, JWT: verifier},
		Publisher: f.pub, Limits: f.limits, Reads: f.reads, Now: func() time.Time { return testNow }}
	return f
}

func token(t testing.TB, user string, admin bool) string {
	t.Helper()
	s, err := auth.Sign(testSecret, testIssuer, testAudience, user, admin, testNow.Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

// request builds an API Gateway v2 event for a $default route, as the
// local API server does; target may carry a raw query string.
func request(method, target string, headers map[string]string, body string) events.APIGatewayV2HTTPRequest {
	path, query, _ := strings.Cut(target, "?")
	h := map[string]string{}
	for k, v := range headers {
		h[strings.ToLower(k)] = v
	}
	if body != "" {
		h["content-type"] = "application/json"
	}
	qs := map[string]string{}
	if q, err := url.ParseQuery(query); err == nil {
		for k := range q {
			qs[k] = q.Get(k)
		}
	}
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "$default", RawPath: path, RawQueryString: query,
		Headers: h, QueryStringParameters: qs, Body: body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path}},
	}
}

// serve runs the request through h and validates the response against the
// OpenAPI document.
func serve(t *testing.T, h *Handler, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	resp, err := h.Handle(context.Background(), req)
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	checkSpec(t, req, resp)
	return resp
}

func (f *fixture) do(t *testing.T, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	return serve(t, f.h, req)
}

func (f *fixture) get(t *testing.T, target, authz string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	return f.do(t, request("GET", target, map[string]string{"Authorization": authz}, ""))
}

func decode[T any](t *testing.T, resp events.APIGatewayV2HTTPResponse) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(resp.Body), &v); err != nil {
		t.Fatalf("decode %q: %v", resp.Body, err)
	}
	return v
}

func wantStatus(t *testing.T, resp events.APIGatewayV2HTTPResponse, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d; want %d (body %s)", resp.StatusCode, status, resp.Body)
	}
}

type problem struct {
	Type, Title, Detail, Param string
	Status                     int
	InvalidParams              []struct{ Name, Reason string } `json:"invalid-params"`
}

type pageOf[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func decodeInto(body string, v any) error { return json.Unmarshal([]byte(body), v) }
