package usage_test

import (
	"math"
	"testing"
	"time"

	"github.com/nexus/usage/shared/usage"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPeriodAt(t *testing.T) {
	tests := []struct {
		name       string
		anchor, at string
		start, end string
	}{
		{"calendar month", "2026-01-01T00:00:00Z", "2026-11-27T10:00:00Z", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"at the start", "2026-01-15T00:00:00Z", "2026-03-15T00:00:00Z", "2026-03-15T00:00:00Z", "2026-04-15T00:00:00Z"},
		{"just before the start", "2026-01-15T00:00:00Z", "2026-03-14T23:59:59Z", "2026-02-15T00:00:00Z", "2026-03-15T00:00:00Z"},
		{"anchor on the 31st clamps", "2026-01-31T00:00:00Z", "2026-02-28T12:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"anchor on the 31st in April", "2026-01-31T00:00:00Z", "2026-04-30T00:00:00Z", "2026-04-30T00:00:00Z", "2026-05-31T00:00:00Z"},
		{"leap year", "2027-01-29T00:00:00Z", "2028-02-29T01:00:00Z", "2028-02-29T00:00:00Z", "2028-03-29T00:00:00Z"},
		{"anchor in the future", "2027-06-10T00:00:00Z", "2026-11-27T00:00:00Z", "2026-11-10T00:00:00Z", "2026-12-10T00:00:00Z"},
		{"across a year", "2025-12-20T00:00:00Z", "2027-01-05T00:00:00Z", "2026-12-20T00:00:00Z", "2027-01-20T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := usage.PeriodAt(date(tt.anchor), date(tt.at))
			want := usage.Period{Start: date(tt.start), End: date(tt.end)}
			if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
				t.Errorf("PeriodAt(%s, %s) = %v; want %v", tt.anchor, tt.at, got, want)
			}
			if !got.Contains(date(tt.at)) {
				t.Errorf("period %v does not contain %s", got, tt.at)
			}
		})
	}
}

func TestPeriodBefore(t *testing.T) {
	anchor := date("2026-01-31T00:00:00Z")
	p := usage.PeriodAt(anchor, date("2026-03-31T00:00:00Z"))
	got := usage.PeriodBefore(anchor, p)
	if !got.Start.Equal(date("2026-02-28T00:00:00Z")) || !got.End.Equal(p.Start) {
		t.Errorf("PeriodBefore = %v; want [2026-02-28, %v)", got, p.Start)
	}
}

// TestPlanOverage prices a whole period under one plan: the calls above
// the included ones, by the plan's price (today's package model).
func TestPlanOverage(t *testing.T) {
	pro := usage.Plan{ID: usage.PlanPro, IncludedCalls: 100_000, PriceModel: usage.PricePackage, OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
	free := usage.Plan{ID: usage.PlanFree, IncludedCalls: 1000, HardLimit: true, PriceModel: usage.PricePackage, OverageUnitSize: 1000, Currency: "usd"}
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}
	charge := func(p usage.Plan, used int64) usage.PriceCharge {
		segs := []usage.Segment{{From: feb.Start, To: feb.End, Terms: usage.Terms{PlanID: p.ID, Effective: p}}}
		lines, err := usage.PriceLines(feb, segs, []usage.DayCalls{{Day: feb.Start, Calls: used}}, nil, feb.End)
		if err != nil {
			t.Fatal(err)
		}
		return lines[0].PriceCharge
	}
	tests := []struct {
		name          string
		plan          usage.Plan
		used          int64
		units, amount int64
	}{
		{"below quota", pro, 99_999, 0, 0},
		{"at quota", pro, 100_000, 0, 0},
		{"one above", pro, 100_001, 1, 50},
		{"exactly one unit", pro, 101_000, 1, 50},
		{"one above a unit", pro, 101_001, 2, 100},
		{"free is never billed", free, 5000, 0, 0},
		{"override price wins", pro.Apply(usage.Overrides{OverageUnitPrice: ptr(int64(7))}), 102_000, 2, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := charge(tt.plan, tt.used)
			if o.Units != tt.units || o.Amount != tt.amount {
				t.Errorf("overage of %d calls on %s = %d units, %d; want %d units, %d", tt.used, tt.plan.ID, o.Units, o.Amount, tt.units, tt.amount)
			}
		})
	}
}

func TestOverridesValidate(t *testing.T) {
	tests := []struct {
		name  string
		o     usage.Overrides
		field string
	}{
		{"empty", usage.Overrides{}, ""},
		{"negative included", usage.Overrides{IncludedCalls: ptr(int64(-1))}, "included_calls"},
		{"zero rate", usage.Overrides{RatePerSecond: ptr(0.0)}, "rate_per_second"},
		{"zero burst", usage.Overrides{Burst: ptr(0)}, "burst"},
		{"rate that wraps the interval", usage.Overrides{RatePerSecond: ptr(1e-300)}, "rate_per_second"},
		{"rate past a microsecond", usage.Overrides{RatePerSecond: ptr(1e7)}, "rate_per_second"},
		{"rate NaN", usage.Overrides{RatePerSecond: ptr(math.NaN())}, "rate_per_second"},
		{"slowest rate", usage.Overrides{RatePerSecond: ptr(usage.MinRatePerSecond)}, ""},
		{"zero unit", usage.Overrides{OverageUnitSize: ptr(int64(0))}, "overage_unit_size"},
		{"negative price", usage.Overrides{OverageUnitPrice: ptr(int64(-5))}, "overage_unit_price"},
		{"bad currency", usage.Overrides{Currency: ptr("USD")}, "currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if got := usage.ErrorField(err); got != tt.field {
				t.Errorf("Validate() field = %q (%v); want %q", got, err, tt.field)
			}
		})
	}
}

// TestPlanValidateRateLimit: a plan's rate and burst are within what the
// limiter computes: a burst that takes longer than MaxBurstRefill to come
// back at its rate is refused, naming burst.
func TestPlanValidateRateLimit(t *testing.T) {
	base := usage.Plan{ID: "pro", RatePerSecond: 100, Burst: 200, Currency: "usd", PriceModel: usage.PricePerUnit, OverageUnitSize: 1000, OverageUnitPrice: 10}
	if err := base.Validate(); err != nil {
		t.Fatalf("base plan: %v", err)
	}
	for _, tt := range []struct {
		name  string
		rate  float64
		burst int
		field string
	}{
		{"the slowest rate, a burst of 300", usage.MinRatePerSecond, 300, ""},
		{"the slowest rate, a burst of 400 (12.7 years)", usage.MinRatePerSecond, 400, "burst"},
		{"1e-9 a second, a burst of 10,000", 1e-9, 10_000, "rate_per_second"},
		{"the largest burst at one call a second (68 years)", 1, usage.MaxBurst, "burst"},
		{"the largest burst at the fastest rate", usage.MaxRatePerSecond, usage.MaxBurst, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			p.RatePerSecond, p.Burst = tt.rate, tt.burst
			if got := usage.ErrorField(p.Validate()); got != tt.field {
				t.Errorf("Validate() field = %q (%v); want %q", got, p.Validate(), tt.field)
			}
		})
	}
}

func TestErrorHelpers(t *testing.T) {
	err := usage.Errorf(usage.CodeConflict, "exists")
	if usage.ErrorCode(err) != usage.CodeConflict || usage.ErrorMessage(err) != "exists" {
		t.Errorf("got %q %q", usage.ErrorCode(err), usage.ErrorMessage(err))
	}
	plain := errTest("boom")
	if usage.ErrorCode(plain) != usage.CodeInternal || usage.ErrorMessage(plain) != "internal error" {
		t.Errorf("plain error: got %q %q", usage.ErrorCode(plain), usage.ErrorMessage(plain))
	}
	if usage.ErrorCode(nil) != "" {
		t.Errorf("nil error has a code")
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

func ptr[T any](v T) *T { return &v }

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
