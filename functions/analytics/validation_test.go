package main

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/notify"
)

func TestParameterValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.noStore(t)
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
		{"/v1/admin/users/not-a-uuid/audit", admin, "id"},
		{"/v1/admin/users/" + bob + "/audit?cursor=eyJiIjotMX0", admin, "cursor"},
		{"/v1/admin/users/" + bob + "/audit?limit=0", admin, "limit"},
		{"/v1/admin/users/" + bob + "/daily?from=x", admin, "from"},
		{"/v1/admin/users/" + bob + "/keys?limit=1001", admin, "limit"},
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

// TestBodyValidation: every JSON body route refuses a bad body before any
// store is called, with a message in our own words naming the field.
func TestBodyValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.noStore(t)
	admin := map[string]string{"Authorization": token(t, operator, true)}
	key := map[string]string{"X-Api-Key": f.aliceKey}
	user := map[string]string{"Authorization": token(t, alice, false)}
	plan := "/v1/admin/users/" + bob + "/plan"
	// No store: a refused body never reaches it.
	f.h.Notify = &notify.Service{Now: func() time.Time { return testNow }}
	tests := []struct {
		method, target string
		headers        map[string]string
		body           string
		param, detail  string
	}{
		{"PUT", plan, admin, `{"plan_id":"pro",}`, "body", "body: invalid JSON at byte 18"},
		{"PUT", plan, admin, `{"plan_id":"pro"`, "body", "body: invalid JSON at byte 16: it ends too early"},
		{"PUT", plan, admin, ``, "body", "body: is empty"},
		{"PUT", plan, admin, `{"plan_id":7}`, "plan_id", "plan_id: must be a string"},
		{"PUT", plan, admin, `{"plan_id":"pro","overrides":{"burst":"5"}}`, "overrides.burst", "overrides.burst: must be an integer"},
		{"PUT", plan, admin, `{"plan_id":"pro","overrides":{"included_calls":1.5}}`, "overrides.included_calls", "overrides.included_calls: must be an integer in range"},
		{"PUT", plan, admin, `{"plan_id":"pro","overrides":{"hard_limit":1}}`, "overrides.hard_limit", "overrides.hard_limit: must be a boolean"},
		{"PUT", plan, admin, `{"plan_id":"pro","overrides":[]}`, "overrides", "overrides: must be an object"},
		{"PUT", plan, admin, `{"plan_id":"pro","colour":"red"}`, "colour", "colour: is not a field of this request"},
		{"PUT", plan, admin, `{"plan_id":"pro"} {}`, "body", "body: must hold one JSON value; more follows at byte 19"},
		{"PUT", plan, admin, `["pro"]`, "body", "body: must be an object"},
		{"POST", "/v1/admin/aggregate", admin, `{"from":"2026-03-10","to":"2026-03-16"}`, "to", "to: must not be in the future"},
		{"POST", "/v1/admin/aggregate", admin, `{"from":"2026-03-10","to":"2026-03-01"}`, "to", "to: must not be before from"},
		{"POST", "/v1/admin/aggregate", admin, `{"from":"2025-01-01","to":"2026-03-01"}`, "to", "to: range longer than 366 days"},
		{"POST", "/v1/admin/aggregate", admin, `{"from":"2026-3-1","to":"2026-03-01"}`, "from", "from: must be a date YYYY-MM-DD"},
		{"POST", "/v1/admin/aggregate", admin, `{"to":"2026-03-01"}`, "from", "from: must be a date YYYY-MM-DD"},
		{"POST", "/v1/admin/aggregate", admin, `{"from":20260301,"to":"2026-03-01"}`, "from", "from: must be a string"},
		{"POST", "/v1/limits/check", key, `{"cost":0}`, "cost", "cost: must be between 1 and 1000000"},
		{"POST", "/v1/limits/check", key, `{"cost":"3"}`, "cost", "cost: must be an integer"},
		{"POST", "/v1/limits/check", key, `{"cost":1e30}`, "cost", "cost: must be an integer in range"},
		{"POST", "/v1/limits/check", key, `[]`, "body", "body: must be an object"},
		{"POST", "/v1/limits/check", key, `{"cost":3,"units":1}`, "units", "units: is not a field of this request"},
		{"POST", "/v1/limits/check", key, `{cost:3}`, "body", "body: invalid JSON at byte 2"},
		{"POST", "/v1/events", key, `{"events":`, "body", "body: invalid JSON at byte 10: it ends too early"},
		{"POST", "/v1/events", key, `{"events":{}}`, "events", "events: must be an array"},
		{"POST", "/v1/events", key, `{"events":[]}`, "events", "events: must hold at least one event"},
		{"POST", "/v1/events", key, `{}`, "events", "events: is required"},
		// Two lists would leave the first unanswered: the decoder keeps the
		// last, and the results would say nothing of the other.
		{"POST", "/v1/events", key, `{"events":[{}],"Events":[{}]}`, "events", "events: is given twice"},
		{"POST", "/v1/events", key, `"events"`, "body", "body: must be an object"},
		// Fields the body type takes from an embedded struct are named as
		// the body spells them, not by the Go struct they come from.
		{"POST", "/v1/notify/rules", user, `{"kind":"calls","value":1e30}`, "value", "value: must be an integer in range"},
		{"POST", "/v1/admin/notify/rules", admin, `{"plan_id":"pro","kind":"calls","value":"5"}`, "value", "value: must be an integer"},
		{"POST", "/v1/webhooks/endpoints", user, `{"url":5}`, "url", "url: must be a string"},
		{"POST", "/v1/admin/webhooks/endpoints", admin, `{"url":"https://ops.example.com/","enabled":"yes"}`, "enabled", "enabled: must be a boolean"},
	}
	// A body over its bound is a 413 on every route, naming the body.
	for _, tt := range []struct{ method, target, headers, body string }{
		{"PUT", plan, "admin", `{"plan_id":"` + strings.Repeat("x", maxBodyBytes) + `"}`},
		{"POST", "/v1/limits/check", "key", `{"cost":` + strings.Repeat(" ", maxBodyBytes) + `1}`},
		{"POST", "/v1/events", "key", `{"events":[` + strings.Repeat(" ", MaxEventsBytes) + `]}`},
	} {
		hdr := map[string]map[string]string{"admin": admin, "key": key}[tt.headers]
		resp := f.do(t, request(tt.method, tt.target, hdr, tt.body))
		wantStatus(t, resp, 413)
		if p := decode[problem](t, resp); p.Param != "body" || p.Type != "urn:nexus:problem:too_large" || !strings.HasPrefix(p.Detail, "body: larger than") {
			t.Errorf("%s %s: problem %+v; want too_large naming body", tt.method, tt.target, p)
		}
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target+" "+tt.body[:min(len(tt.body), 40)], func(t *testing.T) {
			resp := f.do(t, request(tt.method, tt.target, tt.headers, tt.body))
			wantStatus(t, resp, 400)
			p := decode[problem](t, resp)
			if p.Param != tt.param || p.Detail != tt.detail || len(p.InvalidParams) != 1 || p.InvalidParams[0].Name != tt.param {
				t.Errorf("problem = %+v; want param %q, detail %q", p, tt.param, tt.detail)
			}
			for _, leak := range []string{"json:", "Go ", "struct", "int64", "unmarshal"} {
				if strings.Contains(p.Detail, leak) {
					t.Errorf("detail %q shows %q", p.Detail, leak)
				}
			}
		})
	}
	// A body API Gateway encoded as base64 is decoded first; one that is
	// not base64 is refused as such.
	req := request("POST", "/v1/limits/check", key, "!!!")
	req.IsBase64Encoded = true
	if p := decode[problem](t, f.do(t, req)); p.Detail != "body: is not valid base64" {
		t.Errorf("bad base64: %+v", p)
	}
	req = request("POST", "/v1/limits/check", key, base64.StdEncoding.EncodeToString([]byte(`{"cost":"x"}`)))
	req.IsBase64Encoded = true
	if p := decode[problem](t, f.do(t, req)); p.Detail != "cost: must be an integer" {
		t.Errorf("base64 body: %+v", p)
	}
}
