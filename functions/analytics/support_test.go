package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// TestSupportViewIsTheUsersView: an admin's view of a user (daily,
// endpoints, keys) is the answer the user gets on the user route with the
// same query, read for the user of the path, not for the admin.
func TestSupportViewIsTheUsersView(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var asked []string
	daily, endpoints, keys := f.usage.DailyUsageFn, f.usage.EndpointBreakdownFn, f.usage.KeyBreakdownFn
	f.usage.DailyUsageFn = func(ctx context.Context, userID string, r usage.DayRange, now time.Time) ([]report.DailyUsage, error) {
		asked = append(asked, userID)
		return daily(ctx, userID, r, now)
	}
	f.usage.EndpointBreakdownFn = func(ctx context.Context, bf report.BreakdownFilter) ([]report.Breakdown, error) {
		asked = append(asked, bf.UserID)
		return endpoints(ctx, bf)
	}
	f.usage.KeyBreakdownFn = func(ctx context.Context, bf report.BreakdownFilter) ([]report.Breakdown, error) {
		asked = append(asked, bf.UserID)
		return keys(ctx, bf)
	}
	user, admin := token(t, alice, false), token(t, operator, true)
	for _, q := range []string{"daily?from=2026-03-12", "daily", "endpoints?limit=1", "keys?from=2026-03-01&to=2026-03-14"} {
		asked = nil
		mine := f.get(t, "/v1/usage/"+q, user)
		support := f.get(t, "/v1/admin/users/"+alice+"/"+q, admin)
		wantStatus(t, support, 200)
		if support.Body != mine.Body {
			t.Errorf("%s: the admin sees\n%s\nalice sees\n%s", q, support.Body, mine.Body)
		}
		// The breakdowns' second answer comes from the instance's cache.
		want := []string{alice, alice}
		if !strings.HasPrefix(q, "daily") {
			want = want[:1]
		}
		if !slices.Equal(asked, want) {
			t.Errorf("%s: the store was asked for %q; want %q", q, asked, want)
		}
	}
}

// TestSupportViewOfAnIDInCapitals: a user id is the same id in capitals
// (usage.Event.Validate keeps ids in small letters), and the admin's view
// of it is the user's own answer, not one naming the user in another
// spelling (with another ETag, and a breakdown cached apart).
func TestSupportViewOfAnIDInCapitals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	user, admin := token(t, alice, false), token(t, operator, true)
	for _, tt := range []struct{ own, view string }{
		{"/v1/usage", "/usage"},
		{"/v1/usage/daily", "/daily"},
		{"/v1/usage/endpoints", "/endpoints"},
	} {
		mine := f.get(t, tt.own, user)
		support := f.get(t, "/v1/admin/users/"+strings.ToUpper(alice)+tt.view, admin)
		wantStatus(t, support, 200)
		if support.Body != mine.Body || support.Headers["ETag"] != mine.Headers["ETag"] {
			t.Errorf("%s: the admin asking for %s sees\n%s\nalice sees\n%s", tt.own, strings.ToUpper(alice), support.Body, mine.Body)
		}
	}
}

// TestPlanAuditPages: the audit trail comes newest first, a page at a
// time, for the user of the path; a user without changes has an empty
// list, not null.
func TestPlanAuditPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	type call struct {
		User   string
		Before int64
		Limit  int
	}
	var calls []call
	audit := f.admin.PlanAuditFn
	f.admin.PlanAuditFn = func(ctx context.Context, userID string, before int64, limit int) ([]report.PlanAuditEntry, error) {
		calls = append(calls, call{userID, before, limit})
		return audit(ctx, userID, before, limit)
	}
	admin := token(t, operator, true)
	p1 := decode[pageOf[report.PlanAuditEntry]](t, f.get(t, "/v1/admin/users/"+bob+"/audit?limit=1", admin))
	if len(p1.Items) != 1 || p1.Items[0].ID != 8 || p1.Items[0].Who != operator || p1.NextCursor == "" {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2 := decode[pageOf[report.PlanAuditEntry]](t, f.get(t, "/v1/admin/users/"+bob+"/audit?limit=1&cursor="+p1.NextCursor, admin))
	if len(p2.Items) != 1 || p2.Items[0].ID != 5 || string(p2.Items[0].Old) != "null" || p2.NextCursor != "" {
		t.Fatalf("page 2 = %+v", p2)
	}
	none := f.get(t, "/v1/admin/users/"+charlie+"/audit", admin)
	wantStatus(t, none, 200)
	if none.Body != `{"items":[]}` {
		t.Errorf("charlie's trail = %s; want no items", none.Body)
	}
	want := []call{{bob, 0, 2}, {bob, 8, 2}, {charlie, 0, DefaultLimit + 1}}
	if d := cmp.Diff(want, calls); d != "" {
		t.Errorf("store calls (-want +got):\n%s", d)
	}
}
