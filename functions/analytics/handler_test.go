package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

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

// fixture is a handler over a seeded database.
type fixture struct {
	h        *Handler
	db       *postgres.DB
	aliceKey string // alice's API key
	keyID    string
	bobKey   string
	pub      *fakePublisher
	limits   *fakeLimits
}

type fakePublisher struct {
	mu      sync.Mutex
	events  []usage.Event
	flushes int
	err     error
}

func (p *fakePublisher) Publish(_ context.Context, e usage.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
	return nil
}

func (p *fakePublisher) Flush(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushes++
	return p.err
}

type fakeLimits struct {
	got  []usage.Identity
	cost int64
	d    usage.Decision
}

func (f *fakeLimits) Check(_ context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	f.got, f.cost = append(f.got, id), cost
	return f.d, nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := pgtest.NewDB(t)
	db.Now = func() time.Time { return testNow }
	ctx := context.Background()
	keys := postgres.NewAPIKeyStore(db)
	secret, k, err := auth.NewAPIKey(alice, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	bobSecret, bk, _ := auth.NewAPIKey(bob, "bob")
	if err := keys.CreateAPIKey(ctx, bk); err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewJWTVerifier(auth.JWTConfig{Issuer: testIssuer, Audience: testAudience,
		Algorithms: []string{"HS256"}, HMACSecret: testSecret, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	seed(t, db, k.ID)
	f := &fixture{db: db, aliceKey: secret, keyID: k.ID, bobKey: bobSecret, pub: &fakePublisher{}, limits: &fakeLimits{}}
	f.h = &Handler{
		Usage:     postgres.NewAnalyticsStore(db),
		Admin:     postgres.NewAnalyticsStore(db),
		Auth:      &auth.Authenticator{Keys: keys, JWT: verifier},
		Publisher: f.pub,
		Limits:    f.limits,
		Now:       func() time.Time { return testNow },
	}
	return f
}

// seed writes: alice on pro (anchor Mar 10, 50 included, units of 10 at 50
// cents) with a rollup for Mar 1–14 over two endpoints (one through her
// key), Mar 14 dirty with more calls in the counters, and today's counters;
// bob on free with one rollup day; ledger rows and rejected events.
func seed(t *testing.T, db *postgres.DB, keyID string) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), `
	INSERT INTO eco_subscriptions (user_id, plan_id, included_calls, overage_unit_size, period_anchor)
	VALUES ('`+alice+`', 'pro', 50, 10, '2026-01-10T00:00:00Z');

	INSERT INTO eco_usage_daily (day, user_id, endpoint, api_key_id, calls, errors_4xx, errors_5xx,
		request_bytes, response_bytes, latency_sum_ms, latency_p50_ms, latency_p95_ms, latency_max_ms, events)
	SELECT d::date, '`+alice+`'::uuid, 'GET /v1/a', '`+keyID+`'::uuid, 10, 1, 0, 100, 1000, 500, 40, 100, 150, 10
	FROM generate_series('2026-03-01'::date, '2026-03-14'::date, interval '1 day') d
	UNION ALL
	SELECT d::date, '`+alice+`'::uuid, 'GET /v1/b', NULL::uuid, 5, 0, 1, 50, 500, 1000, 150, 200, 300, 5
	FROM generate_series('2026-03-01'::date, '2026-03-14'::date, interval '1 day') d
	UNION ALL
	SELECT '2026-03-13'::date, '`+bob+`'::uuid, 'GET /v1/a', NULL::uuid, 3, 0, 0, 30, 300, 30, 10, 10, 10, 3;

	INSERT INTO eco_usage_dirty_days (day) VALUES ('2026-03-14');

	INSERT INTO eco_usage_counters (user_id, day, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, updated_at)
	SELECT '`+alice+`'::uuid, d::date, 15, 1, 1, 150, 1500, d + interval '23 hours'
	FROM generate_series('2026-03-09'::date, '2026-03-13'::date, interval '1 day') d;
	INSERT INTO eco_usage_counters (user_id, day, calls, errors_4xx, errors_5xx, request_bytes, response_bytes, updated_at) VALUES
		('`+alice+`', '2026-03-14', 20, 2, 0, 200, 2000, '2026-03-14T23:59:00Z'),
		('`+alice+`', '2026-03-15', 7, 0, 1, 70, 700, '2026-03-15T11:00:00Z'),
		('`+bob+`', '2026-03-13', 3, 0, 0, 30, 300, '2026-03-13T10:00:00Z');

	INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end, included_calls, used_calls, units,
		unit_size, unit_price, amount, currency, idempotency_key, status) VALUES
		('10000000-0000-4000-8000-000000000001', '`+alice+`', '2026-02-10', '2026-03-10', 50, 150, 10, 10, 50, 500, 'usd', 'k1', 'billed'),
		('10000000-0000-4000-8000-000000000002', '`+charlie+`', '2026-03-01', '2026-04-01', 100, 700, 6, 100, 50, 300, 'usd', 'k2', 'pending'),
		('10000000-0000-4000-8000-000000000003', '`+dave+`', '2026-03-05', '2026-04-05', 100, 300, 2, 100, 50, 100, 'usd', 'k3', 'failed');

	INSERT INTO eco_rejected_events (source, message_id, event_id, field, reason, body, rejected_at) VALUES
		('sqs', 'm1', '', 'body', 'not JSON', '{', '2026-03-14T01:00:00Z'),
		('sqs', 'm2', 'e2', 'status_code', 'must be between 100 and 599', '{}', '2026-03-14T02:00:00Z'),
		('sqs', 'm3', 'e3', 'user_id', 'must be a UUID', '{}', '2026-03-14T03:00:00Z');
	`)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
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
// local API server does; query is a raw query string.
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

// do serves the request and validates the response against the OpenAPI
// document.
func (f *fixture) do(t *testing.T, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	resp, err := f.h.Handle(context.Background(), req)
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	checkSpec(t, req, resp)
	return resp
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

func TestUsageSummary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, authz := range []string{token(t, alice, false), "ApiKey " + f.aliceKey} {
		resp := f.get(t, "/v1/usage?user_id="+bob, authz) // the query cannot pick another user
		wantStatus(t, resp, 200)
		got := decode[map[string]any](t, resp)
		// Period Mar 10 – Apr 10: 4 × 15 + 20 + 7 = 87 calls; 37 over 50
		// included is 4 units of 10 at 50 cents.
		want := map[string]any{
			"user_id": alice, "plan_id": "pro", "plan_name": "Pro", "hard_limit": false,
			"period":   map[string]any{"start": "2026-03-10T00:00:00Z", "end": "2026-04-10T00:00:00Z"},
			"included": 50.0, "used": 87.0, "remaining": 0.0,
			"projected_overage": map[string]any{"units": 4.0, "unit_size": 10.0, "unit_price": 50.0, "amount": 200.0, "currency": "usd"},
			"rate_limit":        map[string]any{"rate_per_second": 50.0, "burst": 100.0},
			"last_updated":      "2026-03-15T11:00:00Z",
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("GET /v1/usage (-want +got):\n%s", d)
		}
	}
	// bob has no subscription: free, calendar month, nothing this month but Mar 13.
	got := decode[map[string]any](t, f.get(t, "/v1/usage", token(t, bob, false)))
	if got["plan_id"] != "free" || got["used"] != 3.0 || got["remaining"] != 997.0 {
		t.Errorf("bob's usage = %v", got)
	}
	// charlie has nothing at all.
	got = decode[map[string]any](t, f.get(t, "/v1/usage", token(t, charlie, false)))
	if got["used"] != 0.0 || got["last_updated"] != nil {
		t.Errorf("charlie's usage = %v", got)
	}
}

func TestDailyUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	type day struct {
		Day   string `json:"day"`
		Calls int64  `json:"calls"`
		E4    int64  `json:"errors_4xx"`
		E5    int64  `json:"errors_5xx"`
		Rq    int64  `json:"request_bytes"`
		Rs    int64  `json:"response_bytes"`
		P95   *int32 `json:"p95_latency_ms"`
		Live  bool   `json:"live"`
	}
	p := func(n int32) *int32 { return &n }
	want := []day{
		{"2026-03-12", 15, 1, 1, 150, 1500, p(200), false}, // rollup
		{"2026-03-13", 15, 1, 1, 150, 1500, p(200), false}, // rollup
		{"2026-03-14", 20, 2, 0, 200, 2000, nil, true},     // dirty: counters
		{"2026-03-15", 7, 0, 1, 70, 700, nil, true},        // today: counters
	}
	resp := f.get(t, "/v1/usage/daily?from=2026-03-12&to=2026-03-15", token(t, alice, false))
	wantStatus(t, resp, 200)
	got := decode[struct {
		From, To string
		Days     []day
	}](t, resp)
	if d := cmp.Diff(want, got.Days); d != "" {
		t.Errorf("daily (-want +got):\n%s", d)
	}

	// Default range: the last 30 days, zeros included.
	got = decode[struct {
		From, To string
		Days     []day
	}](t, f.get(t, "/v1/usage/daily", "ApiKey "+f.bobKey))
	if len(got.Days) != 30 || got.From != "2026-02-14" || got.To != "2026-03-15" {
		t.Fatalf("default range = %s..%s, %d days", got.From, got.To, len(got.Days))
	}
	var total int64
	for _, d := range got.Days {
		total += d.Calls
	}
	if total != 3 {
		t.Errorf("bob's calls over 30 days = %d; want 3 (only his own)", total)
	}
}

func TestExport(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	wantCSV := "day,calls,errors_4xx,errors_5xx,request_bytes,response_bytes,p95_latency_ms,live\n" +
		"2026-03-13,15,1,1,150,1500,200,false\n" +
		"2026-03-14,20,2,0,200,2000,,true\n"
	for _, tt := range []struct {
		name, target string
		headers      map[string]string
	}{
		{"accept", "/v1/usage/export?from=2026-03-13&to=2026-03-14", map[string]string{"Accept": "text/csv"}},
		{"format", "/v1/usage/export?from=2026-03-13&to=2026-03-14&format=csv", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Authorization": token(t, alice, false)}
			for k, v := range tt.headers {
				h[k] = v
			}
			resp := f.do(t, request("GET", tt.target, h, ""))
			wantStatus(t, resp, 200)
			if ct := resp.Headers["Content-Type"]; !strings.HasPrefix(ct, "text/csv") {
				t.Errorf("Content-Type = %q", ct)
			}
			if resp.Body != wantCSV {
				t.Errorf("CSV = %q; want %q", resp.Body, wantCSV)
			}
		})
	}
	resp := f.get(t, "/v1/usage/export?from=2026-03-13&to=2026-03-14", token(t, alice, false))
	wantStatus(t, resp, 200)
	if !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
		t.Errorf("export without csv: Content-Type = %q", resp.Headers["Content-Type"])
	}
}

type pageOf[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func TestBreakdowns(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	type row struct {
		Endpoint string  `json:"endpoint"`
		KeyID    *string `json:"api_key_id"`
		Prefix   string  `json:"key_prefix"`
		Calls    int64   `json:"calls"`
		Avg      float64 `json:"avg_latency_ms"`
		Max      int32   `json:"max_latency_ms"`
	}
	authz := token(t, alice, false)
	p1 := decode[pageOf[row]](t, f.get(t, "/v1/usage/endpoints?from=2026-03-01&to=2026-03-14&limit=1", authz))
	if len(p1.Items) != 1 || p1.Items[0].Endpoint != "GET /v1/a" || p1.Items[0].Calls != 140 || p1.Items[0].Avg != 50 || p1.Items[0].Max != 150 || p1.NextCursor == "" {
		t.Fatalf("endpoints page 1 = %+v", p1)
	}
	p2 := decode[pageOf[row]](t, f.get(t, "/v1/usage/endpoints?from=2026-03-01&to=2026-03-14&limit=1&cursor="+p1.NextCursor, authz))
	if len(p2.Items) != 1 || p2.Items[0].Endpoint != "GET /v1/b" || p2.Items[0].Calls != 70 || p2.NextCursor != "" {
		t.Fatalf("endpoints page 2 = %+v", p2)
	}

	keys := decode[pageOf[row]](t, f.get(t, "/v1/usage/keys?from=2026-03-01&to=2026-03-14", "ApiKey "+f.aliceKey))
	if len(keys.Items) != 2 || keys.Items[0].KeyID == nil || *keys.Items[0].KeyID != f.keyID || keys.Items[0].Calls != 140 ||
		!strings.HasPrefix(keys.Items[0].Prefix, auth.KeyPrefix) || keys.Items[1].KeyID != nil || keys.Items[1].Calls != 70 {
		t.Fatalf("keys = %+v", keys)
	}
	// Bob sees only his own.
	keys = decode[pageOf[row]](t, f.get(t, "/v1/usage/keys?from=2026-03-01&to=2026-03-14", token(t, bob, false)))
	if len(keys.Items) != 1 || keys.Items[0].Calls != 3 {
		t.Fatalf("bob's keys = %+v", keys)
	}
}

func TestPostEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ev := func(id string, status int, extra string) string {
		return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"endpoint":"GET /v1/x","method":"GET","status_code":%d,"latency_ms":5,"occurred_at":"2026-03-15T11:59:00Z"%s}`,
			id, bob, status, extra)
	}
	good := "30000000-0000-4000-8000-000000000001"
	body := `{"events":[` + ev(good, 200, "") + `,` + ev("30000000-0000-4000-8000-000000000002", 700, "") +
		`,{"event_id":"x","status_code":"nope"}]}`
	resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, body))
	wantStatus(t, resp, 202)
	got := decode[struct {
		Accepted, Rejected int
		Results            []eventResult
	}](t, resp)
	wantResults := []eventResult{
		{Index: 0, EventID: good, Status: "accepted"},
		{Index: 1, EventID: "30000000-0000-4000-8000-000000000002", Status: "rejected", Param: "status_code", Detail: "status_code: must be between 100 and 599"},
		{Index: 2, Status: "rejected", Param: "status_code", Detail: "status_code: must be an integer"},
	}
	if got.Accepted != 1 || got.Rejected != 2 {
		t.Errorf("accepted, rejected = %d, %d; want 1, 2", got.Accepted, got.Rejected)
	}
	if d := cmp.Diff(wantResults, got.Results); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if len(f.pub.events) != 1 || f.pub.events[0].UserID != alice || f.pub.events[0].APIKeyID != f.keyID || f.pub.flushes != 1 {
		t.Errorf("published %+v (flushes %d); want one event of alice through her key", f.pub.events, f.pub.flushes)
	}

	many := make([]string, MaxEvents+1)
	for i := range many {
		many[i] = ev(fmt.Sprintf("30000000-0000-4000-8000-%012d", i), 200, "")
	}
	cases := []struct {
		name, body string
		headers    map[string]string
		status     int
		param      string
	}{
		{"too many", `{"events":[` + strings.Join(many, ",") + `]}`, map[string]string{"X-Api-Key": f.aliceKey}, 400, "events"},
		{"too large", `{"events":[` + ev(good, 200, `,"pad":"`+strings.Repeat("x", MaxEventsBytes)+`"`) + `]}`, map[string]string{"X-Api-Key": f.aliceKey}, 413, ""},
		{"empty", `{"events":[]}`, map[string]string{"X-Api-Key": f.aliceKey}, 400, "events"},
		{"not json", `{"events":`, map[string]string{"X-Api-Key": f.aliceKey}, 400, "body"},
		{"jwt is not an api key", `{"events":[]}`, map[string]string{"Authorization": token(t, alice, false)}, 401, ""},
		{"no credentials", `{"events":[]}`, nil, 401, ""},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.do(t, request("POST", "/v1/events", tt.headers, tt.body))
			wantStatus(t, resp, tt.status)
			if p := decode[problem](t, resp); p.Param != tt.param {
				t.Errorf("param = %q; want %q", p.Param, tt.param)
			}
		})
	}

	f.h = &Handler{Usage: f.h.Usage, Admin: f.h.Admin, Auth: f.h.Auth, Now: f.h.Now}
	resp = f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, body))
	wantStatus(t, resp, 503)
}

func TestLimitsCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.limits.d = usage.Decision{Allowed: false, Reason: usage.CodeRateLimited, Limit: 100, Remaining: 0,
		Reset: 1500 * time.Millisecond, RetryAfter: 200 * time.Millisecond, RatePerSecond: 50,
		Quota: usage.QuotaStatus{Period: usage.Period{Start: testNow.AddDate(0, 0, -5), End: testNow.AddDate(0, 0, 25)}, Included: 50, Used: 87}}
	resp := f.do(t, request("POST", "/v1/limits/check", map[string]string{"X-Api-Key": f.aliceKey}, `{"cost":3}`))
	wantStatus(t, resp, 200)
	if f.limits.cost != 3 || f.limits.got[0].UserID != alice || f.limits.got[0].APIKeyID != f.keyID {
		t.Errorf("checked %+v cost %d", f.limits.got, f.limits.cost)
	}
	if resp.Headers["Retry-After"] != "1" || resp.Headers["X-RateLimit-Reset"] != "2" || resp.Headers["RateLimit"] != `"burst";r=0;t=2, "quota";r=0;t=2160000` {
		t.Errorf("headers = %v", resp.Headers)
	}
	got := decode[map[string]any](t, resp)
	if got["allowed"] != false || got["reason"] != "rate_limited" {
		t.Errorf("decision = %v", got)
	}
	// No body means cost 1; a JWT works too.
	wantStatus(t, f.do(t, request("POST", "/v1/limits/check", map[string]string{"Authorization": token(t, bob, false)}, "")), 200)
	if f.limits.cost != 1 {
		t.Errorf("cost = %d; want 1", f.limits.cost)
	}
	resp = f.do(t, request("POST", "/v1/limits/check", map[string]string{"X-Api-Key": f.aliceKey}, `{"cost":0}`))
	wantStatus(t, resp, 400)
	if p := decode[problem](t, resp); p.Param != "cost" {
		t.Errorf("param = %q; want cost", p.Param)
	}
	f.h = &Handler{Usage: f.h.Usage, Admin: f.h.Admin, Auth: f.h.Auth, Now: f.h.Now}
	wantStatus(t, f.do(t, request("POST", "/v1/limits/check", map[string]string{"X-Api-Key": f.aliceKey}, "")), 503)
}

func TestAdminSummary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	resp := f.get(t, "/v1/admin/summary?from=2026-02-01&to=2026-03-15", token(t, operator, true))
	wantStatus(t, resp, 200)
	got := decode[map[string]any](t, resp)
	// alice: 13 closed days × 15 + 20 (dirty Mar 14) + 7 (today) = 222;
	// bob: 3. Errors: alice 13 × 2 + 2 + 1 = 29.
	want := map[string]any{
		"from": "2026-02-01", "to": "2026-03-15",
		"calls": 225.0, "errors_4xx": 15.0, "errors_5xx": 14.0, "active_users": 2.0, "error_rate": 29.0 / 225,
		"calls_by_plan": map[string]any{"pro": 222.0, "free": 3.0},
		"overage":       []any{map[string]any{"currency": "usd", "billed": 500.0, "pending": 300.0}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("summary (-want +got):\n%s", d)
	}
}

func TestTopUsers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	type top struct {
		UserID  string `json:"user_id"`
		PlanID  string `json:"plan_id"`
		Calls   int64  `json:"calls"`
		Overage int64  `json:"overage"`
	}
	admin := token(t, operator, true)
	tests := []struct {
		query string
		want  []top
	}{
		{"by=calls", []top{{alice, "pro", 222, 0}, {bob, "free", 3, 0}}},
		{"by=calls&limit=1", []top{{alice, "pro", 222, 0}}},
		{"by=errors&limit=1", []top{{alice, "pro", 222, 0}}},
		{"by=overage", []top{{alice, "pro", 222, 500}, {charlie, "free", 0, 300}}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp := f.get(t, "/v1/admin/top-users?from=2026-02-01&to=2026-03-15&"+tt.query, admin)
			wantStatus(t, resp, 200)
			got := decode[struct{ Items []top }](t, resp)
			if d := cmp.Diff(tt.want, got.Items); d != "" {
				t.Errorf("top users (-want +got):\n%s", d)
			}
		})
	}
}

func TestAdminUserUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// As API Gateway sends it: the matched route key and path parameters.
	req := request("GET", "/v1/admin/users/"+alice+"/usage", map[string]string{"Authorization": token(t, operator, true)}, "")
	req.RouteKey = "GET /v1/admin/users/{id}/usage"
	req.PathParameters = map[string]string{"id": alice}
	resp := f.do(t, req)
	wantStatus(t, resp, 200)
	if got := decode[map[string]any](t, resp); got["user_id"] != alice || got["used"] != 87.0 {
		t.Errorf("admin view of alice = %v", got)
	}
	// The same as what alice sees.
	if mine := f.get(t, "/v1/usage", token(t, alice, false)); mine.Body != resp.Body {
		t.Errorf("admin view %s differs from alice's %s", resp.Body, mine.Body)
	}
}

func TestPutPlan(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := token(t, operator, true)
	put := func(user, body string) events.APIGatewayV2HTTPResponse {
		return f.do(t, request("PUT", "/v1/admin/users/"+user+"/plan", map[string]string{"Authorization": admin}, body))
	}
	resp := put(bob, `{"plan_id":"enterprise","overrides":{"burst":5}}`)
	wantStatus(t, resp, 200)
	sub := decode[usage.Subscription](t, resp)
	if sub.PlanID != "enterprise" || sub.Effective.Burst != 5 || sub.Effective.IncludedCalls != 10_000_000 || !sub.PeriodAnchor.Equal(usage.Day(testNow)) {
		t.Errorf("subscription = %+v", sub)
	}
	wantStatus(t, put(bob, `{"plan_id":"pro"}`), 200)

	rows, err := f.db.Pool.Query(context.Background(), `SELECT who, at, old->>'plan_id', new->>'plan_id', (new->>'burst')::int
		FROM eco_plan_audit WHERE user_id = $1 ORDER BY audit_id`, bob)
	if err != nil {
		t.Fatal(err)
	}
	type audit struct {
		Who      string
		At       time.Time
		Old, New *string
		Burst    *int
	}
	var got []audit
	for rows.Next() {
		var a audit
		if err := rows.Scan(&a.Who, &a.At, &a.Old, &a.New, &a.Burst); err != nil {
			t.Fatal(err)
		}
		a.At = a.At.UTC()
		got = append(got, a)
	}
	s := func(v string) *string { return &v }
	five := 5
	want := []audit{{operator, testNow, nil, s("enterprise"), &five}, {operator, testNow, s("enterprise"), s("pro"), nil}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("audit (-want +got):\n%s", d)
	}
	// bob now sees the new plan.
	if u := decode[map[string]any](t, f.get(t, "/v1/usage", token(t, bob, false))); u["plan_id"] != "pro" {
		t.Errorf("bob's plan = %v", u["plan_id"])
	}

	for _, tt := range []struct{ name, body, param string }{
		{"unknown plan", `{"plan_id":"gold"}`, "plan_id"},
		{"no plan", `{}`, "plan_id"},
		{"bad override", `{"plan_id":"pro","overrides":{"burst":0}}`, "burst"},
		{"unknown field", `{"plan_id":"pro","colour":"red"}`, "colour"},
		{"wrong type", `{"plan_id":7}`, "plan_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := put(bob, tt.body)
			wantStatus(t, resp, 400)
			if p := decode[problem](t, resp); p.Param != tt.param || len(p.InvalidParams) != 1 || p.InvalidParams[0].Name != tt.param {
				t.Errorf("problem = %+v; want param %q", p, tt.param)
			}
		})
	}
	var n int
	_ = f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM eco_plan_audit`).Scan(&n)
	if n != 2 {
		t.Errorf("%d audit rows after refused changes; want 2", n)
	}
}

func TestQueueAggregation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := token(t, operator, true)
	resp := f.do(t, request("POST", "/v1/admin/aggregate", map[string]string{"Authorization": admin}, `{"from":"2026-03-10","to":"2026-03-14"}`))
	wantStatus(t, resp, 202)
	if got := decode[map[string]any](t, resp); got["days_queued"] != 5.0 {
		t.Errorf("response = %v", got)
	}
	var days []time.Time
	rows, _ := f.db.Pool.Query(context.Background(), `SELECT day FROM eco_usage_dirty_days ORDER BY day`)
	for rows.Next() {
		var d time.Time
		_ = rows.Scan(&d)
		days = append(days, d)
	}
	if len(days) != 5 || !days[0].Equal(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("dirty days = %v", days)
	}
	for _, tt := range []struct{ name, body, param string }{
		{"future", `{"from":"2026-03-10","to":"2026-03-16"}`, "to"},
		{"reversed", `{"from":"2026-03-10","to":"2026-03-01"}`, "to"},
		{"too long", `{"from":"2025-01-01","to":"2026-03-01"}`, "to"},
		{"bad date", `{"from":"2026-3-1","to":"2026-03-01"}`, "from"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.do(t, request("POST", "/v1/admin/aggregate", map[string]string{"Authorization": admin}, tt.body))
			wantStatus(t, resp, 400)
			if p := decode[problem](t, resp); p.Param != tt.param {
				t.Errorf("param = %q; want %q", p.Param, tt.param)
			}
		})
	}
}

func TestRejected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := token(t, operator, true)
	type rej struct {
		MessageID string `json:"message_id"`
		Reason    string `json:"reason"`
	}
	p1 := decode[pageOf[rej]](t, f.get(t, "/v1/admin/rejected?limit=2", admin))
	if len(p1.Items) != 2 || p1.Items[0].MessageID != "m3" || p1.Items[1].MessageID != "m2" || p1.NextCursor == "" {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2 := decode[pageOf[rej]](t, f.get(t, "/v1/admin/rejected?limit=2&cursor="+p1.NextCursor, admin))
	if len(p2.Items) != 1 || p2.Items[0].MessageID != "m1" || p2.Items[0].Reason != "not JSON" || p2.NextCursor != "" {
		t.Fatalf("page 2 = %+v", p2)
	}
}

func TestOverageLedger(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := token(t, operator, true)
	type entry struct {
		UserID string `json:"user_id"`
		Amount int64  `json:"amount"`
		Status string `json:"status"`
	}
	p1 := decode[pageOf[entry]](t, f.get(t, "/v1/admin/overage?period=2026-03&limit=1", admin))
	if len(p1.Items) != 1 || p1.Items[0].UserID != charlie || p1.NextCursor == "" {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2 := decode[pageOf[entry]](t, f.get(t, "/v1/admin/overage?period=2026-03&limit=1&cursor="+p1.NextCursor, admin))
	if len(p2.Items) != 1 || p2.Items[0].UserID != dave || p2.Items[0].Status != "failed" || p2.NextCursor != "" {
		t.Fatalf("page 2 = %+v", p2)
	}
	feb := decode[pageOf[entry]](t, f.get(t, "/v1/admin/overage?period=2026-02", admin))
	if len(feb.Items) != 1 || feb.Items[0].UserID != alice || feb.Items[0].Amount != 500 {
		t.Fatalf("february = %+v", feb)
	}
	// Default: the current month.
	if cur := decode[pageOf[entry]](t, f.get(t, "/v1/admin/overage", admin)); len(cur.Items) != 2 {
		t.Fatalf("current month = %+v", cur)
	}
}

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
	// A user asking the admin route for another user's data gets 403, never data.
	for _, target := range []string{"/v1/admin/users/" + bob + "/usage", "/v1/admin/top-users", "/v1/admin/rejected", "/v1/admin/overage"} {
		resp := f.get(t, target, token(t, alice, false))
		wantStatus(t, resp, 403)
	}
	resp := f.do(t, request("PUT", "/v1/admin/users/"+bob+"/plan", map[string]string{"X-Api-Key": f.aliceKey}, `{"plan_id":"enterprise"}`))
	wantStatus(t, resp, 403)
	resp = f.do(t, request("POST", "/v1/admin/aggregate", map[string]string{"Authorization": token(t, alice, false)}, `{"from":"2026-03-01","to":"2026-03-01"}`))
	wantStatus(t, resp, 403)
}

func TestParameterValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	user, admin := token(t, alice, false), token(t, operator, true)
	cases := []struct {
		target, authz, param string
	}{
		{"/v1/usage/daily?from=2026-13-01", user, "from"},
		{"/v1/usage/daily?from=2026-3-1", user, "from"},
		{"/v1/usage/daily?to=yesterday", user, "to"},
		{"/v1/usage/daily?from=2026-03-10&to=2026-03-01", user, "from"},
		{"/v1/usage/daily?from=2025-01-01&to=2026-03-01", user, "from"},
		{"/v1/usage/daily?to=2026-04-01", user, "to"},
		{"/v1/usage/endpoints?limit=0", user, "limit"},
		{"/v1/usage/endpoints?limit=abc", user, "limit"},
		{"/v1/usage/endpoints?limit=1001", user, "limit"},
		{"/v1/usage/keys?cursor=!!!", user, "cursor"},
		{"/v1/usage/export?format=xml", user, "format"},
		{"/v1/admin/summary?from=x", admin, "from"},
		{"/v1/admin/top-users?by=latency", admin, "by"},
		{"/v1/admin/top-users?limit=101", admin, "limit"},
		{"/v1/admin/users/not-a-uuid/usage", admin, "id"},
		{"/v1/admin/rejected?cursor=eyJiIjotMX0", admin, "cursor"},
		{"/v1/admin/overage?period=2026-3", admin, "period"},
		{"/v1/admin/overage?cursor=eyJ1IjoieCJ9", admin, "cursor"},
	}
	for _, tt := range cases {
		t.Run(tt.target, func(t *testing.T) {
			resp := f.get(t, tt.target, tt.authz)
			wantStatus(t, resp, 400)
			if ct := resp.Headers["Content-Type"]; ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			p := decode[problem](t, resp)
			if p.Param != tt.param || p.Status != 400 || p.Type != "urn:nexus:problem:invalid" || p.Title != "Bad Request" ||
				len(p.InvalidParams) != 1 || p.InvalidParams[0].Name != tt.param || !strings.HasPrefix(p.Detail, tt.param) {
				t.Errorf("problem = %+v; want one naming %q", p, tt.param)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	resp, _ := f.h.Handle(context.Background(), request("GET", "/v1/nothing", nil, ""))
	wantStatus(t, resp, 404)
	resp, _ = f.h.Handle(context.Background(), request("DELETE", "/v1/usage", nil, ""))
	wantStatus(t, resp, 405)
	if resp.Headers["Allow"] != "GET" {
		t.Errorf("Allow = %q", resp.Headers["Allow"])
	}
}
