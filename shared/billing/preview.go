package billing

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Preview is the overage of the billing periods that start in a month, as
// of an instant: what each period's usage so far costs, what its ledger
// rows account for, and the row a real run would write now. Computing it
// writes nothing.
type Preview struct {
	// Month is the month, YYYY-MM.
	Month  string         `json:"period"`
	AsOf   time.Time      `json:"as_of"`
	Items  []PreviewItem  `json:"items"`
	Totals []PreviewTotal `json:"totals"`
}

// PreviewItem is one user's period in a preview.
type PreviewItem struct {
	UserID string       `json:"user_id"`
	Period usage.Period `json:"period"`
	// Closed is true once the period has been over for the grace period;
	// until then the charge is that of the usage so far.
	Closed bool `json:"closed"`
	// Charge prices every segment of the period at its usage so far, the
	// terms already billed kept for their segments.
	Charge usage.PeriodCharge `json:"charge"`
	// Recorded and Billed sum the period's ledger rows (PeriodState).
	Recorded int64 `json:"recorded"`
	Billed   int64 `json:"billed"`
	// Next is the row a real run at AsOf would write; nil when none.
	Next *DraftRow `json:"next"`
	// Unpriced says why the period could not be priced (a run reports its
	// subscription as unpriced and writes no row for it); its charge is
	// then empty and counts in no total.
	Unpriced string `json:"unpriced,omitempty"`
}

// PreviewTotal sums a preview's items in one currency; the sums saturate at
// the int64 maximum (minimum), as the store's do.
type PreviewTotal struct {
	Currency string `json:"currency"`
	Charge   int64  `json:"charge"`
	Recorded int64  `json:"recorded"`
	Billed   int64  `json:"billed"`
	// Next sums the positive amounts of the items' next rows: what a run
	// now would send to Stripe.
	Next int64 `json:"next"`
}

// OveragePreviewer previews overage (the admin route's view of Billing).
type OveragePreviewer interface {
	// Preview returns the preview of the periods that start in month (any
	// instant in it) as of now, ordered by user and period. Errors are the
	// store's (CodeUnavailable).
	Preview(ctx context.Context, month, now time.Time) (*Preview, error)
}

var _ OveragePreviewer = (*Billing)(nil)

// periodsStarting returns the periods of sub that start in [from, to) and
// not after now, nor before the anchor.
func periodsStarting(sub *BillableSubscription, from, to, now time.Time) []usage.Period {
	anchor := sub.PeriodAnchor.UTC()
	var out []usage.Period
	p := usage.PeriodAt(anchor, from)
	if p.Start.Before(from) {
		p = usage.PeriodAt(anchor, p.End)
	}
	for ; p.Start.Before(to) && !p.Start.After(now); p = usage.PeriodAt(anchor, p.End) {
		if !p.Start.Before(anchor) {
			out = append(out, p)
		}
	}
	return out
}

// Preview implements OveragePreviewer with the same pricing as Run.
func (b *Billing) Preview(ctx context.Context, month, now time.Time) (*Preview, error) {
	c := b
	now = now.UTC()
	from := time.Date(month.Year(), month.Month(), 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 1, 0)
	subs, err := c.cfg.Ledger.BillableSubscriptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list billable subscriptions: %w", err)
	}
	var (
		periods []UserPeriod
		owners  []*BillableSubscription
	)
	for _, s := range subs {
		for _, p := range periodsStarting(s, from, to, now) {
			periods = append(periods, UserPeriod{UserID: s.UserID, Period: p, ByDay: NeedsDays(p, s.History)})
			owners = append(owners, s)
		}
	}
	pv := &Preview{Month: from.Format("2006-01"), AsOf: now, Items: []PreviewItem{}, Totals: []PreviewTotal{}}
	if len(periods) == 0 {
		return pv, nil
	}
	states, err := c.cfg.Ledger.PeriodStates(ctx, periods)
	if err != nil {
		return nil, fmt.Errorf("read period states: %w", err)
	}
	totals := map[string]*PreviewTotal{}
	var order []string
	for i, st := range states {
		s := owners[i]
		it := PreviewItem{UserID: s.UserID, Period: st.Period, Closed: !st.Period.End.After(now.Add(-c.cfg.Grace)),
			Charge: usage.PeriodCharge{Lines: []usage.Line{}}, Recorded: st.Recorded, Billed: st.Billed}
		// A period that cannot be priced is reported, as a run reports its
		// subscription, and the others are previewed all the same.
		lines, err := usage.PriceLines(st.Period, usage.Segments(st.Period, s.History), st.Days, st.Lines, st.Period.End)
		var charge usage.PeriodCharge
		if err == nil {
			charge, err = usage.NewPeriodCharge(lines)
		}
		var e *LedgerEntry
		if err == nil {
			e, err = c.DraftPeriod(s, st, now)
		}
		if err != nil {
			it.Unpriced = usage.ErrorMessage(err)
			pv.Items = append(pv.Items, it)
			continue
		}
		it.Charge = charge
		if e != nil {
			it.Next = &DraftRow{UserID: e.UserID, Period: e.Period, Seq: e.Seq, Status: e.Status,
				Amount: e.Amount, Currency: e.Currency, Description: e.Description}
		}
		pv.Items = append(pv.Items, it)
		t := totals[charge.Currency]
		if t == nil {
			t = &PreviewTotal{Currency: charge.Currency}
			totals[charge.Currency] = t
			order = append(order, charge.Currency)
		}
		t.Charge = usage.AddSaturating(t.Charge, charge.Amount)
		t.Recorded = usage.AddSaturating(t.Recorded, st.Recorded)
		t.Billed = usage.AddSaturating(t.Billed, st.Billed)
		if it.Next != nil && it.Next.Status == LedgerPending {
			t.Next = usage.AddSaturating(t.Next, it.Next.Amount)
		}
	}
	slices.Sort(order)
	for _, cur := range order {
		pv.Totals = append(pv.Totals, *totals[cur])
	}
	return pv, nil
}
