package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/usage"
)

var (
	freePlan = usage.Plan{ID: usage.PlanFree, Name: "Free", IncludedCalls: 1000, HardLimit: true, RatePerSecond: 2, Burst: 10,
		PriceModel: usage.PricePackage, OverageUnitSize: 1000, Currency: "usd"}
	proTerms = usage.Plan{ID: usage.PlanPro, Name: "Pro", IncludedCalls: 100_000, RatePerSecond: 50, Burst: 100,
		PriceModel: usage.PricePackage, OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
	entTerms = usage.Plan{ID: usage.PlanEnterprise, Name: "Enterprise", IncludedCalls: 10_000_000, RatePerSecond: 500, Burst: 1000,
		PriceModel: usage.PricePackage, OverageUnitSize: 1000, OverageUnitPrice: 20, Currency: "usd"}
)

func TestDecideChange(t *testing.T) {
	anchor := day(2026, 2, 1)
	now := time.Date(2026, 2, 10, 14, 0, 0, 0, time.UTC)
	pro := &usage.Subscription{UserID: limitUser, PlanID: usage.PlanPro, Effective: proTerms, PeriodAnchor: anchor}
	pending := *pro
	pending.Next = &usage.Terms{From: day(2026, 3, 1), PlanID: usage.PlanFree, Effective: freePlan}
	eur := "eur"
	tests := []struct {
		name   string
		cur    *usage.Subscription
		planID string
		o      usage.Overrides
		next   usage.Plan
		change string
		at     time.Time
		field  string
	}{
		{"no subscription", nil, usage.PlanPro, usage.Overrides{}, proTerms, usage.ChangeStart, day(2026, 2, 10), ""},
		{"the same terms", pro, usage.PlanPro, usage.Overrides{}, proTerms, usage.ChangeSame, now, ""},
		{"pro to enterprise", pro, usage.PlanEnterprise, usage.Overrides{}, entTerms, usage.ChangeUpgrade, now, ""},
		{"pro to free", pro, usage.PlanFree, usage.Overrides{}, freePlan, usage.ChangeDowngrade, day(2026, 3, 1), ""},
		{"a rate override alone is an upgrade", pro, usage.PlanPro, usage.Overrides{Burst: ptr(5)}, proTerms.Apply(usage.Overrides{Burst: ptr(5)}),
			usage.ChangeUpgrade, now, ""},
		{"fewer included calls by override", pro, usage.PlanPro, usage.Overrides{IncludedCalls: ptr(int64(10))},
			proTerms.Apply(usage.Overrides{IncludedCalls: ptr(int64(10))}), usage.ChangeDowngrade, day(2026, 3, 1), ""},
		{"pro again while free is pending: same, cancelling it", &pending, usage.PlanPro, usage.Overrides{}, proTerms, usage.ChangeSame, now, ""},
		{"another currency", pro, usage.PlanEnterprise, usage.Overrides{Currency: &eur}, entTerms.Apply(usage.Overrides{Currency: &eur}), "", time.Time{}, "currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			change, at, err := usage.DecideChange(tt.cur, tt.planID, tt.o, tt.next, now)
			if usage.ErrorField(err) != tt.field || change != tt.change || !at.Equal(tt.at) {
				t.Errorf("DecideChange = %q at %v, %v; want %q at %v (field %q)", change, at, err, tt.change, tt.at, tt.field)
			}
		})
	}
	// Once the period is over, the pending downgrade is the terms in force.
	after := day(2026, 3, 5)
	if change, _, _ := usage.DecideChange(&pending, usage.PlanFree, usage.Overrides{}, freePlan, after); change != usage.ChangeSame {
		t.Errorf("free after free took over = %q; want same", change)
	}
}

func TestSegments(t *testing.T) {
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}
	start := usage.Terms{From: day(2026, 1, 1), PlanID: "pro", Effective: proTerms, Change: usage.ChangeStart}
	up := usage.Terms{From: time.Date(2026, 2, 10, 14, 0, 0, 0, time.UTC), PlanID: "enterprise", Effective: entTerms, Change: usage.ChangeUpgrade}
	up2 := usage.Terms{From: time.Date(2026, 2, 10, 18, 0, 0, 0, time.UTC), PlanID: "pro", Effective: proTerms, Change: usage.ChangeUpgrade}
	down := usage.Terms{From: day(2026, 3, 1), PlanID: "free", Effective: freePlan, Change: usage.ChangeDowngrade}
	tests := []struct {
		name    string
		history []usage.Terms
		want    [][2]time.Time
		plans   []string
	}{
		{"one entry from before the period", []usage.Terms{start}, [][2]time.Time{{feb.Start, feb.End}}, []string{"pro"}},
		{"an upgrade: its day goes to the new terms", []usage.Terms{start, up},
			[][2]time.Time{{feb.Start, day(2026, 2, 10)}, {day(2026, 2, 10), feb.End}}, []string{"pro", "enterprise"}},
		{"two changes on one day: the later wins the day", []usage.Terms{start, up, up2},
			[][2]time.Time{{feb.Start, day(2026, 2, 10)}, {day(2026, 2, 10), feb.End}}, []string{"pro", "pro"}},
		{"a downgrade at the period's end starts the next period", []usage.Terms{start, down},
			[][2]time.Time{{feb.Start, feb.End}}, []string{"pro"}},
		{"the subscription started inside the period", []usage.Terms{{From: day(2026, 2, 20), PlanID: "pro", Effective: proTerms}},
			[][2]time.Time{{day(2026, 2, 20), feb.End}}, []string{"pro"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [][2]time.Time
			var plans []string
			for _, s := range usage.Segments(feb, tt.history) {
				got = append(got, [2]time.Time{s.From, s.To})
				plans = append(plans, s.Terms.PlanID)
			}
			if d := cmp.Diff(tt.want, got); d != "" || !cmp.Equal(tt.plans, plans) {
				t.Errorf("Segments (-want +got):\n%s plans %v; want %v", d, plans, tt.plans)
			}
		})
	}
}

func TestNeedsDays(t *testing.T) {
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}
	pro := usage.Terms{From: day(2026, 1, 1), PlanID: "pro", Effective: proTerms}
	for _, tt := range []struct {
		name    string
		history []usage.Terms
		want    bool
	}{
		{"one set of terms all period", []usage.Terms{pro}, false},
		{"a downgrade at the period's end", []usage.Terms{pro, {From: feb.End, PlanID: "free", Effective: freePlan}}, false},
		{"an upgrade inside", []usage.Terms{pro, {From: day(2026, 2, 10), PlanID: "enterprise", Effective: entTerms}}, true},
		{"started inside", []usage.Terms{{From: day(2026, 2, 10), PlanID: "pro", Effective: proTerms}}, true},
	} {
		if got := usage.NeedsDays(feb, tt.history); got != tt.want {
			t.Errorf("%s: NeedsDays = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestIncludedShare(t *testing.T) {
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)} // 28 days
	// 100,000 × 9/28 = 32,142.86 → 32,143; the rest 67,857: exactly 100,000.
	a := usage.IncludedShare(100_000, feb, feb.Start, day(2026, 2, 10))
	b := usage.IncludedShare(100_000, feb, day(2026, 2, 10), feb.End)
	if a != 32_143 || b != 67_857 {
		t.Errorf("shares = %d + %d; want 32,143 + 67,857", a, b)
	}
	// Three thirds of 100 (in days of a 30-day period) still add up to 100.
	apr := usage.Period{Start: day(2026, 4, 1), End: day(2026, 5, 1)}
	var sum int64
	for _, d := range [][2]int{{1, 11}, {11, 21}, {21, 31}} {
		sum += usage.IncludedShare(100, apr, day(2026, 4, d[0]), apr.Start.AddDate(0, 0, d[1]-1))
	}
	if sum != 100 {
		t.Errorf("thirds add up to %d; want 100", sum)
	}
	if got := usage.IncludedShare(100_000, feb, feb.Start, feb.End); got != 100_000 {
		t.Errorf("whole period = %d", got)
	}
}

func TestPriceLinesAndProject(t *testing.T) {
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}
	history := []usage.Terms{{From: day(2026, 1, 1), PlanID: "pro", Effective: proTerms},
		{From: time.Date(2026, 2, 10, 14, 0, 0, 0, time.UTC), PlanID: "enterprise", Effective: entTerms}}
	days := []usage.DayCalls{{Day: day(2026, 2, 3), Calls: 90_000}, {Day: day(2026, 2, 10), Calls: 1_000}, {Day: day(2026, 2, 20), Calls: 9_000_000}}
	segs := usage.Segments(feb, history)
	// At 11 February (grace over for the pro segment only), just the pro line:
	// 90,000 calls, 32,143 included → 57,857 billable: 58 packages, 29.00.
	lines, err := usage.PriceLines(feb, segs, days, nil, day(2026, 2, 11))
	if err != nil || len(lines) != 1 || lines[0].Used != 90_000 || lines[0].Included != 32_143 || lines[0].Units != 58 || lines[0].Amount != 2900 {
		t.Fatalf("pro line = %+v, %v", lines, err)
	}
	// The whole period: enterprise has 6,785,714 included of 9,001,000 used:
	// 2,215,286 billable, 2,216 packages at 0.20 = 443.20.
	lines, _ = usage.PriceLines(feb, segs, days, nil, feb.End)
	c, err := usage.NewPeriodCharge(lines)
	if err != nil || len(lines) != 2 || lines[1].Included != 6_785_714 || lines[1].Amount != 44_320 || c.Amount != 2900+44_320 || c.Currency != "usd" {
		t.Errorf("period charge = %+v, %v", c, err)
	}
	// Recorded terms win over the history's for their segment.
	rec := lines[0]
	rec.Price.UnitPrice = 40
	again, _ := usage.PriceLines(feb, segs, days, []usage.Line{rec}, feb.End)
	if again[0].Amount != 58*40 || again[1].Amount != 44_320 {
		t.Errorf("re-priced under recorded terms = %d, %d", again[0].Amount, again[1].Amount)
	}
	// Projection at 15 February 00:00 (14 of 28 days): the 9,091,000 calls
	// so far double; the 9,091,000 more go to the enterprise line.
	proj, err := usage.Project(feb, lines, day(2026, 2, 15))
	if err != nil || proj[1].Used != 9_001_000+9_091_000 || proj[0].Used != 90_000 || lines[1].Used != 9_001_000 {
		t.Errorf("projection = %+v, %v", proj, err)
	}
	// In the first hour, the elapsed time counts as an hour.
	early, _ := usage.Project(feb, []usage.Line{{Used: 10, Included: 100, Bills: true, Price: proTerms.Price()}}, feb.Start.Add(time.Minute))
	if early[0].Used != 10+10*(28*24*3600-60)/3600 {
		t.Errorf("projection in the first minute = %d", early[0].Used)
	}
}

// TestPeriodChargeBounds: a period at the most calls the bounds of an
// event let it count (31 days of 8.64 × 10^16) is priced exactly at 3
// minor units a call; at the dearest price such a line is an error, and so
// is the sum of two lines that each fit (an upgrade in the period) and a
// projection past int64: never a wrapped number.
func TestPeriodChargeBounds(t *testing.T) {
	const dayMax = 86_400 * 1_000_000 * usage.MaxQuantity // the write path's ceiling for a day, all for one user
	mar := usage.Period{Start: day(2026, 3, 1), End: day(2026, 4, 1)}
	var days []usage.DayCalls
	for d := mar.Start; d.Before(mar.End); d = d.AddDate(0, 0, 1) {
		days = append(days, usage.DayCalls{Day: d, Calls: dayMax})
	}
	perCall := func(price int64) usage.Plan {
		p := proTerms
		p.IncludedCalls, p.PriceModel, p.OverageUnitSize, p.OverageUnitPrice = 0, usage.PricePerUnit, 1, price
		return p
	}
	cheap := []usage.Terms{{From: mar.Start, PlanID: "pro", Effective: perCall(3)}}
	lines, err := usage.PriceLines(mar, usage.Segments(mar, cheap), days, nil, mar.End)
	if err != nil {
		t.Fatalf("a full period at 3 a call: %v", err)
	}
	if c, err := usage.NewPeriodCharge(lines); err != nil || c.Used != 31*dayMax || c.Amount != 3*31*dayMax {
		t.Errorf("a full period at 3 a call = %d calls, %d, %v; want %d, %d", c.Used, c.Amount, err, 31*dayMax, 3*31*dayMax)
	}
	dear := []usage.Terms{{From: mar.Start, PlanID: "pro", Effective: perCall(usage.MaxCallPrice)}}
	if _, err := usage.PriceLines(mar, usage.Segments(mar, dear), days, nil, mar.End); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("a full period at %d a call: %v; want CodeInvalid", usage.MaxCallPrice, err)
	}
	// 5 × 10^15 calls on either side of an upgrade, 5 × 10^18 each.
	upgraded := append(dear, usage.Terms{From: day(2026, 3, 16), PlanID: "enterprise", Effective: perCall(usage.MaxCallPrice)})
	split := []usage.DayCalls{{Day: day(2026, 3, 2), Calls: 5_000_000_000_000_000}, {Day: day(2026, 3, 20), Calls: 5_000_000_000_000_000}}
	lines, err = usage.PriceLines(mar, usage.Segments(mar, upgraded), split, nil, mar.End)
	if err != nil || len(lines) != 2 || lines[0].Amount != 5_000_000_000_000_000_000 || lines[1].Amount != lines[0].Amount {
		t.Fatalf("two lines at 5 × 10^15 calls = %+v, %v", lines, err)
	}
	if c, err := usage.NewPeriodCharge(lines); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("the sum of two lines of 5 × 10^18 = %d, %v; want CodeInvalid", c.Amount, err)
	}
	// Half the period gone: the projection doubles 5 × 10^18 calls.
	half := mar.Start.Add(mar.End.Sub(mar.Start) / 2)
	if p, err := usage.Project(mar, []usage.Line{{Used: 5_000_000_000_000_000_000}}, half); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("projection of 5 × 10^18 calls at half the period = %+v, %v; want CodeInvalid", p, err)
	}
}

// TestLimiter_DowngradeAtPeriodEnd: a downgrade waiting for the period's
// end leaves the terms in force alone until then, and the first call of the
// next period is decided under the new ones.
func TestLimiter_DowngradeAtPeriodEnd(t *testing.T) {
	sub := &usage.Subscription{UserID: limitUser, PlanID: usage.PlanPro, Version: "v1", PeriodAnchor: day(2026, 1, 1), Effective: proTerms,
		Next: &usage.Terms{From: day(2026, 4, 1), PlanID: usage.PlanFree, Effective: freePlan, Change: usage.ChangeDowngrade}}
	f := newFakeRates(sub)
	clk := &limitClock{t: time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)}
	l := usage.NewLimiter(f, usage.LimiterOptions{Now: clk.Now})
	ctx := context.Background()
	id := usage.Identity{UserID: limitUser}
	d, err := l.Check(ctx, id, 1)
	if err != nil || d.Limit != 100 || d.Quota.Included != 100_000 || d.Quota.Hard {
		t.Fatalf("before the period's end: %+v, %v; want pro's terms", d, err)
	}
	clk.Add(2 * time.Second)
	d, err = l.Check(ctx, id, 1)
	if err != nil || d.Limit != 10 || d.Quota.Included != 1000 || !d.Quota.Hard || !d.Quota.Period.Start.Equal(day(2026, 4, 1)) {
		t.Errorf("after the period's end: %+v, %v; want free's terms", d, err)
	}
}

// TestSummarizeHardQuotaProjection: a plan with a hard quota cannot end its
// period above the included calls, however fast it used them (one that
// overshot by the limiter's bound stays where it is); a soft quota's
// projection goes on linearly.
func TestSummarizeHardQuotaProjection(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := start.Add(24 * time.Hour) // one day of 31
	for _, tt := range []struct {
		name      string
		hard      bool
		used      int64
		projected int64
	}{
		{"hard, under the quota", true, 500, 1000},
		{"hard, overshot", true, 1010, 1010},
		{"hard, slow enough", true, 10, 10 + 10*30},
		{"soft", false, 500, 500 + 500*30},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := usage.Plan{ID: "p", Name: "P", IncludedCalls: 1000, RatePerSecond: 10, Burst: 10, HardLimit: tt.hard,
				PriceModel: usage.PricePerUnit, OverageUnitSize: 1, OverageUnitPrice: 1, Currency: "usd"}
			sub := &usage.Subscription{UserID: "u", PlanID: "p", Effective: plan, PeriodAnchor: start}
			days := []usage.DayCalls{{Day: start, Calls: tt.used}}
			s, err := usage.Summarize(sub, nil, days, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			if s.Projected.Used != tt.projected {
				t.Errorf("projected calls = %d; want %d", s.Projected.Used, tt.projected)
			}
			if want := max(0, tt.projected-1000); s.Projected.Billable != want || s.Projected.Amount != want {
				t.Errorf("projected billable %d, amount %d; want %d", s.Projected.Billable, s.Projected.Amount, want)
			}
		})
	}
}
