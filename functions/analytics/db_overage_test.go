package main

import (
	"context"
	"testing"
)

// TestDBOveragePreview: the preview of March over the seeded database:
// alice's open period, priced at its usage so far, with nothing written.
func TestDBOveragePreview(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	resp := f.get(t, "/v1/admin/overage/preview?period=2026-03", token(t, operator, true))
	wantStatus(t, resp, 200)
	type item struct {
		UserID string `json:"user_id"`
		Closed bool
		Charge struct {
			Used   int64 `json:"used_calls"`
			Amount int64
		}
		Recorded int64
		Next     *struct{ Amount int64 }
	}
	got := decode[struct {
		Items  []item
		Totals []struct {
			Currency string
			Charge   int64
			Next     int64
		}
	}](t, resp)
	if len(got.Items) != 1 || got.Items[0].UserID != alice || got.Items[0].Closed || got.Items[0].Charge.Used != 87 ||
		got.Items[0].Charge.Amount != 200 || got.Items[0].Next != nil || len(got.Totals) != 1 || got.Totals[0].Charge != 200 {
		t.Errorf("preview = %+v", got)
	}
	var rows int
	_ = f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM eco_overage_ledger`).Scan(&rows)
	if rows != 3 {
		t.Errorf("%d ledger rows after a preview; want the 3 seeded", rows)
	}
}

// TestDBOverageRetry: dave's failed row is retried once and audited;
// rows that are not failed, and rows that do not exist, are refused.
func TestDBOverageRetry(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin := map[string]string{"Authorization": token(t, operator, true)}
	post := func(id string) int {
		return f.do(t, request("POST", "/v1/admin/overage/"+id+"/retry", admin, "")).StatusCode
	}
	const daves, charlies = "10000000-0000-4000-8000-000000000003", "10000000-0000-4000-8000-000000000002"
	resp := f.do(t, request("POST", "/v1/admin/overage/"+daves+"/retry", admin, ""))
	wantStatus(t, resp, 200)
	if e := decode[map[string]any](t, resp); e["status"] != "pending" || e["attempts"] != 0.0 || e["retries"] != 1.0 {
		t.Errorf("retried row = %v", e)
	}
	for id, want := range map[string]int{daves: 409, charlies: 409, "10000000-0000-4000-8000-00000000000f": 404} {
		if got := post(id); got != want {
			t.Errorf("retry %s = %d; want %d", id, got, want)
		}
	}
	var who, old string
	if err := f.db.Pool.QueryRow(context.Background(), `SELECT who, old->>'status' FROM eco_overage_audit WHERE ledger_id = $1`, daves).
		Scan(&who, &old); err != nil || who != operator || old != "failed" {
		t.Errorf("audit = %s %s, %v", who, old, err)
	}
}
