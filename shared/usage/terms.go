package usage

import (
	"reflect"
	"slices"
	"time"
)

// How a subscription's terms came to be what they are (Terms.Change, and
// the answer of a plan change).
const (
	// ChangeStart: the user had no subscription; the plan starts at once,
	// its periods anchored on that day.
	ChangeStart = "start"
	// ChangeUpgrade: the new terms include at least as many calls; they
	// take effect at once and close the running segment.
	ChangeUpgrade = "upgrade"
	// ChangeDowngrade: the new terms include fewer calls; they take effect
	// at the end of the running billing period.
	ChangeDowngrade = "downgrade"
	// ChangeSame: the terms asked for are those in force; nothing changes,
	// except that a pending downgrade is cancelled.
	ChangeSame = "same"
)

// Terms is one entry of a subscription's terms history: the plan and
// overrides in force from From until the next entry's From.
type Terms struct {
	From      time.Time `json:"effective_from"`
	PlanID    string    `json:"plan_id"`
	Overrides Overrides `json:"overrides"`
	// Effective is the plan with the overrides applied.
	Effective Plan `json:"effective"`
	// Change is ChangeStart, ChangeUpgrade or ChangeDowngrade.
	Change string `json:"change"`
}

// At returns the plan in force at t: the pending downgrade once its time
// has come, else the current terms.
func (s *Subscription) At(t time.Time) Plan {
	if s.Next != nil && !t.Before(s.Next.From) {
		return s.Next.Effective
	}
	return s.Effective
}

// sameOverrides compares overrides by value (nil and empty tiers alike).
func sameOverrides(a, b Overrides) bool {
	if len(a.Tiers) == 0 && len(b.Tiers) == 0 {
		a.Tiers, b.Tiers = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// DecideChange says how the terms asked for (planID with overrides,
// merged into next) replace the subscription's at now, following Lago's
// convention for plan changes:
//
//   - no subscription (cur nil): ChangeStart, in force at the start of
//     now's day, which anchors the periods;
//   - the same plan and overrides as the terms in force: ChangeSame (a
//     pending downgrade is cancelled);
//   - at least as many included calls as the terms in force: ChangeUpgrade,
//     in force at now. Included calls are what a plan gives for its
//     price, our counterpart of the subscription fee by which Lago tells an
//     upgrade ("equals or exceeds") from a downgrade; a change of rate
//     limit or price alone is thus an upgrade and applies at once;
//   - fewer: ChangeDowngrade, in force at the end of now's period, so that
//     the customer keeps what the period began with.
//
// It returns CodeInvalid naming "currency" when both the terms in force
// and the new ones bill, in different currencies: a period is billed in
// one currency.
func DecideChange(cur *Subscription, planID string, o Overrides, next Plan, now time.Time) (string, time.Time, error) {
	if cur == nil {
		return ChangeStart, Day(now), nil
	}
	inForce, id, ov := cur.Effective, cur.PlanID, cur.Overrides
	if cur.Next != nil && !now.Before(cur.Next.From) {
		inForce, id, ov = cur.Next.Effective, cur.Next.PlanID, cur.Next.Overrides
	}
	if id == planID && sameOverrides(ov, o) {
		return ChangeSame, now, nil
	}
	if inForce.Bills() && next.Bills() && inForce.Currency != next.Currency {
		return "", time.Time{}, FieldErrorf("currency", "the terms in force bill in %s and the new ones in %s; a period is billed in one currency",
			inForce.Currency, next.Currency)
	}
	if next.IncludedCalls >= inForce.IncludedCalls {
		return ChangeUpgrade, now, nil
	}
	return ChangeDowngrade, PeriodAt(cur.PeriodAnchor, now).End, nil
}

// Segment is the part of a billing period under one entry of the terms
// history. Segments are whole UTC days, because usage is counted per UTC
// day: a change's segment starts at the start of the day it was made, so
// the day of an upgrade is billed on the upgraded terms (the customer asked
// for them that day), and a downgrade starts at a period's start, a
// midnight.
type Segment struct {
	From  time.Time
	To    time.Time
	Terms Terms
}

// Segments cuts the period by the terms history (oldest first): the entry
// in force at the period's start, then each later one from the start of
// its day. Segments of no day (two changes on one day) are dropped, the
// later change winning the day; days before the first entry have no terms
// and no segment.
func Segments(p Period, history []Terms) []Segment {
	var out []Segment
	for i, t := range history {
		from := Day(t.From)
		if from.Before(p.Start) {
			from = p.Start
		}
		to := p.End
		if i+1 < len(history) {
			if n := Day(history[i+1].From); n.Before(to) {
				to = n
			}
		}
		if from.Before(to) {
			out = append(out, Segment{From: from, To: to, Terms: t})
		}
	}
	return out
}

// DayCalls is a user's calls on one UTC day, from the live counters.
type DayCalls struct {
	Day   time.Time
	Calls int64
}

// Line is the charge of one segment of a period: its terms (plan and
// price), its share of the plan's included calls, the calls of its days
// and their price.
type Line struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	PlanID   string    `json:"plan_id"`
	PlanName string    `json:"plan_name"`
	// Bills is false for terms that never charge (the free plan).
	Bills bool  `json:"bills"`
	Price Price `json:"price"`
	// Included is the segment's share of the plan's included calls,
	// prorated by days (IncludedShare).
	Included int64 `json:"included_calls"`
	Used     int64 `json:"used_calls"`
	PriceCharge
}

// capProjection lowers the last line of projected lines so that their
// calls add up to at most limit (Project adds the projection to it), and
// prices it again.
func capProjection(lines []Line, limit int64) error {
	if len(lines) == 0 {
		return nil
	}
	var total int64
	for _, l := range lines {
		total += l.Used
	}
	if total <= limit {
		return nil
	}
	last := &lines[len(lines)-1]
	last.Used = max(0, last.Used-(total-limit))
	return last.price()
}

// IncludedShare is the share of included calls of the segment [from, to)
// of period p: the calls accrued by to minus those accrued by from, the
// accrual being included × days since the period's start / days of the
// period, rounded half up. Proration by time keeps a change that leaves
// the included calls alone (a new rate limit, a new price) from giving a
// second allowance, and since accruals telescope, segments of one plan add
// up to exactly its included calls.
func IncludedShare(included int64, p Period, from, to time.Time) int64 {
	days := func(t time.Time) int64 { return int64(t.Sub(p.Start) / (24 * time.Hour)) }
	total := days(p.End)
	if total <= 0 {
		return included
	}
	hi, _ := mulDivRound(included, days(to), total)
	lo, _ := mulDivRound(included, days(from), total)
	return hi - lo
}

// PriceLines prices the segments of period p that end by until (all of
// them when until is p.End or later) with the calls of days. A segment
// recorded before (a line of recorded with the same From and To) keeps
// its recorded terms and included share, so that a period once billed is
// re-priced (late usage) under the terms it was billed with; the others
// take theirs from the history.
func PriceLines(p Period, segs []Segment, days []DayCalls, recorded []Line, until time.Time) ([]Line, error) {
	var out []Line
	for _, s := range segs {
		if s.To.After(until) {
			continue
		}
		l := Line{From: s.From, To: s.To, PlanID: s.Terms.PlanID, PlanName: s.Terms.Effective.Name,
			Bills: s.Terms.Effective.Bills(), Price: s.Terms.Effective.Price(),
			Included: IncludedShare(s.Terms.Effective.IncludedCalls, p, s.From, s.To)}
		if i := slices.IndexFunc(recorded, func(r Line) bool { return r.From.Equal(s.From) && r.To.Equal(s.To) }); i >= 0 {
			r := recorded[i]
			l.PlanID, l.PlanName, l.Bills, l.Price, l.Included = r.PlanID, r.PlanName, r.Bills, r.Price, r.Included
		}
		for _, d := range days {
			if !d.Day.Before(s.From) && d.Day.Before(s.To) {
				l.Used += d.Calls
			}
		}
		if err := l.price(); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// price computes the line's charge from its used and included calls.
func (l *Line) price() error {
	l.PriceCharge = PriceCharge{Calls: max(0, l.Used-l.Included)}
	if !l.Bills {
		return nil
	}
	c, err := l.Price.Charge(l.PriceCharge.Calls)
	if err != nil {
		return err
	}
	l.PriceCharge = c
	return nil
}

// PeriodCharge is the charge of a period's lines: their sums and the
// currency they bill in.
type PeriodCharge struct {
	Included int64  `json:"included_calls"`
	Used     int64  `json:"used_calls"`
	Billable int64  `json:"billable_calls"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Lines    []Line `json:"lines"`
}

// NewPeriodCharge sums the lines. The currency is that of the lines that
// bill (else of the last line); lines that bill in different currencies
// are CodeInvalid, and so are sums beyond int64 (each line's amount fits,
// their sum need not: see the bounds of a price), never wrapped numbers.
func NewPeriodCharge(lines []Line) (PeriodCharge, error) {
	c := PeriodCharge{Lines: lines}
	if c.Lines == nil {
		c.Lines = []Line{}
	}
	billing := ""
	for _, l := range lines {
		var ok [4]bool
		c.Included, ok[0] = addInt64(c.Included, l.Included)
		c.Used, ok[1] = addInt64(c.Used, l.Used)
		c.Billable, ok[2] = addInt64(c.Billable, l.PriceCharge.Calls)
		c.Amount, ok[3] = addInt64(c.Amount, l.Amount)
		if ok != [4]bool{true, true, true, true} {
			return PeriodCharge{}, Errorf(CodeInvalid, "the period's charge is beyond the largest amount a ledger row holds")
		}
		c.Currency = l.Price.Currency
		if !l.Bills {
			continue
		}
		if billing != "" && l.Price.Currency != billing {
			return PeriodCharge{}, Errorf(CodeInvalid, "the period bills in %s and %s; a period is billed in one currency", billing, l.Price.Currency)
		}
		billing = l.Price.Currency
	}
	if billing != "" {
		c.Currency = billing
	}
	return c, nil
}

// MinProjectionWindow is the least time a projection extrapolates from:
// before an hour of the period has passed, it counts as one hour, so that
// a burst of calls in the first minutes does not project to millions.
const MinProjectionWindow = time.Hour

// Project projects the period's usage at now to its end, linearly in
// time: the calls to come are the calls so far × the time left / the time
// elapsed (at least MinProjectionWindow), rounded down, and they go to the
// last line, the terms in force now (a downgrade only ever starts with the
// next period). It returns the lines priced at the projected usage.
func Project(p Period, lines []Line, now time.Time) ([]Line, error) {
	out := slices.Clone(lines)
	if len(out) == 0 || !now.Before(p.End) {
		return out, nil
	}
	var used int64
	for _, l := range out {
		used += l.Used
	}
	elapsed := max(now.Sub(p.Start), MinProjectionWindow)
	left := p.End.Sub(now)
	extra, ok := mulDivFloor(used, int64(left/time.Second), int64(elapsed/time.Second))
	if !ok {
		return nil, Errorf(CodeInvalid, "the projection of %d calls is beyond the largest count", used)
	}
	last := &out[len(out)-1]
	if last.Used, ok = addInt64(last.Used, extra); !ok {
		return nil, Errorf(CodeInvalid, "the projection of %d calls is beyond the largest count", used)
	}
	if err := last.price(); err != nil {
		return nil, err
	}
	return out, nil
}
