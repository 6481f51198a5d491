package mock

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/usage"
)

var _ billing.LedgerStore = (*LedgerStore)(nil)

// LedgerStore is a billing.LedgerStore.
type LedgerStore struct {
	BillableSubscriptionsFn func(ctx context.Context) ([]*billing.BillableSubscription, error)
	PeriodStatesFn          func(ctx context.Context, periods []billing.UserPeriod) ([]billing.PeriodState, error)
	InsertLedgerEntriesFn   func(ctx context.Context, entries []*billing.LedgerEntry, progress []billing.Progress, now time.Time) (int, error)
	ClaimPendingFn          func(ctx context.Context, r billing.ClaimRequest) ([]*billing.LedgerEntry, error)
	MarkBilledFn            func(ctx context.Context, items []billing.Billed, now time.Time) error
	MarkRetryFn             func(ctx context.Context, ledgerID, reason string, now time.Time) error
	MarkFailedFn            func(ctx context.Context, ledgerID, reason string, now time.Time) error
	MarkSkippedFn           func(ctx context.Context, ledgerID, reason string, now time.Time) error
	AdoptFn                 func(ctx context.Context, items []billing.Adopted, now time.Time) error
	// UnaccountedFn nil accounts for every item.
	UnaccountedFn     func(ctx context.Context, items []billing.FoundItem) ([]billing.Unaccounted, error)
	PromoteDueTermsFn func(ctx context.Context, now time.Time) (int, error)
	OpenRunFn         func(ctx context.Context, rep *billing.RunReport, now, started time.Time) (int64, error)
	CloseRunFn        func(ctx context.Context, jobRunID int64, rep *billing.RunReport, at time.Time, runErr error) error
}

// BillableSubscriptions calls BillableSubscriptionsFn.
func (s *LedgerStore) BillableSubscriptions(ctx context.Context) ([]*billing.BillableSubscription, error) {
	return s.BillableSubscriptionsFn(ctx)
}

// PeriodStates calls PeriodStatesFn.
func (s *LedgerStore) PeriodStates(ctx context.Context, periods []billing.UserPeriod) ([]billing.PeriodState, error) {
	return s.PeriodStatesFn(ctx, periods)
}

// InsertLedgerEntries calls InsertLedgerEntriesFn.
func (s *LedgerStore) InsertLedgerEntries(ctx context.Context, entries []*billing.LedgerEntry, progress []billing.Progress, now time.Time) (int, error) {
	return s.InsertLedgerEntriesFn(ctx, entries, progress, now)
}

// ClaimPending calls ClaimPendingFn.
func (s *LedgerStore) ClaimPending(ctx context.Context, r billing.ClaimRequest) ([]*billing.LedgerEntry, error) {
	return s.ClaimPendingFn(ctx, r)
}

// MarkBilled calls MarkBilledFn.
func (s *LedgerStore) MarkBilled(ctx context.Context, items []billing.Billed, now time.Time) error {
	return s.MarkBilledFn(ctx, items, now)
}

// MarkRetry calls MarkRetryFn.
func (s *LedgerStore) MarkRetry(ctx context.Context, ledgerID, reason string, now time.Time) error {
	return s.MarkRetryFn(ctx, ledgerID, reason, now)
}

// MarkFailed calls MarkFailedFn.
func (s *LedgerStore) MarkFailed(ctx context.Context, ledgerID, reason string, now time.Time) error {
	return s.MarkFailedFn(ctx, ledgerID, reason, now)
}

// MarkSkipped calls MarkSkippedFn.
func (s *LedgerStore) MarkSkipped(ctx context.Context, ledgerID, reason string, now time.Time) error {
	return s.MarkSkippedFn(ctx, ledgerID, reason, now)
}

// Adopt calls AdoptFn, when there are items.
func (s *LedgerStore) Adopt(ctx context.Context, items []billing.Adopted, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	return s.AdoptFn(ctx, items, now)
}

// Unaccounted calls UnaccountedFn, when set.
func (s *LedgerStore) Unaccounted(ctx context.Context, items []billing.FoundItem) ([]billing.Unaccounted, error) {
	if s.UnaccountedFn == nil {
		return nil, nil
	}
	return s.UnaccountedFn(ctx, items)
}

// PromoteDueTerms calls PromoteDueTermsFn.
func (s *LedgerStore) PromoteDueTerms(ctx context.Context, now time.Time) (int, error) {
	return s.PromoteDueTermsFn(ctx, now)
}

// OpenRun calls OpenRunFn.
func (s *LedgerStore) OpenRun(ctx context.Context, rep *billing.RunReport, now, started time.Time) (int64, error) {
	return s.OpenRunFn(ctx, rep, now, started)
}

// CloseRun calls CloseRunFn.
func (s *LedgerStore) CloseRun(ctx context.Context, jobRunID int64, rep *billing.RunReport, at time.Time, runErr error) error {
	return s.CloseRunFn(ctx, jobRunID, rep, at, runErr)
}

var _ billing.Biller = (*Biller)(nil)

// Biller is a billing.Biller.
type Biller struct {
	CreateInvoiceItemFn func(ctx context.Context, item *billing.InvoiceItem, idempotencyKey string) (string, error)
	// FindInvoiceItemsFn and ListInvoiceItemsFn nil find nothing.
	FindInvoiceItemsFn func(ctx context.Context, customerID, userID string, p usage.Period) ([]billing.FoundItem, error)
	ListInvoiceItemsFn func(ctx context.Context, since time.Time) ([]billing.FoundItem, error)
}

// ListInvoiceItems calls ListInvoiceItemsFn, when set.
func (b *Biller) ListInvoiceItems(ctx context.Context, since time.Time) ([]billing.FoundItem, error) {
	if b.ListInvoiceItemsFn == nil {
		return nil, nil
	}
	return b.ListInvoiceItemsFn(ctx, since)
}

// CreateInvoiceItem calls CreateInvoiceItemFn.
func (b *Biller) CreateInvoiceItem(ctx context.Context, item *billing.InvoiceItem, idempotencyKey string) (string, error) {
	return b.CreateInvoiceItemFn(ctx, item, idempotencyKey)
}

// FindInvoiceItems calls FindInvoiceItemsFn, when set.
func (b *Biller) FindInvoiceItems(ctx context.Context, customerID, userID string, p usage.Period) ([]billing.FoundItem, error) {
	if b.FindInvoiceItemsFn == nil {
		return nil, nil
	}
	return b.FindInvoiceItemsFn(ctx, customerID, userID, p)
}

var _ billing.OveragePreviewer = (*OveragePreviewer)(nil)

// OveragePreviewer is a billing.OveragePreviewer.
type OveragePreviewer struct {
	PreviewFn func(ctx context.Context, month, now time.Time) (*billing.Preview, error)
}

// Preview calls PreviewFn.
func (p *OveragePreviewer) Preview(ctx context.Context, month, now time.Time) (*billing.Preview, error) {
	return p.PreviewFn(ctx, month, now)
}
