package main

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
)

// The tests of this file and db_admin_test.go run the routes over
// PostgreSQL (skipped without it, failed under CI=true): they prove the
// wiring of handler and store, and the numbers the SQL computes from a
// seeded database, validated against the OpenAPI document.

// dbFixture is a handler over a seeded database.
type dbFixture struct {
	h        *Handler
	db       *postgres.DB
	aliceKey string // alice's API key
	keyID    string
	bobKey   string
}

func newDBFixture(t *testing.T) *dbFixture {
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
	store := postgres.NewAnalyticsStore(db)
	overage, err := billing.New(billing.Config{Ledger: postgres.NewLedgerStore(db)})
	if err != nil {
		t.Fatal(err)
	}
	return &dbFixture{db: db, aliceKey: secret, keyID: k.ID, bobKey: bobSecret,
		h: &Handler{Usage: store, Admin: store, Overage: overage,
			Auth: &auth.Authenticator{Keys: keys, JWT: verifier}, Now: func() time.Time { return testNow }}}
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
	INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at)
	VALUES ('`+alice+`', '2026-01-10T00:00:00Z', 'pro', '{"included_calls": 50, "overage_unit_size": 10}', 'start', '2026-01-10T00:00:00Z');

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

func (f *dbFixture) do(t *testing.T, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	return serve(t, f.h, req)
}

func (f *dbFixture) get(t *testing.T, target, authz string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	return f.do(t, request("GET", target, map[string]string{"Authorization": authz}, ""))
}

func TestDBUsageSummary(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	for _, authz := range []string{token(t, alice, false), "ApiKey " + f.aliceKey} {
		resp := f.get(t, "/v1/usage?user_id="+bob, authz) // the query cannot pick another user
		wantStatus(t, resp, 200)
		got := decode[map[string]any](t, resp)
		// Period Mar 10 – Apr 10: 4 × 15 + 20 + 7 = 87 calls; 37 over 50
		// included is 4 units of 10 at 50 cents. At Mar 15 12:00, 5.5 of
		// 31 days have passed: 87 × 25.5 / 5.5 = 403 calls more, 490 in
		// all, 44 units. February's period was billed 500.
		charge := func(c map[string]any) [3]any { return [3]any{c["used_calls"], c["billable_calls"], c["amount"]} }
		got["overage_to_date"], got["projected"] = charge(got["overage_to_date"].(map[string]any)), charge(got["projected"].(map[string]any))
		want := map[string]any{
			"user_id": alice, "plan_id": "pro", "plan_name": "Pro", "hard_limit": false,
			"period":   map[string]any{"start": "2026-03-10T00:00:00Z", "end": "2026-04-10T00:00:00Z"},
			"included": 50.0, "used": 87.0, "remaining": 0.0,
			"overage_to_date": [3]any{87.0, 37.0, 200.0},
			"projected":       [3]any{490.0, 440.0, 2200.0},
			"billed": []any{map[string]any{"period": map[string]any{"start": "2026-02-10T00:00:00Z", "end": "2026-03-10T00:00:00Z"},
				"amount": 500.0, "currency": "usd", "status": "billed"}},
			"rate_limit":   map[string]any{"rate_per_second": 50.0, "burst": 100.0},
			"last_updated": "2026-03-15T11:00:00Z",
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

func TestDBDailyUsage(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
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
		// A closed day without usage (no rollup, no counters) is not live.
		if d.Calls == 0 && d.Day < "2026-03-14" && d.Live {
			t.Errorf("bob's empty day %s reads as live", d.Day)
		}
	}
	if total != 3 {
		t.Errorf("bob's calls over 30 days = %d; want 3 (only his own)", total)
	}
}

func TestDBExport(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
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

func TestDBBreakdowns(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
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

	// A forged cursor whose key no row can have (a NUL, which PostgreSQL's
	// text refuses) is the caller's mistake, not the server's.
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"c":1,"k":"GET /v1/a\u0000"}`))
	for _, route := range []string{"endpoints", "keys"} {
		resp := f.get(t, "/v1/usage/"+route+"?cursor="+forged, authz)
		if p := decode[problem](t, resp); resp.StatusCode != 400 || p.Param != "cursor" {
			t.Errorf("%s with a forged cursor = %d %s; want 400 naming cursor", route, resp.StatusCode, resp.Body)
		}
	}
}
