package limits_test

import (
	"context"
	"testing"
	"time"

	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/usage"
)

// gcraStore is a RateStore whose Take runs the GCRA reference per key.
func gcraStore() *rateStore {
	tat := map[string]int64{}
	return &rateStore{TakeFn: func(key string, now time.Time, g limits.GCRA, cost int64) (limits.RateResult, error) {
		var r limits.RateResult
		tat[key], r = g.Take(tat[key], now.UnixMicro(), cost)
		return r, nil
	}}
}

// TestBudgetPerCaller: a caller's reads are admitted up to the burst, then
// at the rate, and a refusal says when to come back; another caller's
// budget is its own.
func TestBudgetPerCaller(t *testing.T) {
	now := limitT0
	store := gcraStore()
	b := limits.NewBudget(store, limits.BudgetOptions{Name: "read", RatePerSecond: 2, Burst: 60, Now: func() time.Time { return now }})
	flooder := usage.Identity{UserID: limitUser, APIKeyID: "4b1d0000-0000-4000-8000-0000000000a1"}
	quiet := usage.Identity{UserID: "bbbbbbbb-0000-4000-8000-000000000002"}
	ctx := context.Background()
	admitted := 0
	for i := 0; i < 300; i++ {
		d, err := b.Take(ctx, flooder, 12) // a year-long read
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			admitted++
			continue
		}
		if d.Reason != usage.CodeRateLimited || d.RetryAfter <= 0 || d.Limit != 60 || d.RatePerSecond != 2 {
			t.Fatalf("refusal %d = %+v; want rate_limited with a retry after, limit 60 at 2/s", i, d)
		}
	}
	if admitted != 5 {
		t.Errorf("300 year-long reads at once admitted %d; want 5 (burst 60 / cost 12)", admitted)
	}
	if d, _ := b.Take(ctx, quiet, 1); !d.Allowed || d.Remaining != 59 {
		t.Errorf("another caller's first read = %+v; want allowed, 59 left", d)
	}
	// 12 units refill in 6 s at 2/s.
	now = now.Add(6 * time.Second)
	if d, _ := b.Take(ctx, flooder, 12); !d.Allowed {
		t.Errorf("a year-long read 6 s later = %+v; want allowed", d)
	}
	if d, _ := b.Take(ctx, flooder, 100); d.Allowed || d.RetryAfter != 30*time.Second {
		t.Errorf("a cost above the burst = %+v; want the whole burst's wait, 30 s", d)
	}
}

// TestBudgetRefusesFromMemory: after a refusal, the caller is refused
// without a round trip until the store could admit it, with the same
// answer the store gives, and the first call after that goes to the store
// again.
func TestBudgetRefusesFromMemory(t *testing.T) {
	now := limitT0
	store := gcraStore()
	clock := func() time.Time { return now }
	b := limits.NewBudget(store, limits.BudgetOptions{Name: "read", RatePerSecond: 2, Burst: 4, Now: clock})
	// Another instance over the same store, without the memory of b.
	other := limits.NewBudget(store, limits.BudgetOptions{Name: "read", RatePerSecond: 2, Burst: 4, Now: clock})
	id := usage.Identity{UserID: limitUser}
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if d, _ := b.Take(ctx, id, 1); !d.Allowed {
			t.Fatalf("call %d within the burst refused", i)
		}
	}
	first, _ := b.Take(ctx, id, 1)
	if first.Allowed || first.RetryAfter != 500*time.Millisecond {
		t.Fatalf("the call past the burst = %+v; want refused, retry in 500ms", first)
	}
	store.took()
	for _, step := range []time.Duration{0, 100 * time.Millisecond, 399 * time.Millisecond} {
		now = limitT0.Add(step)
		got, _ := b.Take(ctx, id, 2)
		if n := len(store.took()); n != 0 {
			t.Errorf("at +%s the refused caller cost %d round trips; want 0", step, n)
		}
		want, _ := other.Take(ctx, id, 2)
		store.took()
		if got.Allowed || got.Allowed != want.Allowed || got.RetryAfter != want.RetryAfter || got.Reset != want.Reset {
			t.Errorf("at +%s from memory: %+v; the store says %+v", step, got, want)
		}
	}
	now = limitT0.Add(500 * time.Millisecond)
	if d, _ := b.Take(ctx, id, 1); !d.Allowed || len(store.took()) != 1 {
		t.Errorf("when the budget has room again: %+v; want allowed, by the store", d)
	}
}

func TestReadCost(t *testing.T) {
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	tests := []struct {
		from, to string
		want     int64
	}{
		{"2026-03-15", "2026-03-15", 1}, {"2026-02-14", "2026-03-15", 1}, {"2026-02-13", "2026-03-15", 1},
		{"2026-02-12", "2026-03-15", 2}, {"2025-03-15", "2026-03-15", 12},
	}
	for _, tt := range tests {
		if got := limits.ReadCost(usage.DayRange{From: day(tt.from), To: day(tt.to)}); got != tt.want {
			t.Errorf("ReadCost(%s..%s) = %d; want %d", tt.from, tt.to, got, tt.want)
		}
	}
}
