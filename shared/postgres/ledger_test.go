package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

func TestLedgerStore(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	s := postgres.NewLedgerStore(db)
	subs := postgres.NewSubscriptionStore(db)
	const u1, u2 = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, u := range []string{u1, u2} {
		if err := subs.PutSubscription(ctx, &usage.Subscription{UserID: u, PlanID: "pro", StripeCustomerID: "cus_" + u[len(u)-1:], PeriodAnchor: anchor}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_usage_counters (user_id, day, calls) VALUES
		($1, '2026-01-31', 100), ($1, '2026-02-01', 10), ($1, '2026-02-27', 1), ($1, '2026-03-01', 1000)`, u1); err != nil {
		t.Fatal(err)
	}
	jan := usage.Period{Start: anchor, End: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
	feb := usage.Period{Start: jan.End, End: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}

	// Period usage sums exactly the period's days.
	states, err := s.PeriodStates(ctx, []usage.UserPeriod{{UserID: u1, Period: feb}, {UserID: u1, Period: jan}, {UserID: u2, Period: feb}})
	if err != nil {
		t.Fatal(err)
	}
	if states[0].Used != 11 || states[1].Used != 100 || states[2].Used != 0 || states[0].Rows != 0 || states[0].Base != nil {
		t.Errorf("PeriodStates = %+v", states)
	}

	now := time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC)
	entry := func(u string, p usage.Period, seq int, status string, amount int64) *usage.LedgerEntry {
		return &usage.LedgerEntry{UserID: u, Period: p, Seq: seq, Included: 100_000, Used: 1, Units: 1, UnitSize: 1000,
			UnitPrice: 50, Amount: amount, Currency: "usd", Status: status, IdempotencyKey: usage.IdempotencyKey(u, p.Start, seq)}
	}
	rows := []*usage.LedgerEntry{entry(u1, feb, 0, "pending", 50), entry(u2, feb, 0, "pending", 50), entry(u1, jan, 0, "billed", 70)}
	if n, err := s.InsertLedgerEntries(ctx, rows, now); err != nil || n != 3 {
		t.Fatalf("InsertLedgerEntries = %d, %v; want 3", n, err)
	}
	// The same rows again: nothing inserted.
	if n, err := s.InsertLedgerEntries(ctx, rows, now); err != nil || n != 0 {
		t.Fatalf("InsertLedgerEntries again = %d, %v; want 0", n, err)
	}
	states, _ = s.PeriodStates(ctx, []usage.UserPeriod{{UserID: u1, Period: jan}})
	if st := states[0]; st.Rows != 1 || st.Amount != 70 || st.Base == nil || st.Base.UnitPrice != 50 {
		t.Errorf("PeriodStates after insert = %+v", st)
	}

	// Claims: one owner takes both pending rows; another finds none while
	// they are leased; the first never takes them again; after MarkRetry
	// another owner can.
	lease := 15 * time.Minute
	a, err := s.ClaimPending(ctx, usage.ClaimRequest{Owner: "a", Now: now, Lease: lease, Limit: 10})
	if err != nil || len(a) != 2 || a[0].Attempts != 1 || a[0].CustomerID == "" {
		t.Fatalf("ClaimPending(a) = %+v, %v; want 2 rows, 1 attempt, customer ids", a, err)
	}
	if b, _ := s.ClaimPending(ctx, usage.ClaimRequest{Owner: "b", Now: now, Lease: lease, Limit: 10}); len(b) != 0 {
		t.Errorf("ClaimPending(b) during the lease = %d rows; want 0", len(b))
	}
	if err := s.MarkRetry(ctx, a[0].ID, "stripe 503", now); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.ClaimPending(ctx, usage.ClaimRequest{Owner: "a", Now: now, Lease: lease, Limit: 10}); len(again) != 0 {
		t.Errorf("the same owner claimed %d rows again; want 0", len(again))
	}
	b, _ := s.ClaimPending(ctx, usage.ClaimRequest{Owner: "b", Now: now, Lease: lease, Limit: 10})
	if len(b) != 1 || b[0].ID != a[0].ID || b[0].Attempts != 2 || b[0].LastError != "stripe 503" {
		t.Errorf("ClaimPending(b) after release = %+v; want the released row, 2 attempts", b)
	}
	if err := s.MarkBilled(ctx, []usage.Billed{{LedgerID: b[0].ID, StripeID: "ii_1"}}, now); err != nil {
		t.Fatal(err)
	}
	// The lease of the other row ends: a third owner takes it (a crashed run).
	c, _ := s.ClaimPending(ctx, usage.ClaimRequest{Owner: "c", Now: now.Add(lease), Lease: lease, Limit: 10})
	if len(c) != 1 || c[0].ID != a[1].ID {
		t.Errorf("ClaimPending(c) after the lease = %+v; want the other row", c)
	}
	if err := s.MarkFailed(ctx, b[0].ID, "late", now); err != nil {
		t.Fatal(err)
	}

	// MarkFailed after billed changes nothing: two rows stay billed.
	var billed int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_overage_ledger WHERE status = 'billed'`).Scan(&billed); err != nil || billed != 2 {
		t.Errorf("billed rows = %d, %v; want 2 (MarkFailed after billed changes nothing)", billed, err)
	}

	// Billable subscriptions: free and zero-price overrides are left out.
	zero := int64(0)
	if err := subs.PutSubscription(ctx, &usage.Subscription{UserID: "00000000-0000-4000-8000-000000000003", PlanID: "pro",
		Overrides: usage.Overrides{OverageUnitPrice: &zero}, PeriodAnchor: anchor}); err != nil {
		t.Fatal(err)
	}
	if err := subs.PutSubscription(ctx, &usage.Subscription{UserID: "00000000-0000-4000-8000-000000000004", PlanID: "free", PeriodAnchor: anchor}); err != nil {
		t.Fatal(err)
	}
	billable, err := s.BillableSubscriptions(ctx)
	if err != nil || len(billable) != 2 || billable[0].Effective.OverageUnitPrice != 50 {
		t.Errorf("BillableSubscriptions = %d, %v; want the 2 pro subscriptions", len(billable), err)
	}
}

func TestOpenPeriodOverage(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	const u = "00000000-0000-4000-8000-000000000001"
	anchor := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	if err := postgres.NewSubscriptionStore(db).PutSubscription(ctx, &usage.Subscription{UserID: u, PlanID: "pro", PeriodAnchor: anchor}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_usage_counters (user_id, day, calls) VALUES
		($1, '2026-01-31', 500000), ($1, '2026-02-01', 60000), ($1, '2026-02-14', 50000)`, u); err != nil {
		t.Fatal(err)
	}
	pr, err := postgres.NewLedgerStore(db).OpenPeriodOverage(ctx, u, time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	// 110,000 calls in 14 of 28 days: 10 units so far, 220,000 projected.
	if pr.ToDate.Used != 110_000 || pr.ToDate.Units != 10 || pr.ToDate.Amount != 500 || pr.Projected.Used != 220_000 || pr.Projected.Units != 120 {
		t.Errorf("OpenPeriodOverage = %+v", pr)
	}
	// Unknown users are on free: nothing billed.
	pr, err = postgres.NewLedgerStore(db).OpenPeriodOverage(ctx, "00000000-0000-4000-8000-000000000009", time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC))
	if err != nil || pr.ToDate.Amount != 0 {
		t.Errorf("OpenPeriodOverage(free) = %+v, %v", pr, err)
	}
}

// TestBillableSubscriptions: the overrides are applied (by Plan.Apply)
// before a subscription is judged billable, and the free plan never is.
func TestBillableSubscriptions(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	subs := postgres.NewSubscriptionStore(db)
	zero, fifty, included := int64(0), int64(50), int64(5)
	anchor := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	for i, s := range []struct {
		plan string
		o    usage.Overrides
	}{
		{usage.PlanPro, usage.Overrides{}},
		{usage.PlanPro, usage.Overrides{OverageUnitPrice: &zero}},
		{usage.PlanFree, usage.Overrides{OverageUnitPrice: &fifty}},
		{usage.PlanEnterprise, usage.Overrides{IncludedCalls: &included}},
	} {
		user := fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		if err := subs.PutSubscription(ctx, &usage.Subscription{UserID: user, PlanID: s.plan, Overrides: s.o,
			StripeCustomerID: "cus_" + user[len(user)-1:], PeriodAnchor: anchor}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := postgres.NewLedgerStore(db).BillableSubscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d billable subscriptions: %+v; want 2", len(got), got)
	}
	pro, ent := got[0], got[1]
	if pro.UserID != "00000000-0000-4000-8000-000000000001" || pro.Effective.OverageUnitPrice != 50 || pro.StripeCustomerID != "cus_1" ||
		!pro.PeriodAnchor.Equal(anchor) {
		t.Errorf("pro = %+v", pro)
	}
	if ent.UserID != "00000000-0000-4000-8000-000000000004" || ent.Effective.IncludedCalls != 5 || ent.Effective.OverageUnitPrice != 20 ||
		ent.Overrides.IncludedCalls == nil || ent.PlanID != usage.PlanEnterprise {
		t.Errorf("enterprise = %+v", ent)
	}
}
