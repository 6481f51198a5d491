package awscron_test

import (
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/nexus/usage/cmd/internal/awscron"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNext(t *testing.T) {
	tests := []struct {
		expr string
		from string
		want []string // successive firings
	}{
		{"cron(30 0 * * ? *)", "2026-03-10 12:00", []string{"2026-03-11 00:30", "2026-03-12 00:30"}},
		{"cron(30 0 * * ? *)", "2026-03-10 00:29", []string{"2026-03-10 00:30", "2026-03-11 00:30"}},
		// Strictly after: a firing time itself moves on.
		{"cron(30 0 * * ? *)", "2026-03-10 00:30", []string{"2026-03-11 00:30"}},
		{"cron(0/15 * * * ? *)", "2026-03-10 10:07", []string{"2026-03-10 10:15", "2026-03-10 10:30", "2026-03-10 10:45", "2026-03-10 11:00"}},
		{"cron(5,10 8-9 * * ? *)", "2026-03-10 08:07", []string{"2026-03-10 08:10", "2026-03-10 09:05", "2026-03-10 09:10", "2026-03-11 08:05"}},
		// 2026-03-10 is a Tuesday; MON-FRI at 18:00.
		{"cron(0 18 ? * MON-FRI *)", "2026-03-13 19:00", []string{"2026-03-16 18:00", "2026-03-17 18:00"}},
		{"cron(0 18 ? * 2-6 *)", "2026-03-13 19:00", []string{"2026-03-16 18:00"}},
		{"cron(0 0 1 * ? *)", "2026-01-15 00:00", []string{"2026-02-01 00:00", "2026-03-01 00:00"}},
		{"cron(0 0 L * ? *)", "2026-02-01 00:00", []string{"2026-02-28 00:00", "2026-03-31 00:00", "2026-04-30 00:00"}},
		{"cron(0 0 L 2 ? *)", "2027-06-01 00:00", []string{"2028-02-29 00:00"}},
		{"cron(0 0 31 * ? *)", "2026-04-01 00:00", []string{"2026-05-31 00:00", "2026-07-31 00:00"}},
		// The last Friday, and the second Monday of the month.
		{"cron(0 12 ? * 6L *)", "2026-03-01 00:00", []string{"2026-03-27 12:00", "2026-04-24 12:00"}},
		{"cron(0 9 ? * MON#2 *)", "2026-03-01 00:00", []string{"2026-03-09 09:00", "2026-04-13 09:00"}},
		{"cron(0 10 ? JAN,jul SUN *)", "2026-06-30 00:00", []string{"2026-07-05 10:00", "2026-07-12 10:00"}},
		{"cron(0 0 1 1 ? 2027-2028)", "2026-03-01 00:00", []string{"2027-01-01 00:00", "2028-01-01 00:00", "0001-01-01 00:00"}},
		{"rate(5 minutes)", "2026-03-10 10:07", []string{"2026-03-10 10:10", "2026-03-10 10:15"}},
		{"rate(1 hour)", "2026-03-10 10:07", []string{"2026-03-10 11:00"}},
		{"rate(1 day)", "2026-03-10 10:07", []string{"2026-03-11 00:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr+"@"+tt.from, func(t *testing.T) {
			s, err := awscron.Parse(tt.expr)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.expr, err)
			}
			cur := at(tt.from)
			for i, w := range tt.want {
				got := s.Next(cur)
				want := time.Time{}
				if w != "0001-01-01 00:00" {
					want = at(w)
				}
				if !got.Equal(want) {
					t.Fatalf("firing %d: Next(%s) = %s; want %s", i, cur.Format(time.RFC3339), got.Format(time.RFC3339), want.Format(time.RFC3339))
				}
				cur = got
			}
		})
	}
}

func TestNextInLocation(t *testing.T) {
	s, err := awscron.Parse("cron(30 2 * * ? *)")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err) // time/tzdata is embedded: this cannot depend on the machine
	}
	// 2026-03-08 02:30 does not exist in New York (clocks jump 02:00 → 03:00).
	from := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	got := s.Next(from)
	want := time.Date(2026, 3, 9, 2, 30, 0, 0, ny)
	if !got.Equal(want) {
		t.Errorf("Next(%s) = %s; want %s (the missing local time is skipped)", from, got, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []string{
		"",
		"30 0 * * ? *",            // no cron( )
		"cron(30 0 * * ?)",        // 5 fields
		"cron(30 0 * * * *)",      // neither day field is ?
		"cron(30 0 ? * ? *)",      // both are
		"cron(60 0 * * ? *)",      // minute out of range
		"cron(0 24 * * ? *)",      // hour out of range
		"cron(0 0 0 * ? *)",       // day 0
		"cron(0 0 * 13 ? *)",      // month 13
		"cron(0 0 ? * 8 *)",       // weekday 8
		"cron(0 0 ? * MON#6 *)",   // sixth Monday
		"cron(0 0 15W * ? *)",     // W unsupported
		"cron(0/0 0 * * ? *)",     // zero step
		"cron(10-5 0 * * ? *)",    // backwards range
		"cron(x 0 * * ? *)",       // not a number
		"cron(0 0 * * ? 1969)",    // year out of range
		"rate(0 minutes)",         // zero
		"rate(1 minutes)",         // plural with 1
		"rate(5 minute)",          // singular with 5
		"rate(5 weeks)",           // unit
		"rate(five minutes)",      // number
		"at(2026-03-10T00:00:00)", // one-time schedules are not periodic
	}
	for _, expr := range tests {
		if _, err := awscron.Parse(expr); err == nil {
			t.Errorf("Parse(%q) = nil error; want an error", expr)
		}
	}
}
