package mock

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/usage"
)

var _ usage.LedgerStore = (*LedgerStore)(nil)

// LedgerStore is a usage.LedgerStore.
type LedgerStore struct {
	BillableSubscriptionsFn func(ctx context.Context) ([]*usage.BillableSubscription, error)
	PeriodStatesFn          func(ctx context.Context, periods []usage.UserPeriod) ([]usage.PeriodState, error)
	InsertLedgerEntriesFn   func(ctx context.Context, entries []*usage.LedgerEntry, progress []usage.Progress, now time.Time) (int, error)
	ClaimPendingFn          func(ctx context.Context, r usage.ClaimRequest) ([]*usage.LedgerEntry, error)
	MarkBilledFn            func(ctx context.Context, items []usage.Billed, now time.Time) error
	MarkRetryFn             func(ctx context.Context, ledgerID, reason string, now time.Time) error
	MarkFailedFn            func(ctx context.Context, ledgerID, reason string, now time.Time) error
	MarkSkippedFn           func(ctx context.Context, ledgerID, reason string, now time.Time) error
	AdoptFn                 func(ctx context.Context, items []usage.Adopted, now time.Time) error
	// UnaccountedFn nil accounts for every item.
	UnaccountedFn     func(ctx context.Context, items []usage.FoundItem) ([]usage.Unaccounted, error)
	PromoteDueTermsFn func(ctx context.Context, now time.Time) (int, error)
	OpenRunFn         func(ctx context.Context, rep *usage.RunReport, now, started time.Time) (int64, error)
	CloseRunFn        func(ctx context.Context, jobRunID int64, rep *usage.RunReport, at time.Time, runErr error) error
}

// BillableSubscriptions calls BillableSubscriptionsFn.
func (s *LedgerStore) BillableSubscriptions(ctx context.Context) ([]*usage.BillableSubscription, error) {
	return s.BillableSubscriptionsFn(ctx)
}

// PeriodStates calls PeriodStatesFn.
func (s *LedgerStore) PeriodStates(ctx context.Context, periods []usage.UserPeriod) ([]usage.PeriodState, error) {
	return s.PeriodStatesFn(ctx, periods)
}

// InsertLedgerEntries calls InsertLedgerEntriesFn.
func (s *LedgerStore) InsertLedgerEntries(ctx context.Context, entries []*usage.LedgerEntry, progress []usage.Progress, now time.Time) (int, error) {
	return s.InsertLedgerEntriesFn(ctx, entries, progress, now)
}

// ClaimPending calls ClaimPendingFn.
func (s *LedgerStore) ClaimPending(ctx context.Context, r usage.ClaimRequest) ([]*usage.LedgerEntry, error) {
	return s.ClaimPendingFn(ctx, r)
}

// MarkBilled calls MarkBilledFn.
func (s *LedgerStore) MarkBilled(ctx context.Context, items []usage.Billed, now time.Time) error {
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
func (s *LedgerStore) Adopt(ctx context.Context, items []usage.Adopted, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	return s.AdoptFn(ctx, items, now)
}

// Unaccounted calls UnaccountedFn, when set.
func (s *LedgerStore) Unaccounted(ctx context.Context, items []usage.FoundItem) ([]usage.Unaccounted, error) {
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
func (s *LedgerStore) OpenRun(ctx context.Context, rep *usage.RunReport, now, started time.Time) (int64, error) {
	return s.OpenRunFn(ctx, rep, now, started)
}

// CloseRun calls CloseRunFn.
func (s *LedgerStore) CloseRun(ctx context.Context, jobRunID int64, rep *usage.RunReport, at time.Time, runErr error) error {
	return s.CloseRunFn(ctx, jobRunID, rep, at, runErr)
}

var _ usage.Biller = (*Biller)(nil)

// Biller is a usage.Biller.
type Biller struct {
	CreateInvoiceItemFn func(ctx context.Context, item *usage.InvoiceItem, idempotencyKey string) (string, error)
	// FindInvoiceItemsFn and ListInvoiceItemsFn nil find nothing.
	FindInvoiceItemsFn func(ctx context.Context, customerID, userID string, p usage.Period) ([]usage.FoundItem, error)
	ListInvoiceItemsFn func(ctx context.Context, since time.Time) ([]usage.FoundItem, error)
}

// ListInvoiceItems calls ListInvoiceItemsFn, when set.
func (b *Biller) ListInvoiceItems(ctx context.Context, since time.Time) ([]usage.FoundItem, error) {
	if b.ListInvoiceItemsFn == nil {
		return nil, nil
	}
	return b.ListInvoiceItemsFn(ctx, since)
}

// CreateInvoiceItem calls CreateInvoiceItemFn.
func (b *Biller) CreateInvoiceItem(ctx context.Context, item *usage.InvoiceItem, idempotencyKey string) (string, error) {
	return b.CreateInvoiceItemFn(ctx, item, idempotencyKey)
}

// FindInvoiceItems calls FindInvoiceItemsFn, when set.
func (b *Biller) FindInvoiceItems(ctx context.Context, customerID, userID string, p usage.Period) ([]usage.FoundItem, error) {
	if b.FindInvoiceItemsFn == nil {
		return nil, nil
	}
	return b.FindInvoiceItemsFn(ctx, customerID, userID, p)
}

var _ usage.OveragePreviewer = (*OveragePreviewer)(nil)

// OveragePreviewer is a usage.OveragePreviewer.
type OveragePreviewer struct {
	PreviewFn func(ctx context.Context, month, now time.Time) (*usage.Preview, error)
}

// Preview calls PreviewFn.
func (p *OveragePreviewer) Preview(ctx context.Context, month, now time.Time) (*usage.Preview, error) {
	return p.PreviewFn(ctx, month, now)
}
