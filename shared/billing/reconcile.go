package billing

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// reconcileSince is the creation time from which a run at now reconciles
// the ledger with Stripe's items: those of every period it may plan rows
// for but the oldest never planned (a period within the lookback started at
// most 31 days before it ended).
func (b *Billing) reconcileSince(now time.Time) time.Time {
	return now.Add(-b.cfg.Lookback - 31*24*time.Hour)
}

// reconcile makes the ledger account for every item Stripe holds from
// reconcileSince on before the run plans: items the ledger has no trace
// of (an earlier plan's, before a restore of the database; a row billed
// whose mark was lost) are adopted by the rows of their (user, period,
// seq), which the planning then counts. An item of a row billed with
// another item, or of a row whose older item this run adopts (the items
// come oldest first), is left for an admin (Duplicates).
func (b *Billing) reconcile(ctx context.Context, now time.Time, rep *RunReport) error {
	rep.StripeCalls++
	items, err := b.cfg.Biller.ListInvoiceItems(ctx, b.reconcileSince(now))
	if err != nil {
		return fmt.Errorf("list Stripe's invoice items to reconcile the ledger: %w", err)
	}
	rep.Listed = len(items)
	un, err := b.cfg.Ledger.Unaccounted(ctx, items)
	if err != nil {
		return fmt.Errorf("reconcile %d invoice items: %w", len(items), err)
	}
	type rowKey struct {
		user  string
		start time.Time
		seq   int
	}
	var adopt []Adopted
	adopted := map[rowKey]string{}
	for _, u := range un {
		it := u.Item
		k := rowKey{it.UserID, it.Period.Start, it.Seq}
		if other := cmp.Or(u.RowStripeID, adopted[k]); other != "" {
			rep.Duplicates++
			b.cfg.Logger.ErrorContext(ctx, "Stripe holds a second item for a ledger row; review it", "stripe_id", it.ID,
				"billed_with", other, "user_id", it.UserID, "period_start", it.Period.Start.Format(time.DateOnly), "seq", it.Seq)
			continue
		}
		adopted[k] = it.ID
		adopt = append(adopt, Adopted{UserID: it.UserID, Period: it.Period, Item: it,
			Note: fmt.Sprintf("found in Stripe as %s with %s, which the ledger did not account for "+
				"(an attempt whose answer was lost, or a restore of the database)", it.ID, usage.FormatMoney(it.Amount, it.Currency))})
		b.cfg.Logger.WarnContext(ctx, "invoice item the ledger did not account for; adopted", "stripe_id", it.ID, "user_id", it.UserID,
			"period_start", it.Period.Start.Format(time.DateOnly), "seq", it.Seq, "amount", it.Amount)
	}
	if err := b.cfg.Ledger.Adopt(ctx, adopt, now); err != nil {
		return fmt.Errorf("adopt %d invoice items: %w", len(adopt), err)
	}
	rep.Adopted += len(adopt)
	return nil
}

// Reconciled is what Reconcile found.
type Reconciled struct {
	// Own is the item of the row itself (its seq); nil when none.
	Own *FoundItem
	// Adopt are the items of the period's other seqs the ledger does not
	// account for.
	Adopt []Adopted
	// Changed reports whether adopting them changes what the period's rows
	// charged (PeriodState.Recorded).
	Changed bool
	// Duplicates counts items beyond the first of a seq: created twice,
	// which this code no longer does; they are left for an admin.
	Duplicates int
}

// Reconcile compares the items Stripe holds for the period of row e
// (found, oldest first) with the period's rows as claimed (e.PeriodRows):
// the oldest item of a seq is that seq's; one that a row billed with it
// already accounts for is known; any other (no row for its seq, a row
// skipped, pending or failed, or billed without an item) is to be adopted
// by the row of its seq.
func Reconcile(e *LedgerEntry, found []FoundItem) Reconciled {
	var r Reconciled
	rows := map[int]RowState{}
	for _, s := range e.PeriodRows {
		rows[s.Seq] = s
	}
	seen := map[int]bool{}
	for i := range found {
		it := found[i]
		if seen[it.Seq] {
			r.Duplicates++
			continue
		}
		seen[it.Seq] = true
		if it.Seq == e.Seq {
			r.Own = &found[i]
			continue
		}
		row, ok := rows[it.Seq]
		switch {
		case ok && row.Status == LedgerBilled && row.StripeID == it.ID && row.Amount == it.Amount:
			continue
		case ok && row.Status == LedgerBilled && row.StripeID != "" && row.StripeID != it.ID:
			r.Duplicates++
			continue
		}
		var charged int64
		if ok && row.Status != LedgerSkipped {
			charged = row.Amount
		}
		note := fmt.Sprintf("found in Stripe as %s with %s, which the ledger did not account for "+
			"(an attempt whose answer was lost, or a restore of the database)", it.ID, usage.FormatMoney(it.Amount, it.Currency))
		r.Adopt = append(r.Adopt, Adopted{UserID: e.UserID, Period: e.Period, Item: it, Note: note})
		if it.Amount != charged {
			r.Changed = true
		}
	}
	return r
}
