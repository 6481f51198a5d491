package limits_test

import (
	"testing"
	"time"

	"github.com/nexus/usage/shared/limits"
)

func TestGCRATake(t *testing.T) {
	g := limits.NewGCRA(2, 3) // T = 500 ms, burst 3
	const s = int64(1_000_000)
	tests := []struct {
		name      string
		tat, now  int64
		cost      int64
		wantTAT   int64
		allowed   bool
		remaining int64
		reset     time.Duration
		retry     time.Duration
	}{
		{"fresh key", 0, 10 * s, 1, 10*s + s/2, true, 2, 500 * time.Millisecond, 0},
		{"fresh key, whole burst", 0, 10 * s, 3, 10*s + 3*s/2, true, 0, 1500 * time.Millisecond, 0},
		{"over burst", 0, 10 * s, 4, 0, false, 0, 0, 500 * time.Millisecond},
		{"last of burst", 10*s + s, 10 * s, 1, 10*s + 3*s/2, true, 0, 1500 * time.Millisecond, 0},
		{"burst used", 10*s + 3*s/2, 10 * s, 1, 10*s + 3*s/2, false, 0, 1500 * time.Millisecond, 500 * time.Millisecond},
		{"stale tat", 5 * s, 10 * s, 1, 10*s + s/2, true, 2, 500 * time.Millisecond, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tat, r := g.Take(tt.tat, tt.now, tt.cost)
			want := limits.RateResult{Allowed: tt.allowed, Remaining: tt.remaining, Reset: tt.reset, RetryAfter: tt.retry}
			if tat != tt.wantTAT || r != want {
				t.Errorf("Take(%d, %d, %d) = %d, %+v; want %d, %+v", tt.tat, tt.now, tt.cost, tat, r, tt.wantTAT, want)
			}
		})
	}
}

// TestGCRABound hammers a limiter every millisecond and checks the exact
// bound burst + floor(W/T).
func TestGCRABound(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{2, 10}, {50, 100}, {3, 1}, {7.5, 4}} {
		g := limits.NewGCRA(tc.rate, tc.burst)
		var tat, admitted int64
		start := int64(1_700_000_000_000_000)
		w := 3 * time.Second
		for now := start; now <= start+w.Microseconds(); now += 1000 {
			var r limits.RateResult
			if tat, r = g.Take(tat, now, 1); r.Allowed {
				admitted++
			}
		}
		if max := g.MaxAdmitted(w); admitted > max || admitted < max-1 {
			t.Errorf("rate %v burst %d: admitted %d in %s; want %d (±1 below)", tc.rate, tc.burst, admitted, w, max)
		}
	}
}

func TestIntervalMicros(t *testing.T) {
	for _, tt := range []struct {
		rate float64
		want int64
	}{{1, 1_000_000}, {2, 500_000}, {3, 333_333}, {1.5, 666_667}, {2e6, 1}} {
		if got := limits.IntervalMicros(tt.rate); got != tt.want {
			t.Errorf("IntervalMicros(%v) = %d; want %d", tt.rate, got, tt.want)
		}
	}
}
