package billing

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// plan returns the ledger rows the due periods need and how far each
// subscription's closed periods are then planned. Subscriptions it cannot
// price, wholly or in part, it reports (RunReport.Unpriced): without terms
// from their anchor on, or with a period whose pricing failed.
func (b *Billing) plan(ctx context.Context, now time.Time, rep *RunReport) ([]*LedgerEntry, []Progress, error) {
	subs, err := b.cfg.Ledger.BillableSubscriptions(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list billable subscriptions: %w", err)
	}
	rep.Subscriptions = len(subs)
	unpriced := func(s *BillableSubscription, reason string) {
		rep.Unpriced++
		if len(rep.UnpricedSubscriptions) < MaxReportRows {
			rep.UnpricedSubscriptions = append(rep.UnpricedSubscriptions, UnpricedSubscription{UserID: s.UserID, Reason: reason})
		}
		b.cfg.Logger.ErrorContext(ctx, "overage subscription not priced", "user_id", s.UserID, "reason", reason)
	}
	var (
		periods []UserPeriod
		owners  []*BillableSubscription
	)
	for _, s := range subs {
		if reason := s.Unbillable(); reason != "" {
			unpriced(s, reason)
			if len(s.History) == 0 {
				continue
			}
		}
		for _, p := range DuePeriods(s, now, b.cfg.Grace, b.cfg.Lookback) {
			periods = append(periods, UserPeriod{UserID: s.UserID, Period: p, ByDay: NeedsDays(p, s.History)})
			owners = append(owners, s)
		}
	}
	rep.Periods = len(periods)
	if len(periods) == 0 {
		return nil, nil, nil
	}
	states, err := b.cfg.Ledger.PeriodStates(ctx, periods)
	if err != nil {
		return nil, nil, fmt.Errorf("read period states: %w", err)
	}
	var entries []*LedgerEntry
	cutoff := now.Add(-b.cfg.Grace)
	through := map[*BillableSubscription]time.Time{}
	stuck := map[*BillableSubscription]bool{}
	for i, st := range states {
		s := owners[i]
		e, err := b.DraftPeriod(s, st, now)
		if err != nil {
			rep.PlanErrors++
			if !stuck[s] {
				unpriced(s, fmt.Sprintf("the period from %s: %s", st.Period.Start.Format(time.DateOnly), usage.ErrorMessage(err)))
			}
			stuck[s] = true
			continue
		}
		if e != nil {
			entries = append(entries, e)
		}
		if !st.Period.End.After(cutoff) && !stuck[s] {
			through[s] = st.Period.End
		}
	}
	var progress []Progress
	for s, t := range through {
		if t.After(s.ClosedThrough) {
			progress = append(progress, Progress{UserID: s.UserID, ClosedThrough: t})
		}
	}
	slices.SortFunc(progress, func(a, b Progress) int { return strings.Compare(a.UserID, b.UserID) })
	return entries, progress, nil
}

// DraftPeriod decides the ledger row a period of sub needs at now, or nil
// when its rows are up to date:
//   - the segments over for the grace period, and those the rows priced
//     already (over for a shorter grace period then), are priced
//     (PriceLines, the terms already billed kept for their segments) and
//     their total is
//     compared with what the rows charged (PeriodState.Recorded: billed,
//     pending and failed rows);
//   - more: a pending row for the difference with the next seq;
//   - less: a skipped row with the negative difference and a note, a
//     credit for an admin to decide on. It is a note, never sent and never
//     counted as charged: should the charge rise again, only what goes
//     beyond what was charged is billed. A new note is written only when
//     the difference moved (one of 0 voids the last);
//   - nothing new: no row, except a skipped seq 0 row for a closed period
//     with nothing above the included calls, which says it was closed.
//
// Periods without terms that bill get no row; billed periods beyond the
// lookback are left alone. The row's id and key derive from (user, period,
// seq) (LedgerID, IdempotencyKey), so that a row planned again, after a
// restore of the database, is the same row to Stripe.
func (b *Billing) DraftPeriod(sub *BillableSubscription, st PeriodState, now time.Time) (*LedgerEntry, error) {
	cutoff := now.Add(-b.cfg.Grace)
	closed := !st.Period.End.After(cutoff)
	segs := usage.Segments(st.Period, sub.History)
	if st.Rows > 0 && closed && st.Period.End.Before(now.Add(-b.cfg.Lookback)) && allRecorded(segs, st.Lines) {
		return nil, nil
	}
	// The segments the rows priced were over for the grace period when
	// they were billed, whatever it is now: under a grace period since
	// lengthened (GRACE_PERIOD) they count still, or the period's charge
	// would seem to fall below what was charged.
	until := cutoff
	for _, l := range st.Lines {
		if l.To.After(until) {
			until = l.To
		}
	}
	lines, err := usage.PriceLines(st.Period, segs, st.Days, st.Lines, until)
	if err != nil {
		return nil, err
	}
	if st.Rows == 0 && !slices.ContainsFunc(lines, func(l usage.Line) bool { return l.Bills }) {
		return nil, nil
	}
	charge, err := usage.NewPeriodCharge(lines)
	if err != nil {
		return nil, err
	}
	if proratedAsBilled(st.Lines, lines) {
		return nil, nil
	}
	// What the rows charged is in their currency. Terms that bill nothing
	// now (a restore of the database lost those the rows were priced
	// with) note a credit in it; terms that bill in another one cannot be
	// weighed against it.
	if st.Currency != "" && st.Recorded != 0 {
		if slices.ContainsFunc(lines, func(l usage.Line) bool { return l.Bills }) && charge.Currency != st.Currency {
			return nil, usage.Errorf(usage.CodeConflict, "the period's rows charged %s; its terms now bill in %s (a restore of the database lost a change of terms?): a period is billed in one currency",
				usage.FormatMoney(st.Recorded, st.Currency), strings.ToUpper(charge.Currency))
		}
		charge.Currency = st.Currency
	}
	seq := 0
	if st.Rows > 0 {
		seq = st.MaxSeq + 1
	}
	e := &LedgerEntry{
		ID: LedgerID(st.UserID, st.Period.Start, seq), UserID: st.UserID, Period: st.Period, Seq: seq,
		Included: charge.Included, Used: charge.Used, Amount: charge.Amount - st.Recorded, Currency: charge.Currency,
		Lines: lines, IdempotencyKey: IdempotencyKey(st.UserID, st.Period.Start, seq),
	}
	for _, l := range lines {
		e.Units += l.Units
		if l.Bills {
			e.UnitSize, e.UnitPrice = l.Price.UnitSize, l.Price.UnitPrice
		}
	}
	switch {
	case e.Amount > 0:
		e.Status = LedgerPending
	case st.Rows == 0 && e.Amount == 0 && closed:
		e.Status = LedgerSkipped
		e.Note = "no usage above the included calls"
	case st.Rows == 0:
		return nil, nil
	case st.LastSkipped && st.LastAmount == e.Amount:
		return nil, nil // noted already
	case e.Amount == 0 && !st.LastSkipped:
		return nil, nil
	case e.Amount == 0:
		e.Status = LedgerSkipped
		e.Note = fmt.Sprintf("the period's charge is back at the %s charged; the credit noted before is void",
			usage.FormatMoney(st.Recorded, charge.Currency))
	default:
		e.Status = LedgerSkipped
		e.Note = fmt.Sprintf("the period's charge fell to %s after %s was charged (%s calls); credit of %s not issued automatically, review",
			usage.FormatMoney(charge.Amount, charge.Currency), usage.FormatMoney(st.Recorded, charge.Currency), usage.FormatCount(charge.Used),
			usage.FormatMoney(-e.Amount, charge.Currency))
	}
	e.Description = describe(e, st.Lines)
	return e, nil
}

// proratedAsBilled reports whether a period was billed under the earlier
// rule (its recorded lines prorated the included calls by
// days) and nothing changed since: the same segments with the same calls.
// Such a period stays as it was billed; late usage prices it again under
// today's rule.
func proratedAsBilled(recorded, lines []usage.Line) bool {
	if len(recorded) == 0 || len(recorded) != len(lines) || !slices.ContainsFunc(recorded, func(r usage.Line) bool { return r.Prorated }) {
		return false
	}
	for i, r := range recorded {
		if !r.From.Equal(lines[i].From) || !r.To.Equal(lines[i].To) || r.Used != lines[i].Used {
			return false
		}
	}
	return true
}

// allRecorded reports whether every segment has a recorded line.
func allRecorded(segs []usage.Segment, recorded []usage.Line) bool {
	for _, s := range segs {
		if !slices.ContainsFunc(recorded, func(r usage.Line) bool { return r.From.Equal(s.From) && r.To.Equal(s.To) }) {
			return false
		}
	}
	return true
}

// describe writes the invoice line of a row for the customer: the period,
// then each segment the row charges (new, or re-priced by late usage) with
// its plan, calls, included calls and price, and what was charged before
// for those segments.
func describe(e *LedgerEntry, before []usage.Line) string {
	var b strings.Builder
	b.WriteString("API overage")
	if e.Seq > 0 {
		fmt.Fprintf(&b, " adjustment %d", e.Seq)
	}
	b.WriteString(", " + usage.FormatDays(e.Period.Start, e.Period.End))
	var parts []string
	var prior int64
	for _, l := range e.Lines {
		i := slices.IndexFunc(before, func(r usage.Line) bool { return r.From.Equal(l.From) && r.To.Equal(l.To) })
		if i >= 0 && before[i].Used == l.Used && before[i].Amount == l.Amount {
			continue // unchanged: charged before
		}
		if !l.Bills && i < 0 && len(e.Lines) > 1 {
			continue // a segment that charges nothing, beside others
		}
		if i >= 0 {
			prior += before[i].Amount
		}
		name := l.PlanName
		if name == "" {
			name = l.PlanID
		}
		if !l.From.Equal(e.Period.Start) || !l.To.Equal(e.Period.End) {
			name += " " + usage.FormatDays(l.From, l.To)
		}
		s := fmt.Sprintf("%s, %s calls", name, usage.FormatCount(l.Used))
		if l.UsedBefore > 0 {
			s += fmt.Sprintf(" (%s in the period so far)", usage.FormatCount(l.UsedBefore+l.Used))
		}
		parts = append(parts, fmt.Sprintf("%s, %s included: %s", s, usage.FormatCount(l.Included), l.Describe()))
	}
	if len(parts) > 0 {
		b.WriteString(": " + strings.Join(parts, "; "))
	}
	if prior != 0 {
		b.WriteString("; less " + usage.FormatMoney(prior, e.Currency) + " charged before")
	}
	return b.String()
}
