package usage_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
	"github.com/nexus/usage/shared/usage/usagetest"
)

const termsUser = "3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607"

var (
	freePlan = usagetest.FreePlan
	proTerms = usagetest.ProPlan
	entTerms = usagetest.EnterprisePlan
)

func TestDecideChange(t *testing.T) {
	anchor := day(2026, 2, 1)
	now := time.Date(2026, 2, 10, 14, 0, 0, 0, time.UTC)
	pro := &usage.Subscription{UserID: termsUser, PlanID: usage.PlanPro, Effective: proTerms, PeriodAnchor: anchor}
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
			change, at, err := usage.DecideChange(tt.cur, historyOf(tt.cur), tt.planID, tt.o, tt.next, now)
			if usage.ErrorField(err) != tt.field || change != tt.change || !at.Equal(tt.at) {
				t.Errorf("DecideChange = %q at %v, %v; want %q at %v (field %q)", change, at, err, tt.change, tt.at, tt.field)
			}
		})
	}
	// Once the period is over, the pending downgrade is the terms in force.
	after := day(2026, 3, 5)
	if change, _, _ := usage.DecideChange(&pending, historyOf(&pending), usage.PlanFree, usage.Overrides{}, freePlan, after); change != usage.ChangeSame {
		t.Errorf("free after free took over = %q; want same", change)
	}
}

// historyOf is the terms history of a subscription made by DecideChange's
// conventions: its terms from its anchor, then its pending downgrade.
func historyOf(s *usage.Subscription) []usage.Terms {
	if s == nil {
		return nil
	}
	h := []usage.Terms{{From: s.PeriodAnchor, PlanID: s.PlanID, Overrides: s.Overrides, Effective: s.Effective, Change: usage.ChangeStart}}
	if s.Next != nil {
		h = append(h, *s.Next)
	}
	return h
}

func TestSegments(t *testing.T) {
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}
	start := usage.Terms{From: day(2026, 1, 1), PlanID: "pro", Effective: proTerms, Change: usage.ChangeStart}
	up := usage.Terms{From: time.Date(2026, 2, 10, 14, 0, 0, 0, time.UTC), PlanID: "enterprise", Effective: entTerms, Change: usage.ChangeUpgrade}
	up2 := usage.Terms{From: time.Date(2026, 2, 10, 18, 0, 0, 0, time.UTC), PlanID: "pro", Effective: proTerms, Change: usage.ChangeUpgrade}
	down := usage.Terms{From: day(2026, 3, 1), PlanID: "free", Effective: freePlan, Change: usage.ChangeDowngrade}
	rateOnly := usage.Terms{From: day(2026, 2, 4), PlanID: "pro", Effective: proTerms.Apply(usage.Overrides{RatePerSecond: ptr(75.0)}),
		Change: usage.ChangeUpgrade}
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
			[][2]time.Time{{feb.Start, feb.End}}, []string{"pro"}},
		{"a change that charges alike (a rate limit) starts no segment", []usage.Terms{start, rateOnly, up},
			[][2]time.Time{{feb.Start, day(2026, 2, 10)}, {day(2026, 2, 10), feb.End}}, []string{"pro", "enterprise"}},
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
		if got := billing.NeedsDays(feb, tt.history); got != tt.want {
			t.Errorf("%s: NeedsDays = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestPriceLinesAndProject(t *testing.T) {
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}
	history := []usage.Terms{{From: day(2026, 1, 1), PlanID: "pro", Effective: proTerms},
		{From: time.Date(2026, 2, 10, 14, 0, 0, 0, time.UTC), PlanID: "enterprise", Effective: entTerms}}
	days := []usage.DayCalls{{Day: day(2026, 2, 3), Calls: 150_000}, {Day: day(2026, 2, 10), Calls: 1_000}, {Day: day(2026, 2, 20), Calls: 10_000_000}}
	segs := usage.Segments(feb, history)
	// At 11 February (grace over for the pro segment only), just the pro line:
	// 150,000 calls of pro's 100,000 included → 50,000 billable: 50 packages, 25.00.
	lines, err := usage.PriceLines(feb, segs, days, nil, day(2026, 2, 11))
	if err != nil || len(lines) != 1 || lines[0].Used != 150_000 || lines[0].Included != 100_000 || lines[0].Units != 50 || lines[0].Amount != 2500 {
		t.Fatalf("pro line = %+v, %v", lines, err)
	}
	// The whole period: 10,151,000 calls against enterprise's 10,000,000
	// included, 50,000 of them billable already: 101,000 more, billable calls
	// 50,001 to 151,000 at enterprise's price: 151 packages less 50, 20.20.
	lines, _ = usage.PriceLines(feb, segs, days, nil, feb.End)
	c, err := usage.NewPeriodCharge(lines)
	if err != nil || len(lines) != 2 || lines[1].Included != 10_000_000 || lines[1].UsedBefore != 150_000 || lines[1].BillableBefore != 50_000 ||
		lines[1].Calls != 101_000 || lines[1].Units != 101 || lines[1].Amount != 2020 || c.Amount != 2500+2020 || c.Billable != 151_000 ||
		c.Included != 10_000_000 || c.Used != 10_151_000 || c.Currency != "usd" {
		t.Errorf("period charge = %+v, %v", c, err)
	}
	if got, want := lines[1].Describe(), "billable calls 50,001 – 151,000 of the period: 151 × 1,000 calls at 0.20 USD = 30.20 USD, "+
		"less 10.00 USD for the first 50,000: 20.20 USD"; got != want {
		t.Errorf("Describe = %q; want %q", got, want)
	}
	// Recorded terms win over the history's for their segment.
	rec := lines[0]
	rec.Price.UnitPrice = 40
	again, _ := usage.PriceLines(feb, segs, days, []usage.Line{rec}, feb.End)
	if again[0].Amount != 50*40 || again[1].Amount != 2020 {
		t.Errorf("re-priced under recorded terms = %d, %d", again[0].Amount, again[1].Amount)
	}
	// A recorded line of the rule before (a prorated share of the included
	// calls) keeps its terms, not its share: the history's included calls.
	rec.Prorated, rec.Included = true, 32_143
	again, _ = usage.PriceLines(feb, segs, days, []usage.Line{rec}, feb.End)
	if again[0].Included != 100_000 || again[0].Amount != 50*40 {
		t.Errorf("a prorated recorded line re-priced = %+v", again[0])
	}
	// Projection at 15 February 00:00 (14 of 28 days): the 10,151,000 calls
	// so far double; the 10,151,000 more go to the enterprise line.
	proj, err := usage.Project(feb, lines, day(2026, 2, 15))
	if err != nil || proj[1].Used != 10_001_000+10_151_000 || proj[0].Used != 150_000 || lines[1].Used != 10_001_000 ||
		proj[1].Calls != 20_302_000-10_000_000-50_000 {
		t.Errorf("projection = %+v, %v", proj, err)
	}
	// In the first hour, the elapsed time counts as an hour.
	early, _ := usage.Project(feb, []usage.Line{{Used: 10, Included: 100, Bills: true, Price: proTerms.Price()}}, feb.Start.Add(time.Minute))
	if early[0].Used != 10+10*(28*24*3600-60)/3600 {
		t.Errorf("projection in the first minute = %d", early[0].Used)
	}
}

// TestChangesAndTheAllowance holds the pricing to the invariants of
// docs/overage.md, on the pro user of the issue (500 included calls by
// override, 400 calls on the first two days of its period).
func TestChangesAndTheAllowance(t *testing.T) {
	mar := usage.Period{Start: day(2026, 3, 1), End: day(2026, 4, 1)}
	pro500 := proTerms.Apply(usage.Overrides{IncludedCalls: ptr(int64(500))})
	start := usage.Terms{From: day(2026, 2, 1), PlanID: "pro", Effective: pro500}
	change := func(p usage.Plan) usage.Terms {
		return usage.Terms{From: time.Date(2026, 3, 12, 9, 0, 0, 0, time.UTC), PlanID: p.ID, Effective: p, Change: usage.ChangeUpgrade}
	}
	early := []usage.DayCalls{{Day: day(2026, 3, 1), Calls: 200}, {Day: day(2026, 3, 2), Calls: 200}}
	price := func(h []usage.Terms, days []usage.DayCalls, until time.Time) usage.PeriodCharge {
		t.Helper()
		lines, err := usage.PriceLines(mar, usage.Segments(mar, h), days, nil, until)
		if err != nil {
			t.Fatal(err)
		}
		c, err := usage.NewPeriodCharge(lines)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alone := price([]usage.Terms{start}, early, mar.End)
	if alone.Billable != 0 || alone.Amount != 0 {
		t.Fatalf("400 calls of 500 included = %+v", alone)
	}
	// A new rate limit alone: the period is one segment, as without it.
	rate := change(pro500.Apply(usage.Overrides{RatePerSecond: ptr(75.0)}))
	if segs := usage.Segments(mar, []usage.Terms{start, rate}); len(segs) != 1 {
		t.Errorf("a rate limit change cut the period into %d segments", len(segs))
	}
	if c := price([]usage.Terms{start, rate}, early, mar.End); c.Billable != 0 || c.Amount != 0 {
		t.Errorf("after a rate limit change: %d billable calls, %d; want none (the issue: 368, 0.50 USD)", c.Billable, c.Amount)
	}
	// An upgrade (more included calls): the 400 calls before it cost what
	// pro charges for them over the whole period, nothing.
	more := change(pro500.Apply(usage.Overrides{IncludedCalls: ptr(int64(2000))}))
	if c := price([]usage.Terms{start, more}, early, day(2026, 3, 12)); c.Billable != 0 || c.Amount != 0 {
		t.Errorf("the segment an upgrade closed: %d billable calls, %d; want none (the issue: 368)", c.Billable, c.Amount)
	}
	// A new price with the allowance kept: 700 calls before it, 300 after.
	// The 200 billable before cost pro's price; the 300 after the new one,
	// package by package from the period's 201st billable call on.
	dear := change(pro500.Apply(usage.Overrides{OverageUnitPrice: ptr(int64(80)), OverageUnitSize: ptr(int64(100))}))
	days := append(slices.Clone(early), usage.DayCalls{Day: day(2026, 3, 5), Calls: 300}, usage.DayCalls{Day: day(2026, 3, 20), Calls: 300})
	c := price([]usage.Terms{start, dear}, days, mar.End)
	if c.Lines[0].Calls != 200 || c.Lines[0].Amount != 50 || c.Lines[1].Calls != 300 || c.Lines[1].BillableBefore != 200 || c.Lines[1].Amount != 5*80-2*80 {
		t.Errorf("a price change: lines %+v", c.Lines)
	}
	// Two segments of one price cost what one does: tiers and packages
	// count the period's billable calls, not a segment's.
	same := []usage.Terms{start, change(pro500.Apply(usage.Overrides{IncludedCalls: ptr(int64(500)), Burst: ptr(7)})),
		{From: day(2026, 3, 20), PlanID: "pro", Effective: pro500}}
	tiers := pro500.Apply(usage.Overrides{PriceModel: ptr(usage.PriceGraduated), OverageUnitSize: ptr(int64(100)),
		Tiers: []usage.Tier{{UpTo: ptr(int64(150)), UnitPrice: 100, FlatPrice: 30}, {UnitPrice: 10}}})
	for _, h := range [][]usage.Terms{same, {{From: start.From, PlanID: "pro", Effective: tiers},
		{From: day(2026, 3, 4), PlanID: "pro", Effective: tiers.Apply(usage.Overrides{HardLimit: ptr(true)})}}} {
		split, whole := price(h, days, mar.End), price(h[:1], days, mar.End)
		if split.Amount != whole.Amount || split.Billable != whole.Billable {
			t.Errorf("split by changes that charge alike: %d for %d calls; whole: %d for %d", split.Amount, split.Billable, whole.Amount, whole.Billable)
		}
	}
	// A history with fewer included calls inside a period (written by
	// hand: plan changes make downgrades wait for the period's end) never
	// bills calls made before it: 400 calls, then 100 included from the
	// 12th, then 50 more calls: 50 billable, not 350.
	fewer := change(pro500.Apply(usage.Overrides{IncludedCalls: ptr(int64(100))}))
	late := append(slices.Clone(early), usage.DayCalls{Day: day(2026, 3, 15), Calls: 50})
	if c := price([]usage.Terms{start, fewer}, late, mar.End); c.Billable != 50 {
		t.Errorf("fewer included calls inside the period: %d billable calls; want 50", c.Billable)
	}
}

// TestTieredPriceIgnoresUnitPrice: a graduated or volume price charges by
// its tiers, so a change of the per_unit and package price it keeps (an
// overage_unit_price override) is a change that charges alike: no
// segment, nothing billed early, and no amount changed. A volume price cut
// in two by it charged 40 (the first segment's 800 calls at tier 1, the
// second nothing) where the period's 1,800 billable calls cost 18.
func TestTieredPriceIgnoresUnitPrice(t *testing.T) {
	mar := usage.Period{Start: day(2026, 3, 1), End: day(2026, 4, 1)}
	for _, model := range []string{usage.PriceVolume, usage.PriceGraduated} {
		t.Run(model, func(t *testing.T) {
			tiered := proTerms.Apply(usage.Overrides{IncludedCalls: ptr(int64(500)), PriceModel: ptr(model),
				Tiers: []usage.Tier{{UpTo: ptr(int64(1000)), UnitPrice: 50}, {UnitPrice: 10}}})
			start := usage.Terms{From: day(2026, 2, 1), PlanID: "pro", Effective: tiered}
			unit := usage.Terms{From: time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC), PlanID: "pro",
				Effective: tiered.Apply(usage.Overrides{OverageUnitPrice: ptr(int64(60))}), Change: usage.ChangeUpgrade}
			if !usage.SameBilling(start.Effective, unit.Effective) {
				t.Errorf("SameBilling = false for a %s price whose unused unit price changed", model)
			}
			h := []usage.Terms{start, unit}
			if segs := usage.Segments(mar, h); len(segs) != 1 {
				t.Errorf("a change of the unused unit price cut the period into %d segments", len(segs))
			}
			days := []usage.DayCalls{{Day: day(2026, 3, 1), Calls: 1300}, {Day: day(2026, 3, 10), Calls: 1000}}
			charge := func(h []usage.Terms) int64 {
				lines, err := usage.PriceLines(mar, usage.Segments(mar, h), days, nil, mar.End)
				if err != nil {
					t.Fatal(err)
				}
				c, err := usage.NewPeriodCharge(lines)
				if err != nil {
					t.Fatal(err)
				}
				return c.Amount
			}
			if split, whole := charge(h), charge(h[:1]); split != whole {
				t.Errorf("after a change of the unused unit price the period costs %d; without it %d", split, whole)
			}
		})
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
	// 5 × 10^15 calls on either side of an upgrade: the second segment
	// prices the period's 10^16 billable calls, beyond int64 at that price.
	upgraded := append(dear, usage.Terms{From: day(2026, 3, 16), PlanID: "enterprise", Effective: perCall(usage.MaxCallPrice - 1)})
	split := []usage.DayCalls{{Day: day(2026, 3, 2), Calls: 5_000_000_000_000_000}, {Day: day(2026, 3, 20), Calls: 5_000_000_000_000_000}}
	if lines, err := usage.PriceLines(mar, usage.Segments(mar, upgraded), split, nil, mar.End); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Fatalf("two segments of 5 × 10^15 calls = %+v, %v; want CodeInvalid", lines, err)
	}
	// Lines that each fit and whose sum does not.
	big := usage.Line{Bills: true, Price: perCall(usage.MaxCallPrice).Price(), Used: 5_000_000_000_000_000,
		PriceCharge: usage.PriceCharge{Calls: 5_000_000_000_000_000, Amount: 5_000_000_000_000_000_000}}
	if c, err := usage.NewPeriodCharge([]usage.Line{big, big}); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("the sum of two lines of 5 × 10^18 = %d, %v; want CodeInvalid", c.Amount, err)
	}
	// Half the period gone: the projection doubles 5 × 10^18 calls.
	half := mar.Start.Add(mar.End.Sub(mar.Start) / 2)
	if p, err := usage.Project(mar, []usage.Line{{Used: 5_000_000_000_000_000_000}}, half); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("projection of 5 × 10^18 calls at half the period = %+v, %v; want CodeInvalid", p, err)
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
			s, err := report.Summarize(sub, nil, days, nil, now)
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

// TestDecideChangeCurrency: a period is billed in one currency, set by the
// first terms in it that bill. USD terms, then overage waived (terms that
// bill nothing), then EUR terms in the same period: refused, naming the
// currency, though the terms in force when asked bill nothing. EUR from
// the next period on (a downgrade waits for it) is a period of its own.
func TestDecideChangeCurrency(t *testing.T) {
	anchor := day(2026, 2, 1)
	eur := "eur"
	waived := proTerms.Apply(usage.Overrides{OverageUnitPrice: ptr(int64(0))})
	history := []usage.Terms{{From: anchor, PlanID: usage.PlanPro, Effective: proTerms, Change: usage.ChangeStart},
		{From: time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC), PlanID: usage.PlanPro, Overrides: usage.Overrides{OverageUnitPrice: ptr(int64(0))},
			Effective: waived, Change: usage.ChangeUpgrade}}
	cur := &usage.Subscription{UserID: termsUser, PlanID: usage.PlanPro, Overrides: history[1].Overrides, Effective: waived, PeriodAnchor: anchor}
	now := time.Date(2026, 2, 20, 9, 0, 0, 0, time.UTC)
	inEUR := usage.Overrides{Currency: &eur}
	_, _, err := usage.DecideChange(cur, history, usage.PlanPro, inEUR, proTerms.Apply(inEUR), now)
	if usage.ErrorField(err) != "currency" || !strings.Contains(usage.ErrorMessage(err), "bills in USD from 2026-02-01") {
		t.Errorf("USD, waived, then EUR in one period: %v; want refused naming the currency", err)
	}
	// Fewer included calls in EUR: a downgrade, from 1 March, a period of
	// its own.
	fewer := usage.Overrides{Currency: &eur, IncludedCalls: ptr(int64(10))}
	change, at, err := usage.DecideChange(cur, history, usage.PlanPro, fewer, proTerms.Apply(fewer), now)
	if err != nil || change != usage.ChangeDowngrade || !at.Equal(day(2026, 3, 1)) {
		t.Errorf("EUR from the next period: %s at %v, %v", change, at, err)
	}
	// A period whose terms bill in USD throughout takes USD changes.
	if _, _, err := usage.DecideChange(cur, history, usage.PlanEnterprise, usage.Overrides{}, entTerms, now); err != nil {
		t.Errorf("USD again: %v", err)
	}
	// Terms that bill nothing until the change: EUR may start at once.
	free := []usage.Terms{{From: anchor, PlanID: usage.PlanFree, Effective: freePlan, Change: usage.ChangeStart}}
	onFree := &usage.Subscription{UserID: termsUser, PlanID: usage.PlanFree, Effective: freePlan, PeriodAnchor: anchor}
	if change, _, err := usage.DecideChange(onFree, free, usage.PlanPro, inEUR, proTerms.Apply(inEUR), now); err != nil || change != usage.ChangeUpgrade {
		t.Errorf("free, then pro in EUR: %s, %v", change, err)
	}
}

func TestOverridesMerge(t *testing.T) {
	base := usage.Overrides{IncludedCalls: ptr(int64(500)), Burst: ptr(20)}
	got, err := base.Merge(usage.Overrides{RatePerSecond: ptr(75.0)}, nil)
	if err != nil || got.IncludedCalls == nil || *got.IncludedCalls != 500 || *got.Burst != 20 || *got.RatePerSecond != 75 {
		t.Errorf("merge a rate into 500 included: %+v, %v", got, err)
	}
	got, err = base.Merge(usage.Overrides{Burst: ptr(5)}, []string{"included_calls"})
	if err != nil || got.IncludedCalls != nil || *got.Burst != 5 {
		t.Errorf("drop included_calls, set burst: %+v, %v", got, err)
	}
	if _, err := base.Merge(usage.Overrides{}, []string{"colour"}); usage.ErrorField(err) != "colour" {
		t.Errorf("unset an unknown override: %v", err)
	}
	before := usage.Terms{PlanID: "pro", Effective: proTerms.Apply(base)}
	after := usage.Terms{PlanID: "pro", Effective: proTerms.Apply(got)}
	if d := cmp.Diff([]string{"included_calls", "burst"}, usage.ChangedTerms(before, after)); d != "" {
		t.Errorf("ChangedTerms (-want +got):\n%s", d)
	}
}

// TestReconcile: the items Stripe holds for a period against its rows.
func TestReconcile(t *testing.T) {
	feb := usage.Period{Start: day(2026, 2, 1), End: day(2026, 3, 1)}
	e := &billing.LedgerEntry{UserID: termsUser, Period: feb, Seq: 2, Amount: 300, Currency: "usd", PeriodRows: []billing.RowState{
		{Seq: 0, Status: billing.LedgerBilled, Amount: 1000, StripeID: "ii_0"},
		{Seq: 1, Status: billing.LedgerSkipped},
		{Seq: 2, Status: billing.LedgerPending, Amount: 300}}}
	item := func(id string, seq int, amount int64) billing.FoundItem {
		return billing.FoundItem{ID: id, Seq: seq, Amount: amount, Currency: "usd"}
	}
	for _, tt := range []struct {
		name    string
		found   []billing.FoundItem
		own     string
		adopt   []string
		changed bool
		dups    int
	}{
		{"nothing new", []billing.FoundItem{item("ii_0", 0, 1000)}, "", nil, false, 0},
		{"the row's own item", []billing.FoundItem{item("ii_0", 0, 1000), item("ii_2", 2, 300)}, "ii_2", nil, false, 0},
		// A restore lost seq 1's item (the row was planned again, found
		// nothing due): the ledger charged 1,000, Stripe 1,250.
		{"an item the ledger lost", []billing.FoundItem{item("ii_0", 0, 1000), item("ii_1", 1, 250)}, "", []string{"ii_1"}, true, 0},
		{"an item of a seq the ledger has no row for", []billing.FoundItem{item("ii_0", 0, 1000), item("ii_7", 7, 5)}, "", []string{"ii_7"}, true, 0},
		{"two items of one seq", []billing.FoundItem{item("ii_0", 0, 1000), item("ii_x", 0, 1000), item("ii_2", 2, 300), item("ii_y", 2, 300)},
			"ii_2", nil, false, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := billing.Reconcile(e, tt.found)
			var adopted []string
			for _, a := range r.Adopt {
				adopted = append(adopted, a.Item.ID)
			}
			own := ""
			if r.Own != nil {
				own = r.Own.ID
			}
			if own != tt.own || !cmp.Equal(adopted, tt.adopt) || r.Changed != tt.changed || r.Duplicates != tt.dups {
				t.Errorf("Reconcile = own %q, adopt %v, changed %v, %d duplicates; want %q, %v, %v, %d",
					own, adopted, r.Changed, r.Duplicates, tt.own, tt.adopt, tt.changed, tt.dups)
			}
		})
	}
}

// TestPeriodStartingInTheDay: a period anchored at 14:00 (a subscription
// migrated by SQL) counts the days the limiter counts, from the day of its
// start to the day before its end's: pricing split by an upgrade counts
// the first day's calls in the first segment, where they used to be in no
// segment (billed by nobody), and the usage summary counts the first day
// and not the next period's, as the limiter's quota does.
func TestPeriodStartingInTheDay(t *testing.T) {
	start := time.Date(2026, 3, 13, 14, 0, 0, 0, time.UTC)
	p := usage.PeriodAt(start, start)
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	for _, tt := range []struct {
		day  time.Time
		want bool
	}{
		{day(12), false}, {day(13), true}, {day(31), true},
		{time.Date(2026, 4, 12, 0, 0, 0, 0, time.UTC), true}, {time.Date(2026, 4, 13, 0, 0, 0, 0, time.UTC), false},
		{start, true}, // the sum of a period's days, put on its start
	} {
		if got := p.HasDay(tt.day); got != tt.want {
			t.Errorf("%v.HasDay(%v) = %v; want %v", p, tt.day, got, tt.want)
		}
	}

	history := []usage.Terms{
		{From: start, PlanID: usage.PlanPro, Effective: proTerms, Change: usage.ChangeStart},
		{From: time.Date(2026, 3, 20, 9, 0, 0, 0, time.UTC), PlanID: usage.PlanEnterprise, Effective: entTerms, Change: usage.ChangeUpgrade},
	}
	days := []usage.DayCalls{{Day: day(13), Calls: 150_000}, {Day: day(25), Calls: 7}, {Day: time.Date(2026, 4, 13, 0, 0, 0, 0, time.UTC), Calls: 50}}
	lines, err := usage.PriceLines(p, usage.Segments(p, history), days, nil, p.End)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0].Used != 150_000 || lines[0].Amount != 2500 || lines[1].Used != 7 {
		t.Errorf("lines %+v; want pro's 150,000 calls of 13 March, 50 packages at 0.50, then enterprise's 7", lines)
	}

	sub := &usage.Subscription{UserID: termsUser, PlanID: usage.PlanEnterprise, Effective: entTerms, PeriodAnchor: start}
	s, err := report.Summarize(sub, history, days, nil, time.Date(2026, 4, 13, 10, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if s.Used != 150_007 || s.OverageToDate.Amount != 2500 {
		t.Errorf("summary used %d, overage %d; want 150,007 calls (13 March to 12 April), 2500", s.Used, s.OverageToDate.Amount)
	}
}

// TestSegmentsOfAPeriodStartingInTheDay: a period anchored at 14:00 (by
// SQL) counts its days up to, not including, the day of its end, which is
// the next period's first. A change whose day is that one starts no
// segment in it: a downgrade, which waits for the period's end, and an
// upgrade made on that day before 14:00 go to the next period, whose
// first day is theirs. They cut the period's last segment short at the
// start of that day and added a segment of no day under their terms: the
// period then showed the next terms' included calls, and a downgrade to
// another currency, which starts a period of its own, was refused.
func TestSegmentsOfAPeriodStartingInTheDay(t *testing.T) {
	anchor := time.Date(2026, 2, 1, 14, 0, 0, 0, time.UTC)
	p := usage.PeriodAt(anchor, anchor) // 1 February 14:00 – 1 March 14:00
	eur := "eur"
	inEUR := usage.Overrides{Currency: &eur, IncludedCalls: ptr(int64(10))}
	start := usage.Terms{From: anchor, PlanID: "pro", Effective: proTerms, Change: usage.ChangeStart}
	down := usage.Terms{From: p.End, PlanID: "free", Effective: freePlan, Change: usage.ChangeDowngrade}
	downEUR := usage.Terms{From: p.End, PlanID: "pro", Overrides: inEUR, Effective: proTerms.Apply(inEUR), Change: usage.ChangeDowngrade}
	upLastDay := usage.Terms{From: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), PlanID: "enterprise", Effective: entTerms, Change: usage.ChangeUpgrade}
	up := usage.Terms{From: time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC), PlanID: "enterprise", Effective: entTerms, Change: usage.ChangeUpgrade}
	tests := []struct {
		name    string
		history []usage.Terms
		want    [][2]time.Time
		plans   []string
	}{
		{"a downgrade at the period's end", []usage.Terms{start, down}, [][2]time.Time{{p.Start, p.End}}, []string{"pro"}},
		{"a downgrade to another currency", []usage.Terms{start, downEUR}, [][2]time.Time{{p.Start, p.End}}, []string{"pro"}},
		{"an upgrade on the day of the period's end, before it", []usage.Terms{start, upLastDay}, [][2]time.Time{{p.Start, p.End}}, []string{"pro"}},
		{"an upgrade inside the period", []usage.Terms{start, up},
			[][2]time.Time{{p.Start, day(2026, 2, 10)}, {day(2026, 2, 10), p.End}}, []string{"pro", "enterprise"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [][2]time.Time
			var plans []string
			for _, s := range usage.Segments(p, tt.history) {
				got = append(got, [2]time.Time{s.From, s.To})
				plans = append(plans, s.Terms.PlanID)
			}
			if d := cmp.Diff(tt.want, got); d != "" || !cmp.Equal(tt.plans, plans) {
				t.Errorf("Segments (-want +got):\n%s plans %v; want %v", d, plans, tt.plans)
			}
			if err := usage.CheckCurrency(p, tt.history); err != nil {
				t.Errorf("CheckCurrency = %v; want nil", err)
			}
		})
	}
	// The downgrade itself: to EUR terms from the end of the period, the
	// next period's own currency.
	cur := &usage.Subscription{UserID: termsUser, PlanID: usage.PlanPro, Effective: proTerms, PeriodAnchor: anchor}
	now := time.Date(2026, 2, 20, 9, 0, 0, 0, time.UTC)
	change, at, err := usage.DecideChange(cur, []usage.Terms{start}, usage.PlanPro, inEUR, proTerms.Apply(inEUR), now)
	if err != nil || change != usage.ChangeDowngrade || !at.Equal(p.End) {
		t.Errorf("DecideChange to EUR with fewer calls = %s at %v, %v; want a downgrade at %v", change, at, err, p.End)
	}
}
