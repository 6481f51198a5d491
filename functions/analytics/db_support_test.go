package main

import (
	"encoding/json"
	"testing"
)

// TestDBSupportView: over PostgreSQL, an admin's view of alice's days,
// endpoints and keys is what alice herself gets.
func TestDBSupportView(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	user, admin := token(t, alice, false), token(t, operator, true)
	for _, q := range []string{"daily?from=2026-03-10", "endpoints?from=2026-03-01&to=2026-03-14", "keys?from=2026-03-01&to=2026-03-14&limit=1"} {
		mine := f.get(t, "/v1/usage/"+q, user)
		support := f.get(t, "/v1/admin/users/"+alice+"/"+q, admin)
		wantStatus(t, support, 200)
		if support.Body != mine.Body || len(mine.Body) < 50 {
			t.Errorf("%s: the admin sees\n%s\nalice sees\n%s", q, support.Body, mine.Body)
		}
	}
	// bob's view is bob's: one closed day of 3 calls.
	bob3 := decode[struct{ Items []struct{ Calls int64 } }](t, f.get(t, "/v1/admin/users/"+bob+"/endpoints?from=2026-03-01&to=2026-03-14", admin))
	if len(bob3.Items) != 1 || bob3.Items[0].Calls != 3 {
		t.Errorf("bob's endpoints = %+v; want one of 3 calls", bob3.Items)
	}
}

// TestDBPlanAudit: each plan change is in the user's audit trail, newest
// first, with the admin, the time and the subscription before and after;
// the trail pages, and is the user's own.
func TestDBPlanAudit(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin := token(t, operator, true)
	for _, body := range []string{`{"plan_id":"enterprise","overrides":{"burst":5}}`, `{"plan_id":"pro"}`} {
		wantStatus(t, f.do(t, request("PUT", "/v1/admin/users/"+bob+"/plan", map[string]string{"Authorization": admin}, body)), 200)
	}
	type entry struct {
		ID  int64  `json:"id"`
		Who string `json:"who"`
		At  string `json:"at"`
		Old *struct {
			PlanID string `json:"plan_id"`
			Burst  *int   `json:"burst"`
		} `json:"old"`
		New struct {
			PlanID     string `json:"plan_id"`
			NextPlanID string `json:"next_plan_id"`
			Burst      *int   `json:"burst"`
		} `json:"new"`
		Change string `json:"change"`
	}
	all := decode[pageOf[entry]](t, f.get(t, "/v1/admin/users/"+bob+"/audit", admin))
	if len(all.Items) != 2 || all.NextCursor != "" {
		t.Fatalf("audit = %+v; want two changes", all)
	}
	last, first := all.Items[0], all.Items[1]
	// Enterprise to pro is a downgrade: pro waits for the period's end.
	if last.ID <= first.ID || last.Who != operator || last.At != "2026-03-15T12:00:00Z" || last.Change != "downgrade" ||
		last.Old == nil || last.Old.PlanID != "enterprise" || *last.Old.Burst != 5 || last.New.PlanID != "enterprise" || last.New.NextPlanID != "pro" {
		t.Errorf("newest change = %+v", last)
	}
	if first.Old != nil || first.New.PlanID != "enterprise" || first.Change != "start" {
		t.Errorf("first change = %+v; want from no subscription to enterprise", first)
	}
	p1 := decode[pageOf[entry]](t, f.get(t, "/v1/admin/users/"+bob+"/audit?limit=1", admin))
	p2 := decode[pageOf[entry]](t, f.get(t, "/v1/admin/users/"+bob+"/audit?limit=1&cursor="+p1.NextCursor, admin))
	if len(p1.Items) != 1 || p1.Items[0].ID != last.ID || len(p2.Items) != 1 || p2.Items[0].ID != first.ID || p2.NextCursor != "" {
		t.Errorf("pages %+v, %+v", p1, p2)
	}
	// alice's plan was seeded, never changed through the API.
	var none map[string]json.RawMessage
	if err := decodeInto(f.get(t, "/v1/admin/users/"+alice+"/audit", admin).Body, &none); err != nil || string(none["items"]) != "[]" {
		t.Errorf("alice's trail = %v (%v); want no items", none, err)
	}
}
