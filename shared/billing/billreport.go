package billing

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// DraftRow is a ledger row a run wrote, or a dry run would write.
type DraftRow struct {
	UserID      string       `json:"user_id"`
	Period      usage.Period `json:"period"`
	Seq         int          `json:"seq"`
	Status      string       `json:"status"`
	Amount      int64        `json:"amount"`
	Currency    string       `json:"currency"`
	Description string       `json:"description"`
}

// UnpricedSubscription is a subscription a run could not price, and why.
type UnpricedSubscription struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

// Amount is a sum of money in one currency's minor unit.
type Amount struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
}

// RunReport says what a run did; a dry run says what a real run would do.
type RunReport struct {
	RunID string `json:"run_id"`
	// JobRunID is the run's row in eco_job_runs.
	JobRunID      int64     `json:"job_run_id"`
	Now           time.Time `json:"now"`
	DryRun        bool      `json:"dry_run"`
	Subscriptions int       `json:"subscriptions"`
	Periods       int       `json:"periods"`
	// Planned are the rows written (dry run: that a real run would write),
	// the first MaxReportRows of PlannedRows; Due sums their positive
	// amounts per currency, what goes (would go) to Stripe, saturating at
	// the int64 maximum.
	Planned     []DraftRow `json:"planned"`
	PlannedRows int        `json:"planned_rows"`
	Due         []Amount   `json:"due"`
	// PlanErrors counts the periods that could not be priced (logged; the
	// next run tries them again).
	PlanErrors int `json:"plan_errors"`
	// Unpriced counts the subscriptions the run could not price, wholly
	// or in part (their periods' errors, or no terms from their anchor
	// on); UnpricedSubscriptions says which and why, the first
	// MaxReportRows. The function reports the count as a metric.
	Unpriced              int                    `json:"unpriced"`
	UnpricedSubscriptions []UnpricedSubscription `json:"unpriced_subscriptions"`
	Inserted              int                    `json:"inserted"`
	Billed                int                    `json:"billed"`
	// Listed counts the items of Stripe the run reconciled the ledger with;
	// Found the rows billed with an item found in Stripe (an earlier
	// attempt's, or an earlier plan's before a restore); Adopted the items
	// the ledger did not account for, made the rows of their seqs; Replanned
	// the rows not sent because of them; Duplicates the items beyond the
	// first of one (user, period, seq).
	Listed      int           `json:"listed"`
	Found       int           `json:"found"`
	Adopted     int           `json:"adopted"`
	Replanned   int           `json:"replanned"`
	Duplicates  int           `json:"duplicates"`
	Retry       int           `json:"retry"`
	Failed      int           `json:"failed"`
	StripeCalls int           `json:"stripe_calls"`
	PlanTime    time.Duration `json:"-"`
	BillTime    time.Duration `json:"-"`
}

// MarshalJSON writes the report with its durations in milliseconds
// (plan_ms, bill_ms), as the aggregate run reports duration_ms.
func (r RunReport) MarshalJSON() ([]byte, error) {
	type fields RunReport
	return json.Marshal(struct {
		fields
		PlanMS int64 `json:"plan_ms"`
		BillMS int64 `json:"bill_ms"`
	}{fields(r), r.PlanTime.Milliseconds(), r.BillTime.Milliseconds()})
}

// report lists the planned rows in the report and sums what is due.
func report(rep *RunReport, entries []*LedgerEntry) {
	rep.PlannedRows = len(entries)
	due := map[string]int64{}
	for _, e := range entries {
		if len(rep.Planned) < MaxReportRows {
			rep.Planned = append(rep.Planned, DraftRow{UserID: e.UserID, Period: e.Period, Seq: e.Seq, Status: e.Status,
				Amount: e.Amount, Currency: e.Currency, Description: e.Description})
		}
		if e.Status == LedgerPending {
			due[e.Currency] = usage.AddSaturating(due[e.Currency], e.Amount)
		}
	}
	rep.Due = sumsOf(due)
}

func sumsOf(m map[string]int64) []Amount {
	out := []Amount{}
	for cur, a := range m {
		out = append(out, Amount{Currency: cur, Amount: a})
	}
	slices.SortFunc(out, func(a, b Amount) int { return strings.Compare(a.Currency, b.Currency) })
	return out
}
