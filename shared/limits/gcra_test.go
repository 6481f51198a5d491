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

func TestGCRARescale(t *testing.T) {
	g := limits.NewGCRA(50, 100) // T = 20 ms, tolerance 2 s
	const s = int64(1_000_000)
	now := 1000 * s
	tests := []struct {
		name           string
		tat, tolerance int64
		want           int64
	}{
		{"same limit", now + 3*s/2, 2 * s, now + 3*s/2},
		{"nothing spent", now - s, 500 * s, now - s},
		{"slow burst spent", now + 500*s, 500 * s, now + 2*s},
		{"a fifth of a slow burst", now + 100*s, 500 * s, now + 2*s/5},
		{"fast burst spent", now + s/10, s / 10, now + 2*s},
		{"ahead of its tolerance (clocks apart)", now + 600*s, 500 * s, now + 2*s},
		{"rounded down", now + 1, 3, now + 666_666},
		{"tolerance not known", now + 500*s, 0, now + 2*s},
		{"tolerance not known, within g's", now + s, 0, now + s},
		{"the largest tolerances", now + 315_360_000*s, 315_360_000 * s, now + 2*s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.Rescale(tt.tat, tt.tolerance, now); got != tt.want {
				t.Errorf("Rescale(now%+d, %d, now) = now%+d; want now%+d", tt.tat-now, tt.tolerance, got-now, tt.want-now)
			}
		})
	}
	// The largest tolerance a plan allows, read by itself from the largest one.
	big := limits.NewGCRA(1e-6, 315)
	if got, want := big.Rescale(now+big.Tolerance(), s/10, now), now+big.Tolerance(); got != want {
		t.Errorf("Rescale of a whole fast burst into the slowest limit = now%+d; want now%+d", got-now, want-now)
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
