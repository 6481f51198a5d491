package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
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
	states, err := s.PeriodStates(ctx, []billing.UserPeriod{{UserID: u1, Period: feb, ByDay: true}, {UserID: u1, Period: jan}, {UserID: u2, Period: feb},
		{UserID: u1, Period: feb}})
	if err != nil {
		t.Fatal(err)
	}
	if states[0].Used() != 11 || states[1].Used() != 100 || states[2].Used() != 0 || states[0].Rows != 0 || states[0].Lines != nil ||
		len(states[0].Days) != 2 || !slices.ContainsFunc(states[0].Days, func(d usage.DayCalls) bool { return d.Day.Equal(time.Date(2026, 2, 27, 0, 0, 0, 0, time.UTC)) }) ||
		len(states[3].Days) != 1 || states[3].Days[0] != (usage.DayCalls{Day: feb.Start, Calls: 11}) || states[2].Days != nil {
		t.Errorf("PeriodStates = %+v", states)
	}

	now := time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC)
	entry := func(u string, p usage.Period, seq int, status string, amount int64) *billing.LedgerEntry {
		line := usage.Line{From: p.Start, To: p.End, PlanID: "pro", Bills: true,
			Price: usage.Price{Model: usage.PricePackage, UnitSize: 1000, UnitPrice: 50, Currency: "usd"}, Included: 100_000, Used: 1}
		return &billing.LedgerEntry{UserID: u, Period: p, Seq: seq, Included: 100_000, Used: 1, Units: 1, UnitSize: 1000,
			UnitPrice: 50, Amount: amount, Currency: "usd", Status: status, IdempotencyKey: billing.IdempotencyKey(u, p.Start, seq),
			Lines: []usage.Line{line}, Description: "charge " + status}
	}
	rows := []*billing.LedgerEntry{entry(u1, feb, 0, "pending", 50), entry(u2, feb, 0, "pending", 50), entry(u1, jan, 0, "billed", 70)}
	progress := []billing.Progress{{UserID: u1, ClosedThrough: feb.End}}
	if n, err := s.InsertLedgerEntries(ctx, rows, progress, now); err != nil || n != 3 {
		t.Fatalf("InsertLedgerEntries = %d, %v; want 3", n, err)
	}
	// The same rows again: nothing inserted; progress never moves back.
	if n, err := s.InsertLedgerEntries(ctx, rows, []billing.Progress{{UserID: u1, ClosedThrough: jan.End}}, now); err != nil || n != 0 {
		t.Fatalf("InsertLedgerEntries again = %d, %v; want 0", n, err)
	}
	states, _ = s.PeriodStates(ctx, []billing.UserPeriod{{UserID: u1, Period: jan}})
	if st := states[0]; st.Rows != 1 || st.Recorded != 70 || st.Billed != 70 || len(st.Lines) != 1 || st.Lines[0].Price.UnitPrice != 50 {
		t.Errorf("PeriodStates after insert = %+v", st)
	}

	// Claims: one owner takes both pending rows; another finds none while
	// they are leased; the first never takes them again; after MarkRetry
	// another owner can.
	lease := 15 * time.Minute
	a, err := s.ClaimPending(ctx, billing.ClaimRequest{Owner: "a", Now: now, Lease: lease, Limit: 10})
	if err != nil || len(a) != 2 || a[0].Attempts != 1 || a[0].CustomerID == "" || a[0].SentTo != nil || a[0].Description != "charge pending" {
		t.Fatalf("ClaimPending(a) = %+v, %v; want 2 rows, 1 attempt, customer ids, never sent", a, err)
	}
	if b, _ := s.ClaimPending(ctx, billing.ClaimRequest{Owner: "b", Now: now, Lease: lease, Limit: 10}); len(b) != 0 {
		t.Errorf("ClaimPending(b) during the lease = %d rows; want 0", len(b))
	}
	if err := s.MarkRetry(ctx, a[0].ID, "stripe 503", now); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.ClaimPending(ctx, billing.ClaimRequest{Owner: "a", Now: now, Lease: lease, Limit: 10}); len(again) != 0 {
		t.Errorf("the same owner claimed %d rows again; want 0", len(again))
	}
	b, _ := s.ClaimPending(ctx, billing.ClaimRequest{Owner: "b", Now: now, Lease: lease, Limit: 10})
	if len(b) != 1 || b[0].ID != a[0].ID || b[0].Attempts != 2 || b[0].LastError != "stripe 503" || len(b[0].SentTo) != 1 ||
		b[0].SentTo[0] != a[0].CustomerID {
		t.Errorf("ClaimPending(b) after release = %+v; want the released row, 2 attempts, sent to %s before", b, a[0].CustomerID)
	}
	if err := s.MarkBilled(ctx, []billing.Billed{{LedgerID: b[0].ID, StripeID: "ii_1"}}, now); err != nil {
		t.Fatal(err)
	}
	// The lease of the other row ends: a third owner takes it (a crashed run).
	c, _ := s.ClaimPending(ctx, billing.ClaimRequest{Owner: "c", Now: now.Add(lease), Lease: lease, Limit: 10})
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
	if err != nil || len(billable) != 2 || billable[0].Effective.OverageUnitPrice != 50 || !billable[0].ClosedThrough.Equal(feb.End) ||
		!billable[1].ClosedThrough.IsZero() || len(billable[0].History) != 1 || !billable[0].History[0].From.Equal(anchor) {
		t.Errorf("BillableSubscriptions = %+v, %v; want the 2 pro subscriptions, u1 planned through February", billable, err)
	}
	// Job runs: opened, then closed with the report.
	rep := &billing.RunReport{RunID: "run-1", DryRun: true, Inserted: 3}
	id, err := s.OpenRun(ctx, rep, now, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CloseRun(ctx, id, rep, now.Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	var outcome string
	var written int64
	var dry bool
	if err := db.Pool.QueryRow(ctx, `SELECT outcome, rows_written, (detail->>'dry_run')::boolean FROM eco_job_runs WHERE run_id = $1 AND job = 'overage'`, id).
		Scan(&outcome, &written, &dry); err != nil || outcome != "succeeded" || written != 3 || !dry {
		t.Errorf("job run = %s %d %v, %v", outcome, written, dry, err)
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
	// A user on free now whose history bills (pro, then downgraded) still is.
	down := "00000000-0000-4000-8000-000000000005"
	if err := subs.PutSubscription(ctx, &usage.Subscription{UserID: down, PlanID: usage.PlanFree, PeriodAnchor: anchor}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, change, requested_at)
		VALUES ($1, $2, 'pro', 'start', $2)`, down, anchor.AddDate(0, -1, 0)); err != nil {
		t.Fatal(err)
	}
	if all, _ := postgres.NewLedgerStore(db).BillableSubscriptions(ctx); len(all) != 3 || all[2].UserID != down || len(all[2].History) != 2 {
		t.Errorf("with a downgraded user: %+v; want 3, the last with two entries", all)
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
