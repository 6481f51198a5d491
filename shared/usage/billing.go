package usage

import (
	"context"
	"fmt"
	"time"
)

// Ledger statuses. A row is written pending (or dry_run, or skipped when
// there is nothing to charge) before any call to Stripe; billed and failed
// are final.
const (
	LedgerPending = "pending"
	LedgerBilled  = "billed"
	LedgerFailed  = "failed"
	LedgerSkipped = "skipped"
	LedgerDryRun  = "dry_run"
)

// LedgerEntry is one row of the overage ledger: the charge of a user's
// closed billing period (Seq 0) or a later adjustment (Seq 1, 2, …) for
// usage that arrived after the period was billed. Amounts are in the
// currency's minor unit. A negative Amount is a credit recorded for an
// admin (status skipped): it is never sent to Stripe. Billing runs write
// and claim entries; the admin API lists them as they are.
type LedgerEntry struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Period Period `json:"period"`
	Seq    int    `json:"seq"`
	// Included, Used, UnitSize and UnitPrice are the terms the row was
	// priced with; Units and Amount are this row's share (for adjustments,
	// the difference to the rows before it).
	Included       int64  `json:"included_calls"`
	Used           int64  `json:"used_calls"`
	Units          int64  `json:"units"`
	UnitSize       int64  `json:"unit_size"`
	UnitPrice      int64  `json:"unit_price"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	IdempotencyKey string `json:"idempotency_key"`
	Status         string `json:"status"`
	StripeObjectID string `json:"stripe_object_id,omitempty"`
	Attempts       int    `json:"attempts"`
	LastError      string `json:"last_error,omitempty"`
	// Note explains a skipped row (nothing to charge, or a credit owed).
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// CustomerID and SubscriptionID are the user's Stripe ids, filled in
	// when a row is claimed for billing; they are not ledger columns.
	CustomerID     string `json:"-"`
	SubscriptionID string `json:"-"`
}

// IdempotencyKey is the Stripe idempotency key of the ledger row of a user,
// period and seq. It is derived, never random, so that every retry of the
// same row, after a crash at any point, sends the same key.
func IdempotencyKey(userID string, periodStart time.Time, seq int) string {
	return fmt.Sprintf("nexus-overage-%s-%s-%d", userID, periodStart.UTC().Format("20060102"), seq)
}

// Description is the invoice line shown to the customer.
func (e *LedgerEntry) Description() string {
	last := e.Period.End.Add(-time.Nanosecond)
	span := e.Period.Start.UTC().Format(time.DateOnly) + " – " + last.UTC().Format(time.DateOnly)
	above := max(0, e.Used-e.Included)
	if e.Seq > 0 {
		return fmt.Sprintf("API overage adjustment %d: %d calls above %d included, period %s", e.Seq, above, e.Included, span)
	}
	return fmt.Sprintf("API overage: %d calls above %d included, period %s", above, e.Included, span)
}

// InvoiceItem returns what the Biller sends for the row.
func (e *LedgerEntry) InvoiceItem() *InvoiceItem {
	return &InvoiceItem{
		LedgerID: e.ID, UserID: e.UserID, Seq: e.Seq, Period: e.Period,
		CustomerID: e.CustomerID, SubscriptionID: e.SubscriptionID,
		Amount: e.Amount, Currency: e.Currency, Description: e.Description(),
	}
}

// InvoiceItem is a one-off charge added to the customer's next invoice.
type InvoiceItem struct {
	LedgerID       string
	UserID         string
	CustomerID     string
	SubscriptionID string
	Period         Period
	Seq            int
	Amount         int64
	Currency       string
	Description    string
}

// Biller creates invoice items in the payment provider (Stripe).
//
// Errors carry codes: CodeUnavailable and CodeRateLimited (network errors,
// 5xx, 429) are worth retrying with the same key; CodeUnauthorized and
// CodeForbidden mean the provider credentials are wrong, so the run stops;
// any other code (CodeInvalid, CodeNotFound, CodeConflict) is permanent for
// that item and its message says why.
type Biller interface {
	// CreateInvoiceItem creates the item, sending idempotencyKey so that a
	// repeated call within the provider's key window returns the first
	// result instead of charging again. It returns the provider's id.
	CreateInvoiceItem(ctx context.Context, item *InvoiceItem, idempotencyKey string) (string, error)
	// FindInvoiceItem looks for an item of the customer whose metadata names
	// the ledger row: the check made before retrying a row whose key may have
	// expired. found is false when there is none.
	FindInvoiceItem(ctx context.Context, customerID, ledgerID string) (id string, found bool, err error)
}

// Retryable reports whether err is worth another attempt later with the
// same idempotency key: provider or network unavailable, rate limited, or an
// unclassified (internal) error.
func Retryable(err error) bool {
	switch ErrorCode(err) {
	case CodeUnavailable, CodeRateLimited, CodeInternal:
		return true
	}
	return false
}

// UserPeriod names one billing period of one user.
type UserPeriod struct {
	UserID string
	Period Period
}

// PeriodState is what the ledger store knows about a closed period: the
// calls used in it and a summary of the ledger rows written so far.
type PeriodState struct {
	UserPeriod
	Used int64
	// Rows is the number of ledger rows; MaxSeq the highest seq among them.
	Rows   int
	MaxSeq int
	// Units and Amount are the sums over all rows (credits included), that
	// is, what has been charged or decided so far.
	Units  int64
	Amount int64
	// Base is the pricing of the seq 0 row, which adjustments reuse; nil
	// when there are no rows.
	Base *Overage
}

// Billed pairs a ledger row with the provider's id of its invoice item.
type Billed struct {
	LedgerID string
	StripeID string
}

// ClaimRequest asks the store for pending rows to bill.
type ClaimRequest struct {
	// Owner identifies the run; a run never claims a row twice.
	Owner string
	Now   time.Time
	// Lease is how long the claim keeps other runs away from the rows.
	Lease time.Duration
	Limit int
}

// LedgerStore is the overage ledger and the data a billing run reads.
type LedgerStore interface {
	// BillableSubscriptions returns the subscriptions whose effective plan
	// bills overage (never the free plan), with the Stripe ids.
	BillableSubscriptions(ctx context.Context) ([]*Subscription, error)
	// PeriodStates returns the state of each period, in the order given.
	PeriodStates(ctx context.Context, periods []UserPeriod) ([]PeriodState, error)
	// InsertLedgerEntries inserts the rows, ignoring any whose (user,
	// period, seq) exists already, and returns how many it inserted.
	InsertLedgerEntries(ctx context.Context, entries []*LedgerEntry, now time.Time) (int, error)
	// ClaimPending leases up to Limit pending rows that are not leased and
	// were not claimed by the same owner before, bumps their attempts and
	// returns them with the Stripe ids of their users.
	ClaimPending(ctx context.Context, r ClaimRequest) ([]*LedgerEntry, error)
	// MarkBilled records the provider's ids on pending rows, in one
	// statement; rows no longer pending are left alone.
	MarkBilled(ctx context.Context, items []Billed, now time.Time) error
	// MarkRetry keeps a pending row pending with the reason and releases
	// its lease.
	MarkRetry(ctx context.Context, ledgerID, reason string, now time.Time) error
	// MarkFailed ends a pending row as failed with the reason.
	MarkFailed(ctx context.Context, ledgerID, reason string, now time.Time) error
	// OpenPeriodOverage returns the overage of the user's open period so
	// far and projected to its end.
	OpenPeriodOverage(ctx context.Context, userID string, now time.Time) (*OverageProjection, error)
}

// OverageProjection is the open period's overage: so far, and projected to
// the period's end at the average daily rate so far.
type OverageProjection struct {
	Period    Period    `json:"period"`
	AsOf      time.Time `json:"as_of"`
	ToDate    Overage   `json:"to_date"`
	Projected Overage   `json:"projected"`
}

// ProjectOverage prices the usage of an open period so far and projects it
// linearly to the period's end. Before the first hour of the period has
// passed the projection equals the usage so far.
func ProjectOverage(p Plan, period Period, used int64, now time.Time) OverageProjection {
	pr := OverageProjection{Period: period, AsOf: now.UTC(), ToDate: ComputeOverage(p, used)}
	elapsed := now.Sub(period.Start)
	total := period.End.Sub(period.Start)
	projected := used
	if elapsed >= time.Hour && elapsed < total {
		projected = int64(float64(used) * float64(total) / float64(elapsed))
	}
	pr.Projected = ComputeOverage(p, projected)
	return pr
}
