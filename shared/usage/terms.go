package usage

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
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
// history is the subscription's terms history (oldest first). It returns
// CodeInvalid naming "currency" when the change would make a period bill
// in two currencies (CheckCurrency): the terms of the running period that
// bill, in force or already over, set its currency.
func DecideChange(cur *Subscription, history []Terms, planID string, o Overrides, next Plan, now time.Time) (string, time.Time, error) {
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
	change, at := ChangeUpgrade, now
	if next.IncludedCalls < inForce.IncludedCalls {
		change, at = ChangeDowngrade, PeriodAt(cur.PeriodAnchor, now).End
	}
	after := HistoryAfter(history, Terms{From: at, PlanID: planID, Overrides: o, Effective: next, Change: change}, now)
	for _, t := range []time.Time{now, at} {
		if err := CheckCurrency(PeriodAt(cur.PeriodAnchor, t), after); err != nil {
			return "", time.Time{}, err
		}
	}
	return change, at, nil
}

// HistoryAfter returns the terms history after a change made at now that
// adds t: the entries in force by now, t (replacing an entry of the same
// instant) and nothing after it: a change replaces a pending one.
func HistoryAfter(history []Terms, t Terms, now time.Time) []Terms {
	var out []Terms
	for _, h := range history {
		if !h.From.After(now) && !h.From.Equal(t.From) {
			out = append(out, h)
		}
	}
	out = append(out, t)
	slices.SortStableFunc(out, func(a, b Terms) int { return a.From.Compare(b.From) })
	return out
}

// CheckCurrency returns CodeInvalid naming "currency" when the segments of
// period p under history bill in more than one currency: a period is billed
// in one currency, set by the first terms in it that bill.
func CheckCurrency(p Period, history []Terms) error {
	var first *Segment
	segs := Segments(p, history)
	for i, s := range segs {
		if !s.Terms.Effective.Bills() {
			continue
		}
		if first == nil {
			first = &segs[i]
			continue
		}
		if c, f := s.Terms.Effective.Currency, first.Terms.Effective.Currency; c != f {
			return FieldErrorf("currency", "the billing period %s bills in %s from %s on; a period is billed in one currency, so terms in %s can start with the next period only",
				FormatDays(p.Start, p.End), strings.ToUpper(f), first.From.Format(time.DateOnly), strings.ToUpper(c))
		}
	}
	return nil
}

// Segment is the part of a billing period under one set of billing terms.
// Segments are whole UTC days, because usage is counted per UTC day: a
// change's segment starts at the start of the day it was made, so the day
// of an upgrade is billed on the upgraded terms (the customer asked for
// them that day), and a downgrade starts at a period's start, a midnight.
type Segment struct {
	From  time.Time
	To    time.Time
	Terms Terms
}

// Segments cuts the period by the terms history (oldest first): the entry
// in force at the period's start, then each later one from the start of
// its day. Segments of no day (two changes on one day) are dropped, the
// later change winning the day; days before the first entry have no terms
// and no segment. An entry that bills as the one before it (the same
// included calls and price: a new rate limit, burst or hard limit alone)
// starts no segment: the segment goes on under the earlier entry, so that
// such a change changes no amount and closes nothing to bill early.
//
// A period starting within a day (Period.HasDay) does not count the day
// of its end, the next period's first: an entry from that day on (a
// downgrade at the period's end, an upgrade made that day before the
// period ends) starts no segment in it and cuts none short.
func Segments(p Period, history []Terms) []Segment {
	var out []Segment
	last := Day(p.End) // the period counts the days before it
	for i, t := range history {
		from := Day(t.From)
		if from.Before(p.Start) {
			from = p.Start
		}
		to := p.End
		if i+1 < len(history) {
			if n := Day(history[i+1].From); n.Before(last) {
				to = n
			}
		}
		if !from.Before(to) || !from.Before(last) {
			continue
		}
		if n := len(out); n > 0 && out[n-1].To.Equal(from) && SameBilling(out[n-1].Terms.Effective, t.Effective) {
			out[n-1].To = to
			continue
		}
		out = append(out, Segment{From: from, To: to, Terms: t})
	}
	return out
}

// SameBilling reports whether two plans charge alike: both bill or
// neither, with the same included calls and the same price (model, unit
// size, currency, and the unit price of a per_unit or package price or
// the tiers of a graduated or volume one). Rate limits, bursts and hard
// limits do not charge anything, and neither does the unit price a tiered
// price keeps (Price.Charge reads its tiers alone).
func SameBilling(a, b Plan) bool {
	if a.Bills() != b.Bills() || a.IncludedCalls != b.IncludedCalls {
		return false
	}
	if !a.Bills() {
		return true
	}
	pa, pb := a.Price(), b.Price()
	if pa.Model != pb.Model || pa.UnitSize != pb.UnitSize || pa.Currency != pb.Currency {
		return false
	}
	if tiered(pa.Model) {
		return sameTiers(pa.Tiers, pb.Tiers)
	}
	return pa.UnitPrice == pb.UnitPrice
}

// sameTiers compares tiers by value.
func sameTiers(a, b []Tier) bool {
	return slices.EqualFunc(a, b, func(t, u Tier) bool {
		return t.UnitPrice == u.UnitPrice && t.FlatPrice == u.FlatPrice && (t.UpTo == nil) == (u.UpTo == nil) &&
			(t.UpTo == nil || *t.UpTo == *u.UpTo)
	})
}

// DayCalls is a user's calls on one UTC day, from the live counters.
type DayCalls struct {
	Day   time.Time
	Calls int64
}

// Line is the charge of one segment of a period: its terms (plan and
// price, the included calls of the period under them), the calls of its
// days, and which of those are billable and what they cost, given the
// calls of the period before the segment.
//
// The rule (docs/overage.md, "Invariants"): the period's calls are counted
// in order, and a call is billable when the period's calls up to it exceed
// the included calls of the terms in force on its day, plus the calls
// already billable; each billable call is priced under its day's terms as
// the n-th billable call of the period. So a segment's billable calls are
// the period's calls through it less its included calls less the billable
// calls before it, between none and its own calls, and it costs its
// price of the period's billable calls through it less its price of those
// before it (never below nothing). Under one set of terms the lines add up
// to the terms' price of the period's billable calls, however many
// segments; the calls before a change cost exactly what the terms in force
// then charge for them over the whole period; a segment never bills calls
// made before it.
type Line struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	PlanID   string    `json:"plan_id"`
	PlanName string    `json:"plan_name"`
	// Bills is false for terms that never charge (the free plan).
	Bills bool  `json:"bills"`
	Price Price `json:"price"`
	// Included is the terms' included calls for the whole period.
	Included int64 `json:"included_calls"`
	// Used are the calls of the segment's days; UsedBefore and
	// BillableBefore the period's calls, and billable calls, before it.
	Used           int64 `json:"used_calls"`
	UsedBefore     int64 `json:"used_before"`
	BillableBefore int64 `json:"billable_before"`
	// Prorated marks a line priced by the earlier rule, whose Included was the segment's share of the included calls
	// prorated by days.
	Prorated bool `json:"prorated,omitempty"`
	// PriceCharge is the segment's: its billable calls (Calls), the
	// packages they add (Units), its amount. Tiers are those of the
	// period's billable calls through the segment.
	PriceCharge
}

// PriceLines prices the segments of period p that end by until (all of
// them when until is p.End or later) with the calls of days, in order (see
// Line); a segment counts the days it has (Period.HasDay: a period
// starting at 14:00 gives its first segment the whole first day). A segment recorded before (a line of recorded with the same From
// and To) keeps its recorded terms and included calls, so that a period
// once billed is re-priced (late usage) under the terms it was billed
// with; the others take theirs from the history. A recorded line of the
// earlier rule (Prorated) kept a prorated share of the
// included calls: unless it covers the whole period, where the share is
// the whole, the included calls come from the history.
func PriceLines(p Period, segs []Segment, days []DayCalls, recorded []Line, until time.Time) ([]Line, error) {
	var (
		out                      []Line
		usedBefore, billedBefore int64
	)
	for _, s := range segs {
		if s.To.After(until) {
			break
		}
		l := Line{From: s.From, To: s.To, PlanID: s.Terms.PlanID, PlanName: s.Terms.Effective.Name,
			Bills: s.Terms.Effective.Bills(), Price: s.Terms.Effective.Price(), Included: s.Terms.Effective.IncludedCalls}
		if i := slices.IndexFunc(recorded, func(r Line) bool { return r.From.Equal(s.From) && r.To.Equal(s.To) }); i >= 0 {
			r := recorded[i]
			l.PlanID, l.PlanName, l.Bills, l.Price = r.PlanID, r.PlanName, r.Bills, r.Price
			if !r.Prorated || (r.From.Equal(p.Start) && r.To.Equal(p.End)) {
				l.Included = r.Included
			}
		}
		for _, d := range days {
			if (Period{Start: s.From, End: s.To}).HasDay(d.Day) {
				l.Used += d.Calls
			}
		}
		l.UsedBefore, l.BillableBefore = usedBefore, billedBefore
		if err := l.price(); err != nil {
			return nil, err
		}
		var ok [2]bool
		usedBefore, ok[0] = addInt64(usedBefore, l.Used)
		billedBefore, ok[1] = addInt64(billedBefore, l.PriceCharge.Calls)
		if ok != [2]bool{true, true} {
			return nil, Errorf(CodeInvalid, "the period counts more calls than the largest count")
		}
		out = append(out, l)
	}
	return out, nil
}

// price computes the line's charge from its calls, its included calls and
// the period's calls and billable calls before it (see Line).
func (l *Line) price() error {
	through, ok := addInt64(l.UsedBefore, l.Used)
	if !ok {
		return Errorf(CodeInvalid, "the period counts more calls than the largest count")
	}
	// through - Included - BillableBefore, each at most 2.7 × 10^18 and
	// none negative: it cannot overflow.
	calls := min(max(0, through-l.Included-l.BillableBefore), l.Used)
	l.PriceCharge = PriceCharge{Calls: calls}
	if !l.Bills || calls == 0 {
		return nil
	}
	hi, err := l.Price.Charge(l.BillableBefore + calls)
	if err != nil {
		return err
	}
	lo, err := l.Price.Charge(l.BillableBefore)
	if err != nil {
		return err
	}
	// A volume price's total can fall as calls reach a cheaper tier: the
	// segment then charges nothing, crediting no call billed under another
	// price. (Under one set of terms, one segment, nothing changes.)
	l.PriceCharge = PriceCharge{Calls: calls, Units: hi.Units - lo.Units, Tiers: hi.Tiers, Amount: max(0, hi.Amount-lo.Amount)}
	return nil
}

// Describe writes the line's charge for a customer: its price of the
// billable calls, and when calls of the period were billable before the
// segment, which of the period's billable calls it charges and what was
// charged for the ones before ("billable calls 1,001 – 1,500 of the
// period: 2 × 1,000 calls at 0.50 USD = 1.00 USD, less 0.50 USD for the
// first 1,000: 0.50 USD").
func (l Line) Describe() string {
	switch {
	case !l.Bills:
		return "no overage billing"
	case l.PriceCharge.Calls == 0:
		return "nothing above the included calls"
	case l.BillableBefore == 0:
		return l.Price.Describe(l.PriceCharge)
	}
	hi, _ := l.Price.Charge(l.BillableBefore + l.PriceCharge.Calls)
	lo, _ := l.Price.Charge(l.BillableBefore)
	return fmt.Sprintf("billable calls %s – %s of the period: %s, less %s for the first %s: %s",
		FormatCount(l.BillableBefore+1), FormatCount(l.BillableBefore+l.PriceCharge.Calls), l.Price.Describe(hi),
		FormatMoney(lo.Amount, l.Price.Currency), FormatCount(l.BillableBefore), FormatMoney(l.PriceCharge.Amount, l.Price.Currency))
}

// PeriodCharge is the charge of a period's lines: their sums and the
// currency they bill in. Included is the last line's: the included calls
// of the terms the period ends under (a line's included calls are the
// period's, not a share of them).
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
// are CodeConflict (plan changes refuse to make such a period, see
// CheckCurrency: only terms written around them can), and sums beyond int64
// are CodeInvalid (each line's amount fits, their sum need not: see the
// bounds of a price), never wrapped numbers.
func NewPeriodCharge(lines []Line) (PeriodCharge, error) {
	c := PeriodCharge{Lines: lines}
	if c.Lines == nil {
		c.Lines = []Line{}
	}
	billing := ""
	for _, l := range lines {
		var ok [3]bool
		c.Included = l.Included
		c.Used, ok[0] = addInt64(c.Used, l.Used)
		c.Billable, ok[1] = addInt64(c.Billable, l.PriceCharge.Calls)
		c.Amount, ok[2] = addInt64(c.Amount, l.Amount)
		if ok != [3]bool{true, true, true} {
			return PeriodCharge{}, Errorf(CodeInvalid, "the period's charge is beyond the largest amount a ledger row holds")
		}
		c.Currency = l.Price.Currency
		if !l.Bills {
			continue
		}
		if billing != "" && l.Price.Currency != billing {
			return PeriodCharge{}, Errorf(CodeConflict, "the period bills in %s and %s; a period is billed in one currency", billing, l.Price.Currency)
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

// FormatDays writes [from, to) as its first and last days.
func FormatDays(from, to time.Time) string {
	return from.UTC().Format(time.DateOnly) + " – " + to.Add(-time.Nanosecond).UTC().Format(time.DateOnly)
}

// CapProjection lowers the last line of projected lines so that their
// calls add up to at most limit (Project adds the projection to it), and
// prices it again.
func CapProjection(lines []Line, limit int64) error {
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
