package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

func TestTopUsersQuery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got []report.TopUsersFilter
	top := f.admin.TopUsersFn
	f.admin.TopUsersFn = func(ctx context.Context, tf report.TopUsersFilter, now time.Time) ([]report.TopUser, error) {
		got = append(got, tf)
		return top(ctx, tf, now)
	}
	admin := token(t, operator, true)
	last30 := usage.DayRange{From: time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC), To: usage.Day(testNow)}
	for _, q := range []string{"", "?by=errors&limit=1", "?by=overage&from=2026-03-01"} {
		wantStatus(t, f.get(t, "/v1/admin/top-users"+q, admin), 200)
	}
	want := []report.TopUsersFilter{
		{Range: last30, By: report.RankByCalls, Limit: 10},
		{Range: last30, By: report.RankByErrors, Limit: 1},
		{Range: usage.DayRange{From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: usage.Day(testNow)}, By: report.RankByOverage, Limit: 10},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("filters (-want +got):\n%s", d)
	}
}

// TestPutPlanChange: the path names the user and the token the admin, for
// the audit trail; the body cannot say otherwise.
func TestPutPlanChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got report.PlanChange
	put := f.admin.PutPlanFn
	f.admin.PutPlanFn = func(ctx context.Context, c report.PlanChange) (*report.PlanChanged, error) {
		got = c
		return put(ctx, c)
	}
	resp := f.do(t, request("PUT", "/v1/admin/users/"+bob+"/plan", map[string]string{"Authorization": token(t, operator, true)},
		`{"plan_id":"enterprise","overrides":{"burst":5}}`))
	wantStatus(t, resp, 200)
	five := 5
	if d := cmp.Diff(report.PlanChange{UserID: bob, PlanID: "enterprise", Overrides: usage.Overrides{Burst: &five}, Who: operator}, got); d != "" {
		t.Errorf("change (-want +got):\n%s", d)
	}
	if sub := decode[report.PlanChanged](t, resp); sub.UserID != bob || sub.Effective.Burst != 5 || sub.Change != usage.ChangeUpgrade {
		t.Errorf("subscription = %+v", sub)
	}
	// The store's refusal keeps its field.
	f.admin.PutPlanFn = func(context.Context, report.PlanChange) (*report.PlanChanged, error) {
		return nil, usage.FieldErrorf("plan_id", "unknown plan %q", "gold")
	}
	resp = f.do(t, request("PUT", "/v1/admin/users/"+bob+"/plan", map[string]string{"Authorization": token(t, operator, true)}, `{"plan_id":"gold"}`))
	if p := decode[problem](t, resp); resp.StatusCode != 400 || p.Param != "plan_id" || p.Detail != `plan_id: unknown plan "gold"` {
		t.Errorf("unknown plan = %d %+v", resp.StatusCode, p)
	}
}

func TestQueueAggregationRange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got usage.DayRange
	f.admin.QueueAggregationFn = func(_ context.Context, r usage.DayRange) (int, error) { got = r; return r.Len(), nil }
	resp := f.do(t, request("POST", "/v1/admin/aggregate", map[string]string{"Authorization": token(t, operator, true)}, `{"from":"2026-03-10","to":"2026-03-15"}`))
	wantStatus(t, resp, 202)
	if want := (usage.DayRange{From: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), To: usage.Day(testNow)}); got != want {
		t.Errorf("range = %v; want %v (today included)", got, want)
	}
	if body := decode[map[string]any](t, resp); body["days_queued"] != 6.0 || body["from"] != "2026-03-10" {
		t.Errorf("body = %v", body)
	}
}

func TestListCursors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := token(t, operator, true)
	var befores []int64
	rejected := f.admin.RejectedEventsFn
	f.admin.RejectedEventsFn = func(ctx context.Context, before int64, limit int) ([]report.RejectedEvent, error) {
		befores = append(befores, before)
		return rejected(ctx, before, limit)
	}
	p1 := decode[pageOf[report.RejectedEvent]](t, f.get(t, "/v1/admin/rejected?limit=1", admin))
	p2 := decode[pageOf[report.RejectedEvent]](t, f.get(t, "/v1/admin/rejected?limit=1&cursor="+p1.NextCursor, admin))
	if len(p1.Items) != 1 || p1.Items[0].ID != 3 || len(p2.Items) != 1 || p2.Items[0].ID != 2 || cmp.Diff([]int64{0, 3}, befores) != "" {
		t.Errorf("pages %+v, %+v after %v", p1, p2, befores)
	}

	var pages []report.LedgerPage
	ledger := f.admin.ListLedgerPageFn
	f.admin.ListLedgerPageFn = func(ctx context.Context, lp report.LedgerPage) ([]billing.LedgerEntry, error) {
		pages = append(pages, lp)
		return ledger(ctx, lp)
	}
	march, april := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	o1 := decode[struct {
		Period     string
		NextCursor string `json:"next_cursor"`
	}](t, f.get(t, "/v1/admin/overage?limit=1", admin))
	wantStatus(t, f.get(t, "/v1/admin/overage?period=2026-03&cursor="+o1.NextCursor, admin), 200)
	want := []report.LedgerPage{
		{From: march, To: april, Limit: 2},
		{From: march, To: april, Limit: 51, After: &report.LedgerCursor{PeriodStart: march, UserID: charlie}},
	}
	if d := cmp.Diff(want, pages); o1.Period != "2026-03" || d != "" {
		t.Errorf("period %q; pages (-want +got):\n%s", o1.Period, d)
	}
}

// TestOverageCursorsKeepTheirMonth: the cursors of the ledger and of the
// preview continue the list of their month. Asked with another month (one
// the query names, or the default one after the month turned) they are
// refused naming the cursor, instead of going on with a page of another
// list: the first page of the other month, or an empty page that reads as
// the end of the list.
func TestOverageCursorsKeepTheirMonth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Date(2026, 3, 31, 23, 59, 0, 0, time.UTC)
	f.h.Now = func() time.Time { return now }
	admin := token(t, operator, true)
	type page struct {
		NextCursor string `json:"next_cursor"`
	}
	for _, route := range []string{"/v1/admin/overage", "/v1/admin/overage/preview"} {
		now = time.Date(2026, 3, 31, 23, 59, 0, 0, time.UTC)
		p1 := decode[page](t, f.get(t, route+"?limit=1", admin))
		if p1.NextCursor == "" {
			t.Fatalf("%s: page 1 has no next cursor", route)
		}
		wantStatus(t, f.get(t, route+"?limit=1&cursor="+p1.NextCursor, admin), 200)
		wantStatus(t, f.get(t, route+"?period=2026-03&cursor="+p1.NextCursor, admin), 200)
		for _, tt := range []struct {
			query string
			at    time.Time
		}{
			{"period=2026-02", now},
			{"period=2026-04", now},
			{"limit=1", time.Date(2026, 4, 1, 0, 1, 0, 0, time.UTC)},
		} {
			now = tt.at
			resp := f.get(t, route+"?"+tt.query+"&cursor="+p1.NextCursor, admin)
			if p := decode[problem](t, resp); resp.StatusCode != 400 || p.Param != "cursor" || !strings.Contains(p.Detail, "2026-03") {
				t.Errorf("%s?%s at %s with a cursor of 2026-03: %d %s; want 400 naming cursor and its month",
					route, tt.query, now.Format(time.DateTime), resp.StatusCode, resp.Body)
			}
		}
	}
}

// TestRejectedPagesFitAResponse: a page of the quarantine holds its rows
// up to a size that fits Lambda's response (6 MB for the whole answer,
// in which the body is escaped once more), and continues with the next
// cursor: quarantined messages are up to a queue message's 256 KiB each,
// and 50 of them (the default page) made an answer Lambda refuses, so the
// newest rows, and everything after them, could not be listed.
func TestRejectedPagesFitAResponse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := strings.Repeat(`{"event_id":"<x>","user_id":"\u0000"},`, 230<<10/40)
	f.admin.RejectedEventsFn = func(_ context.Context, before int64, limit int) ([]report.RejectedEvent, error) {
		var out []report.RejectedEvent
		for id := int64(50); id >= 1 && len(out) < limit; id-- {
			if before == 0 || id < before {
				out = append(out, report.RejectedEvent{ID: id, Source: "record", MessageID: fmt.Sprint("m", id), Field: "body",
					Reason: "not an event", Body: body, RejectedAt: testNow})
			}
		}
		return out, nil
	}
	admin := token(t, operator, true)
	var seen []int64
	cursor := ""
	for pages := 0; pages < 60; pages++ {
		resp := f.get(t, "/v1/admin/rejected?cursor="+cursor, admin)
		wantStatus(t, resp, 200)
		payload, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		if len(payload) > 6<<20 {
			t.Fatalf("page %d: the function's answer is %d bytes; Lambda refuses more than %d", pages+1, len(payload), 6<<20)
		}
		p := decode[pageOf[report.RejectedEvent]](t, resp)
		for _, e := range p.Items {
			seen = append(seen, e.ID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	want := make([]int64, 50)
	for i := range want {
		want[i] = int64(50 - i)
	}
	if d := cmp.Diff(want, seen); d != "" {
		t.Errorf("rows listed (-want +got): 50 down to 1, each once\n%s", d)
	}
}

// deliveryLister is a notify.Manager whose Deliveries lists n deliveries
// newest first, each with eight attempts whose answers are the 1 KiB the
// log keeps (its other methods are not called).
type deliveryLister struct {
	notify.Manager
	n int
}

func (l deliveryLister) Deliveries(_ context.Context, _ notify.Owner, f notify.DeliveryFilter) ([]notify.Delivery, error) {
	answer := strings.Repeat("<p>busy</p>", notify.MaxAnswer/11)
	var out []notify.Delivery
	for i := l.n; i >= 1 && len(out) < f.Limit; i-- {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		at := testNow.Add(time.Duration(i) * time.Second)
		if f.Before != nil && !at.Before(f.Before.CreatedAt) {
			continue
		}
		d := notify.Delivery{ID: id, EventID: id, EventType: "usage.threshold.reached", EndpointID: id, Status: "failed",
			Attempts: 8, CreatedAt: at, UpdatedAt: at}
		for a := 1; a <= 8; a++ {
			d.Log = append(d.Log, notify.Attempt{Attempt: a, At: at, Outcome: "failed", Answer: answer})
		}
		out = append(out, d)
	}
	return out, nil
}

// TestDeliveryPagesFitAResponse: a page of webhook deliveries, whose
// attempt logs keep up to 1 KiB of each answer, ends before the answer
// outgrows Lambda's 6 MB, with the next cursor, at any limit the route
// takes: 1,000 deliveries of eight failed attempts made an answer Lambda
// refuses.
func TestDeliveryPagesFitAResponse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.Notify = deliveryLister{n: 1000}
	var seen int
	cursor := ""
	for pages := 0; pages < 100; pages++ {
		resp := f.get(t, "/v1/webhooks/deliveries?limit=1000&cursor="+cursor, token(t, alice, false))
		wantStatus(t, resp, 200)
		payload, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		if len(payload) > 6<<20 {
			t.Fatalf("page %d: the function's answer is %d bytes; Lambda refuses more than %d", pages+1, len(payload), 6<<20)
		}
		p := decode[pageOf[notify.Delivery]](t, resp)
		seen += len(p.Items)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if seen != 1000 {
		t.Errorf("%d deliveries listed; want 1000", seen)
	}
}
