package usage_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/usage"
)

// utcDay parses a YYYY-MM-DD day.
func utcDay(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDayRange(t *testing.T) {
	r := usage.DayRange{From: utcDay("2031-02-27"), To: utcDay("2031-03-02")}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []time.Time{utcDay("2031-02-27"), utcDay("2031-02-28"), utcDay("2031-03-01"), utcDay("2031-03-02")}
	if diff := cmp.Diff(want, r.Days()); diff != "" {
		t.Errorf("Days (-want +got):\n%s", diff)
	}
	if r.Len() != 4 {
		t.Errorf("Len() = %d; want 4", r.Len())
	}
	// A leap year's 366 days are the longest range.
	year := usage.DayRange{From: utcDay("2028-01-01"), To: utcDay("2028-12-31")}
	if err := year.Validate(); err != nil || year.Len() != usage.MaxRangeDays || len(year.Days()) != usage.MaxRangeDays {
		t.Errorf("%v: Validate %v, Len %d, %d days; want valid, %d", year, err, year.Len(), len(year.Days()), usage.MaxRangeDays)
	}
}

func TestDayRangeValidate(t *testing.T) {
	tests := []struct {
		name  string
		r     usage.DayRange
		field string
	}{
		{"no from", usage.DayRange{To: utcDay("2031-01-01")}, "from"},
		{"no to", usage.DayRange{From: utcDay("2031-01-01")}, "to"},
		{"from not midnight", usage.DayRange{From: utcDay("2031-01-01").Add(time.Hour), To: utcDay("2031-01-02")}, "from"},
		{"to not midnight", usage.DayRange{From: utcDay("2031-01-01"), To: utcDay("2031-01-02").Add(time.Second)}, "to"},
		{"midnight elsewhere", usage.DayRange{From: utcDay("2031-01-01"), To: time.Date(2031, 1, 2, 0, 0, 0, 0, time.FixedZone("CET", 3600))}, "to"},
		{"reversed", usage.DayRange{From: utcDay("2031-01-02"), To: utcDay("2031-01-01")}, "to"},
		{"367 days", usage.DayRange{From: utcDay("2028-01-01"), To: utcDay("2029-01-01")}, "to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate()
			if usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != tt.field {
				t.Errorf("Validate(%v) = %v; want %s naming %q", tt.r, err, usage.CodeInvalid, tt.field)
			}
		})
	}
}
