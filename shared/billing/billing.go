package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/nexus/usage/shared/usage"
)

// Ledger statuses. A row is written pending (or skipped when there is
// nothing to charge) before any call to Stripe; billed is final, and so is
// failed until an admin retries the row, which makes it pending again.
const (
	LedgerPending = "pending"
	LedgerBilled  = "billed"
	LedgerFailed  = "failed"
	LedgerSkipped = "skipped"
)

// LedgerEntry is one row of the overage ledger: the charge of a user's
// billing period (Seq 0), then each later difference (Seq 1, 2, …): the
// segments a plan change closed before the period's end, and usage that
// arrived after the period was billed. Amounts are in the currency's minor
// unit. A negative Amount is a credit recorded for an admin (status
// skipped): it is never sent to Stripe. Billing runs write and claim
// entries; the admin API lists them as they are.
type LedgerEntry struct {
	ID     string       `json:"id"`
	UserID string       `json:"user_id"`
	Period usage.Period `json:"period"`
	Seq    int          `json:"seq"`
	// Included and Used sum the lines; Units sums their packages (package
	// prices), UnitSize and UnitPrice are the last billing line's. Amount
	// is this row's share: the lines' total minus the rows before it.
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
	Note string `json:"note,omitempty"`
	// Lines are the period's pricing as of this row, one per segment that
	// was closed when the row was written.
	Lines []usage.Line `json:"lines,omitempty"`
	// Description is the invoice line, as sent on every attempt.
	Description string `json:"description"`
	// SentTo are the Stripe customers the row was claimed for, first
	// first; ClaimPending returns them as they were before the claim.
	SentTo []string `json:"sent_to,omitempty"`
	// Retries counts the admin's retries of the row after it failed.
	Retries   int       `json:"retries"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// CustomerID and SubscriptionID are the user's Stripe ids now, filled
	// in when a row is claimed for billing; they are not ledger columns.
	CustomerID     string `json:"-"`
	SubscriptionID string `json:"-"`
	// PeriodRows are the rows of the row's period as a claim read them,
	// to compare with the items Stripe holds for the period.
	PeriodRows []RowState `json:"-"`
}

// RowState is what billing needs to know of a ledger row of a period to
// compare it with Stripe: its seq, status, amount and invoice item.
type RowState struct {
	Seq      int    `json:"seq"`
	Status   string `json:"status"`
	Amount   int64  `json:"amount"`
	StripeID string `json:"stripe_id"`
}

// IdempotencyKey is the Stripe idempotency key of the ledger row of a user,
// period and seq. It is derived, never random, so that every retry of the
// same row, after a crash at any point, sends the same key.
func IdempotencyKey(userID string, periodStart time.Time, seq int) string {
	return fmt.Sprintf("nexus-overage-%s-%s-%d", userID, periodStart.UTC().Format("20060102"), seq)
}

// ledgerNamespace is the namespace of the ledger ids (a name-based UUID,
// RFC 9562 version 5).
var ledgerNamespace = uuid.MustParse("5f1c2a8e-6f3b-4d57-9a0e-2c7d4b1e8a93")

// LedgerID is the id of the ledger row of a user, period and seq: a UUID
// derived from them (as the idempotency key is), never random, so that a
// row planned again after a restore of the database, having lost the row
// the first plan wrote, has the same id, and the invoice item the first
// one created names it (its metadata), to be found.
func LedgerID(userID string, periodStart time.Time, seq int) string {
	return uuid.NewSHA1(ledgerNamespace, []byte(IdempotencyKey(userID, periodStart, seq))).String()
}

// SendKey is the idempotency key of the row sent to customer: the row's
// key for the customer it was first sent to (or any customer when it was
// never sent), else the key followed by the customer. Stripe refuses a key
// reused with other parameters, and a new customer is another parameter;
// the derived key is as deterministic as the row's.
func (e *LedgerEntry) SendKey(customer string) string {
	if len(e.SentTo) == 0 || e.SentTo[0] == customer {
		return e.IdempotencyKey
	}
	return e.IdempotencyKey + "-" + customer
}

// InvoiceItem returns what the Biller sends for the row to customer.
func (e *LedgerEntry) InvoiceItem(customer string) *InvoiceItem {
	return &InvoiceItem{
		LedgerID: e.ID, UserID: e.UserID, Seq: e.Seq, Period: e.Period,
		CustomerID: customer, SubscriptionID: e.SubscriptionID,
		Amount: e.Amount, Currency: e.Currency, Description: e.Description,
	}
}

// InvoiceItem is a one-off charge added to the customer's next invoice.
type InvoiceItem struct {
	LedgerID       string
	UserID         string
	CustomerID     string
	SubscriptionID string
	Period         usage.Period
	Seq            int
	Amount         int64
	Currency       string
	Description    string
}

// FoundItem is an invoice item the provider holds for a user's period:
// its id, the ledger row its metadata names (user, period, seq and ledger
// id), and what it charges.
type FoundItem struct {
	ID       string
	LedgerID string
	UserID   string
	Period   usage.Period
	Seq      int
	Amount   int64
	Currency string
}

// Unaccounted is an item the ledger does not account for: no row of its
// (user, period, seq) is billed with it. RowStripeID is the item a row of
// that seq is billed with, when it is another one (two items for one row:
// not adopted, an admin decides).
type Unaccounted struct {
	Item        FoundItem
	RowStripeID string
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
	// FindInvoiceItems returns the customer's items whose metadata names a
	// ledger row of the user's period (any seq), oldest first: what a run
	// checks before it creates an item that may exist whatever the ledger
	// says (a restore of the database loses the rows of items it created,
	// and a key protects a day only).
	FindInvoiceItems(ctx context.Context, customerID, userID string, p usage.Period) ([]FoundItem, error)
	// ListInvoiceItems returns every item created since since whose
	// metadata names a ledger row, oldest first: what a run reconciles the
	// ledger with before it plans.
	ListInvoiceItems(ctx context.Context, since time.Time) ([]FoundItem, error)
}

// Retryable reports whether err is worth another attempt later with the
// same idempotency key: provider or network unavailable, rate limited, or an
// unclassified (internal) error.
func Retryable(err error) bool {
	switch usage.ErrorCode(err) {
	case usage.CodeUnavailable, usage.CodeRateLimited, usage.CodeInternal:
		return true
	}
	return false
}

// UserPeriod names one billing period of one user.
type UserPeriod struct {
	UserID string
	Period usage.Period
	// ByDay asks for the period's calls per day; without it the store may
	// answer their sum as one DayCalls on the period's first day, enough
	// for a period under one set of terms throughout (NeedsDays).
	ByDay bool
}

// NeedsDays reports whether pricing period p under history needs its
// calls per day: unless one segment covers the whole period.
func NeedsDays(p usage.Period, history []usage.Terms) bool {
	segs := usage.Segments(p, history)
	return len(segs) != 1 || !segs[0].From.Equal(p.Start) || !segs[0].To.Equal(p.End)
}

// PeriodState is what the ledger store knows about a period: the calls of
// its days so far and a summary of its ledger rows.
type PeriodState struct {
	UserPeriod
	// Days are the period's days with calls, from the live counters (or
	// their sum on the first day, unless the period asked ByDay).
	Days []usage.DayCalls
	// Rows is the number of ledger rows; MaxSeq the highest seq among them.
	Rows   int
	MaxSeq int
	// Recorded sums the amounts of the rows that charge: billed, pending
	// and failed (owed, and billed by an admin's retry: never planned
	// again). Skipped rows (nothing due, or a credit noted for an admin)
	// charge nothing. A new row is the period's charge minus Recorded.
	// Billed sums the billed rows alone: what the customer has been
	// charged.
	Recorded int64
	Billed   int64
	// LastSkipped is true when the latest row (the highest seq) is a
	// skipped one; LastAmount is then its amount: 0, or the credit noted.
	LastSkipped bool
	LastAmount  int64
	// Currency is the currency the rows charged in ("" when none charged).
	Currency string
	// Lines are the latest row's lines, the terms the period's closed
	// segments were billed with; rows from before lines were kept read as
	// one package line over the whole period.
	Lines []usage.Line
}

// Used returns the period's calls so far.
func (s PeriodState) Used() int64 {
	var n int64
	for _, d := range s.Days {
		n += d.Calls
	}
	return n
}

// BillableSubscription is a subscription as a billing run sees it: its
// terms history and how far its periods are planned.
type BillableSubscription struct {
	usage.Subscription
	// History is the terms history, oldest first.
	History []usage.Terms
	// ClosedThrough is the end of the latest closed period up to which
	// every period has its ledger rows; zero when none has.
	ClosedThrough time.Time
}

// Unbillable says why the subscription's usage cannot all be priced, or
// "": it has no terms history, or its history starts after its anchor (the
// days between have no terms). The database refuses both
// (eco_subscription_terms_cover); a run reports them should they appear all the same.
func (s *BillableSubscription) Unbillable() string {
	switch {
	case len(s.History) == 0:
		return "the subscription has no terms history: its usage cannot be priced"
	case usage.Day(s.History[0].From).After(s.PeriodAnchor):
		return fmt.Sprintf("the subscription's terms start on %s, after its period anchor %s: the usage of the days between cannot be priced",
			usage.Day(s.History[0].From).Format(time.DateOnly), s.PeriodAnchor.UTC().Format(time.DateOnly))
	}
	return ""
}

// Bills reports whether any entry of the history bills.
func (s *BillableSubscription) Bills() bool {
	for _, t := range s.History {
		if t.Effective.Bills() {
			return true
		}
	}
	return false
}

// Progress moves a subscription's ClosedThrough.
type Progress struct {
	UserID        string
	ClosedThrough time.Time
}

// Billed pairs a ledger row with the provider's id of its invoice item.
// Amount is what the item charges; when it is not the row's (an item found
// in Stripe that an earlier plan of the row created, before a restore of
// the database), the row takes it, with Note saying so, and the next run
// plans the difference.
type Billed struct {
	LedgerID string
	StripeID string
	Amount   int64
	Note     string
}

// Adopted is an invoice item of a period found in Stripe that the ledger
// does not account for (no row for its seq, or a row not billed with it):
// the row of its seq becomes billed with it, created when missing.
type Adopted struct {
	UserID string
	Period usage.Period
	Item   FoundItem
	Note   string
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
	// BillableSubscriptions returns the subscriptions whose terms history
	// holds terms that bill (BillableSubscription.Bills), those with ledger
	// rows, and those with no terms history at all (reported, see
	// BillableSubscription.Unbillable), with their Stripe ids, history and
	// progress.
	BillableSubscriptions(ctx context.Context) ([]*BillableSubscription, error)
	// PeriodStates returns the state of each period, in the order given.
	PeriodStates(ctx context.Context, periods []UserPeriod) ([]PeriodState, error)
	// InsertLedgerEntries inserts the rows, ignoring any whose (user,
	// period, seq) exists already, moves the subscriptions' progress
	// forward (never back), in one statement, and returns how many rows it
	// inserted.
	InsertLedgerEntries(ctx context.Context, entries []*LedgerEntry, progress []Progress, now time.Time) (int, error)
	// ClaimPending leases up to Limit pending rows that are not leased and
	// were not claimed by the same owner before, bumps their attempts, adds
	// the user's Stripe customer to their SentTo, and returns them with the
	// Stripe ids of their users and SentTo as it was before the claim.
	ClaimPending(ctx context.Context, r ClaimRequest) ([]*LedgerEntry, error)
	// MarkBilled records the provider's ids (and amounts) on pending rows,
	// in one statement; rows no longer pending are left alone.
	MarkBilled(ctx context.Context, items []Billed, now time.Time) error
	// Adopt makes the row of each item's seq billed with the item, its
	// amount and currency and the note, whatever its status, inserting
	// the row when there is none, in one statement.
	Adopt(ctx context.Context, items []Adopted, now time.Time) error
	// MarkSkipped ends a pending row as skipped, charging nothing, with the
	// reason: a row not sent because the period's ledger changed under it
	// (items found in Stripe); the next run plans the period again.
	MarkSkipped(ctx context.Context, ledgerID, reason string, now time.Time) error
	// Unaccounted returns the items no row accounts for: no row of the
	// item's (user, period, seq) is billed with it, with its amount, in the
	// order of items (the run adopts the first of a row's). One round trip
	// per 5,000 items.
	Unaccounted(ctx context.Context, items []FoundItem) ([]Unaccounted, error)
	// MarkRetry keeps a pending row pending with the reason and releases
	// its lease.
	MarkRetry(ctx context.Context, ledgerID, reason string, now time.Time) error
	// MarkFailed ends a pending row as failed with the reason.
	MarkFailed(ctx context.Context, ledgerID, reason string, now time.Time) error
	// PromoteDueTerms makes the downgrades due at now the subscriptions'
	// current terms and returns how many it moved.
	PromoteDueTerms(ctx context.Context, now time.Time) (int, error)
	// OpenRun records the start of a billing run at started (billing at
	// the instant now) and returns its job run id.
	OpenRun(ctx context.Context, rep *RunReport, now, started time.Time) (int64, error)
	// CloseRun records what the run did, finished at at, and runErr when it
	// failed.
	CloseRun(ctx context.Context, jobRunID int64, rep *RunReport, at time.Time, runErr error) error
}
