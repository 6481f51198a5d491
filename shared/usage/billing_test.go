package usage_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/usage"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestClosablePeriods(t *testing.T) {
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}
	jan := usage.Period{Start: day(2026, 1, 1), End: day(2026, 2, 1)}
	tests := []struct {
		name   string
		anchor time.Time
		now    time.Time
		want   []usage.Period
	}{
		{"within the grace period", day(2026, 2, 1), time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC), nil},
		{"grace period just over", day(2026, 2, 1), time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), []usage.Period{feb}},
		{"two closed periods within the lookback", day(2026, 1, 1), time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC), []usage.Period{jan, feb}},
		{"older periods are out of the lookback", day(2025, 1, 1), time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC), []usage.Period{jan, feb}},
		{"subscription too new", day(2026, 2, 20), time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC), nil},
		{"anchor on the 31st", day(2026, 1, 31), time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC),
			[]usage.Period{{Start: day(2026, 1, 31), End: day(2026, 2, 28)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := usage.ClosablePeriods(tt.anchor, tt.now, usage.DefaultGrace, usage.DefaultLookback)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ClosablePeriods(%v, %v) mismatch (-want +got):\n%s", tt.anchor, tt.now, diff)
			}
		})
	}
}

func TestPlanEntry(t *testing.T) {
	const user = "00000000-0000-4000-8000-000000000001"
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}
	pro := &usage.Subscription{UserID: user, PlanID: "pro", Effective: usage.Plan{ID: "pro", IncludedCalls: 100_000,
		OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}}
	base := &usage.Overage{Included: 100_000, UnitSize: 1000, UnitPrice: 40, Currency: "usd"}
	up := usage.UserPeriod{UserID: user, Period: feb}
	tests := []struct {
		name   string
		st     usage.PeriodState
		dryRun bool
		want   *usage.LedgerEntry // compared on Seq, Status, Units, Amount
	}{
		{"below quota", usage.PeriodState{UserPeriod: up, Used: 99_999}, false, &usage.LedgerEntry{Seq: 0, Status: "skipped"}},
		{"at quota", usage.PeriodState{UserPeriod: up, Used: 100_000}, false, &usage.LedgerEntry{Seq: 0, Status: "skipped"}},
		{"one call above", usage.PeriodState{UserPeriod: up, Used: 100_001}, false, &usage.LedgerEntry{Seq: 0, Status: "pending", Units: 1, Amount: 50}},
		{"dry run", usage.PeriodState{UserPeriod: up, Used: 102_000}, true, &usage.LedgerEntry{Seq: 0, Status: "dry_run", Units: 2, Amount: 100}},
		{"billed, nothing new", usage.PeriodState{UserPeriod: up, Used: 102_000, Rows: 1, Units: 2, Amount: 80, Base: base}, false, nil},
		{"late usage, priced with the billed terms", usage.PeriodState{UserPeriod: up, Used: 105_000, Rows: 1, Units: 2, Amount: 80, Base: base}, false,
			&usage.LedgerEntry{Seq: 1, Status: "pending", Units: 3, Amount: 120}},
		{"usage fell: a credit for review", usage.PeriodState{UserPeriod: up, Used: 101_000, Rows: 2, MaxSeq: 1, Units: 5, Amount: 200, Base: base}, false,
			&usage.LedgerEntry{Seq: 2, Status: "skipped", Units: -4, Amount: -160}},
		{"credit recorded once", usage.PeriodState{UserPeriod: up, Used: 101_000, Rows: 3, MaxSeq: 2, Units: 1, Amount: 40, Base: base}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := usage.PlanEntry(pro, tt.st, tt.dryRun)
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("PlanEntry = %+v; want %+v", got, tt.want)
			}
			if got == nil {
				return
			}
			if got.Seq != tt.want.Seq || got.Status != tt.want.Status || got.Units != tt.want.Units || got.Amount != tt.want.Amount {
				t.Errorf("PlanEntry = seq %d %s units %d amount %d; want seq %d %s units %d amount %d",
					got.Seq, got.Status, got.Units, got.Amount, tt.want.Seq, tt.want.Status, tt.want.Units, tt.want.Amount)
			}
			if got.IdempotencyKey != usage.IdempotencyKey(user, feb.Start, got.Seq) {
				t.Errorf("key = %s", got.IdempotencyKey)
			}
			if got.Status == "skipped" && got.Note == "" {
				t.Errorf("skipped row without a note")
			}
		})
	}
}

func TestIdempotencyKeyAndDescription(t *testing.T) {
	start := time.Date(2026, 2, 1, 1, 0, 0, 0, time.FixedZone("x", 3600))
	if got, want := usage.IdempotencyKey("u1", start, 2), "nexus-overage-u1-20260201-2"; got != want {
		t.Errorf("IdempotencyKey = %q; want %q", got, want)
	}
	e := &usage.LedgerEntry{Period: usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}, Included: 100, Used: 150}
	if got, want := e.Description(), "API overage: 50 calls above 100 included, period 2026-02-01 – 2026-02-28"; got != want {
		t.Errorf("Description = %q; want %q", got, want)
	}
}

func TestProjectOverage(t *testing.T) {
	p := usage.Plan{ID: "pro", IncludedCalls: 100_000, OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)} // 28 days
	pr := usage.ProjectOverage(p, feb, 70_000, day(2026, 2, 15))      // 14 days: half
	if pr.ToDate.Units != 0 || pr.Projected.Used != 140_000 || pr.Projected.Units != 40 || pr.Projected.Amount != 2000 {
		t.Errorf("ProjectOverage = %+v", pr)
	}
	if !strings.Contains(usage.Errorf(usage.CodeInvalid, "x").Error(), "invalid") {
		t.Error("unexpected error format")
	}
}

func TestRetryable(t *testing.T) {
	for code, want := range map[string]bool{usage.CodeUnavailable: true, usage.CodeRateLimited: true, usage.CodeInternal: true,
		usage.CodeInvalid: false, usage.CodeNotFound: false, usage.CodeConflict: false, usage.CodeUnauthorized: false} {
		if got := usage.Retryable(usage.Errorf(code, "x")); got != want {
			t.Errorf("Retryable(%s) = %v; want %v", code, got, want)
		}
	}
}

func TestRunReportJSON(t *testing.T) {
	r := usage.RunReport{RunID: "r1", Billed: 3, StripeCalls: 3, PlanTime: 1500 * time.Millisecond, BillTime: 250*time.Millisecond + 900*time.Microsecond}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["plan_ms"] != 1500.0 || got["bill_ms"] != 250.0 || got["run_id"] != "r1" || got["billed"] != 3.0 {
		t.Errorf("report JSON = %s", b)
	}
	if _, ok := got["PlanTime"]; ok {
		t.Errorf("report JSON has the raw duration: %s", b)
	}
}
