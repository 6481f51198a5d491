package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/postgres"
)

// TestDBNotifyRoutes drives the notification routes over PostgreSQL, each
// answer checked against the OpenAPI document: a user sees its own rules
// and its plan's, makes, changes and deletes its own, cannot touch its
// plan's or another user's; an admin manages plan rules; endpoints show
// their secret once (creation, rotation) and refuse a private address;
// the delivery log lists a user's deliveries only, and replay finds only
// its own.
func TestDBNotifyRoutes(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	store := postgres.NewNotifyStore(f.db)
	f.h.Notify = &notify.Service{Store: store, Now: func() time.Time { return testNow }}
	ctx := context.Background()
	user, admin, other := token(t, alice, false), token(t, operator, true), token(t, bob, false)
	call := func(method, target, authz, body string, want int) map[string]any {
		t.Helper()
		resp := f.do(t, request(method, target, map[string]string{"Authorization": authz}, body))
		if resp.StatusCode != want {
			t.Fatalf("%s %s = %d %s; want %d", method, target, resp.StatusCode, resp.Body, want)
		}
		var v map[string]any
		if resp.Body != "" {
			if err := json.Unmarshal([]byte(resp.Body), &v); err != nil {
				t.Fatal(err)
			}
		}
		return v
	}
	items := func(v map[string]any) []map[string]any {
		var out []map[string]any
		for _, x := range v["items"].([]any) {
			out = append(out, x.(map[string]any))
		}
		return out
	}

	// Alice (pro) sees pro's two default rules.
	rules := items(call("GET", "/v1/notify/rules", user, "", 200))
	if len(rules) != 2 || rules[0]["plan_id"] != "pro" || rules[0]["scope"] != "plan" {
		t.Fatalf("alice's rules %v; want pro's 80 %% and 100 %%", rules)
	}
	planRule := rules[0]["id"].(string)
	call("PATCH", "/v1/notify/rules/"+planRule, user, `{"value": 50}`, 403)
	own := call("POST", "/v1/notify/rules", user, `{"kind": "overage", "value": 500, "description": "5 dollars"}`, 201)
	if own["user_id"] != alice || own["event_type"] != notify.EventOverage || own["enabled"] != true {
		t.Errorf("created %v", own)
	}
	call("POST", "/v1/notify/rules", user, `{"kind": "overage", "value": 500}`, 409)
	call("POST", "/v1/notify/rules", user, `{"kind": "percent", "value": 0}`, 400)
	call("POST", "/v1/notify/rules", user, `{"kind": "percent", "value": 90, "plan_id": "pro"}`, 400)
	id := own["id"].(string)
	if got := call("PATCH", "/v1/notify/rules/"+id, user, `{"enabled": false}`, 200); got["enabled"] != false {
		t.Errorf("disabled: %v", got)
	}
	call("PATCH", "/v1/notify/rules/"+id, other, `{"enabled": true}`, 404)
	call("DELETE", "/v1/notify/rules/"+id, other, "", 404)
	call("DELETE", "/v1/notify/rules/"+id, user, "", 204)
	// An admin changes a plan's rules and any user's.
	call("POST", "/v1/admin/notify/rules", admin, `{"plan_id": "free", "kind": "quota"}`, 201)
	call("POST", "/v1/admin/notify/rules", admin, `{"user_id": "`+bob+`", "kind": "calls", "value": 5}`, 201)
	call("POST", "/v1/admin/notify/rules", admin, `{"plan_id": "nope", "kind": "calls", "value": 5}`, 400)
	if got := items(call("GET", "/v1/admin/notify/rules?plan_id=free", admin, "", 200)); len(got) != 3 {
		t.Errorf("free's rules %v; want 80 %%, 100 %%, quota", got)
	}
	if got := items(call("GET", "/v1/notify/rules", other, "", 200)); len(got) != 4 {
		t.Errorf("bob's rules %v; want free's three and his own", got)
	}
	call("GET", "/v1/admin/notify/rules", user, "", 403)

	// Endpoints: the secret once; private addresses refused.
	call("POST", "/v1/webhooks/endpoints", user, `{"url": "https://10.0.0.1/hook"}`, 400)
	call("POST", "/v1/webhooks/endpoints", user, `{"url": "https://[::1%25lo]/hook"}`, 400)
	call("POST", "/v1/webhooks/endpoints", user, `{"url": "http://hooks.example.com/"}`, 400)
	ep := call("POST", "/v1/webhooks/endpoints", user, `{"url": "https://hooks.example.com/nexus", "event_types": ["usage.overage.reached"]}`, 201)
	secret, _ := ep["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || ep["user_id"] != alice {
		t.Fatalf("created endpoint %v; want alice's, with its secret", ep)
	}
	epID := ep["id"].(string)
	listed := items(call("GET", "/v1/webhooks/endpoints", user, "", 200))
	if len(listed) != 1 || listed[0]["secret"] != nil {
		t.Errorf("listed %v; want one endpoint, no secret", listed)
	}
	if got := items(call("GET", "/v1/webhooks/endpoints", other, "", 200)); len(got) != 0 {
		t.Errorf("bob sees %v", got)
	}
	rotated := call("POST", "/v1/webhooks/endpoints/"+epID+"/rotate", user, `{"overlap_seconds": 3600}`, 200)
	if rotated["secret"] == secret || rotated["previous_secret_expires_at"] != testNow.Add(time.Hour).Format(time.RFC3339) {
		t.Errorf("rotated %v; want a new secret, the old one until an hour from now", rotated)
	}
	call("PATCH", "/v1/webhooks/endpoints/"+epID, user, `{"event_types": ["usage.nope"]}`, 400)
	if got := call("PATCH", "/v1/webhooks/endpoints/"+epID, user, `{"enabled": false}`, 200); got["enabled"] != false || got["disabled_reason"] != "disabled by its owner" {
		t.Errorf("disabled endpoint %v", got)
	}
	call("PATCH", "/v1/webhooks/endpoints/"+epID, other, `{"enabled": true}`, 404)
	platform := call("POST", "/v1/admin/webhooks/endpoints", admin, `{"url": "https://ops.example.com/usage"}`, 201)
	if platform["user_id"] != nil {
		t.Errorf("platform endpoint %v; want no user", platform)
	}
	if got := items(call("GET", "/v1/admin/webhooks/endpoints?platform=true", admin, "", 200)); len(got) != 1 {
		t.Errorf("platform endpoints %v", got)
	}

	// Deliveries: one event delivered to both endpoints, failed.
	event := notify.NewID()
	if _, err := f.db.Pool.Exec(ctx, `INSERT INTO eco_notify_outbox (event_id, event_type, user_id, data, created_at, fanned_out_at)
		VALUES ($1::uuid, 'usage.overage.reached', $2::uuid, '{}', $3, $3)`, event, alice, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Pool.Exec(ctx, `INSERT INTO eco_webhook_deliveries (delivery_id, event_id, endpoint_id, user_id, status, attempts,
			created_at, updated_at)
		SELECT gen_random_uuid(), $1::uuid, endpoint_id, $2::uuid, 'failed', 8, $3, $3 FROM eco_webhook_endpoints`, event, alice, testNow); err != nil {
		t.Fatal(err)
	}
	mine := items(call("GET", "/v1/webhooks/deliveries", user, "", 200))
	if len(mine) != 1 || mine[0]["endpoint_id"] != epID {
		t.Fatalf("alice's deliveries %v; want the one to her endpoint", mine)
	}
	if got := items(call("GET", "/v1/admin/webhooks/deliveries?status=failed&limit=1", admin, "", 200)); len(got) != 1 {
		t.Errorf("admin's page of 1: %v", got)
	}
	call("GET", "/v1/webhooks/deliveries?status=lost", user, "", 400)
	call("POST", "/v1/webhooks/replay", other, `{"delivery_id": "`+mine[0]["id"].(string)+`"}`, 404)
	call("POST", "/v1/webhooks/replay", user, `{"endpoint_id": "`+epID+`"}`, 400)
	if got := call("POST", "/v1/webhooks/replay", user, `{"delivery_id": "`+mine[0]["id"].(string)+`"}`, 202); got["replayed"] != 1.0 {
		t.Errorf("replay %v", got)
	}
	call("POST", "/v1/webhooks/replay", user, `{"delivery_id": "`+mine[0]["id"].(string)+`"}`, 409)
	if got := call("POST", "/v1/admin/webhooks/replay", admin, `{"endpoint_id": "`+platform["id"].(string)+`", "since": "2026-03-01T00:00:00Z"}`, 202); got["replayed"] != 1.0 {
		t.Errorf("platform replay %v", got)
	}
	call("DELETE", "/v1/webhooks/endpoints/"+epID, user, "", 204)
	if got := items(call("GET", "/v1/webhooks/deliveries", user, "", 200)); len(got) != 0 {
		t.Errorf("deliveries after the endpoint's deletion %v", got)
	}
}

// TestDBNotifyBoundsUnderConcurrency: a user's rules and endpoints stay
// within notify.MaxRules and notify.MaxEndpoints when the creations
// arrive at once, each past the bound refused with a 409.
func TestDBNotifyBoundsUnderConcurrency(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	f.h.Notify = &notify.Service{Store: postgres.NewNotifyStore(f.db), Now: func() time.Time { return testNow }}
	authz := map[string]string{"Authorization": token(t, alice, false)}
	const n = 40
	statuses := make(chan int, 2*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			resp, _ := f.h.Handle(context.Background(), request("POST", "/v1/notify/rules", authz, fmt.Sprintf(`{"kind": "calls", "value": %d}`, i+1)))
			statuses <- resp.StatusCode
		}()
		go func() {
			defer wg.Done()
			resp, _ := f.h.Handle(context.Background(), request("POST", "/v1/webhooks/endpoints", authz, fmt.Sprintf(`{"url": "https://h%d.example.com/"}`, i)))
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 201 && s != 409 {
			t.Errorf("a creation answered %d; want 201 or 409", s)
		}
	}
	var rules, endpoints int
	if err := f.db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM eco_notify_rules WHERE user_id = $1),
		(SELECT count(*) FROM eco_webhook_endpoints WHERE user_id = $1)`, alice).Scan(&rules, &endpoints); err != nil {
		t.Fatal(err)
	}
	if rules != notify.MaxRules || endpoints != notify.MaxEndpoints {
		t.Errorf("alice has %d rules and %d endpoints; want %d and %d", rules, endpoints, notify.MaxRules, notify.MaxEndpoints)
	}
}
