package mock

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/usage"
)

var _ usage.UsageReader = (*UsageReader)(nil)

// UsageReader is a usage.UsageReader.
type UsageReader struct {
	UsageSummaryFn      func(ctx context.Context, userID string, now time.Time) (*usage.UsageSummary, error)
	DailyUsageFn        func(ctx context.Context, userID string, r usage.DayRange, now time.Time) ([]usage.DailyUsage, error)
	EndpointBreakdownFn func(ctx context.Context, f usage.BreakdownFilter) ([]usage.Breakdown, error)
	KeyBreakdownFn      func(ctx context.Context, f usage.BreakdownFilter) ([]usage.Breakdown, error)
}

// UsageSummary calls UsageSummaryFn.
func (s *UsageReader) UsageSummary(ctx context.Context, userID string, now time.Time) (*usage.UsageSummary, error) {
	return s.UsageSummaryFn(ctx, userID, now)
}

// DailyUsage calls DailyUsageFn.
func (s *UsageReader) DailyUsage(ctx context.Context, userID string, r usage.DayRange, now time.Time) ([]usage.DailyUsage, error) {
	return s.DailyUsageFn(ctx, userID, r, now)
}

// EndpointBreakdown calls EndpointBreakdownFn.
func (s *UsageReader) EndpointBreakdown(ctx context.Context, f usage.BreakdownFilter) ([]usage.Breakdown, error) {
	return s.EndpointBreakdownFn(ctx, f)
}

// KeyBreakdown calls KeyBreakdownFn.
func (s *UsageReader) KeyBreakdown(ctx context.Context, f usage.BreakdownFilter) ([]usage.Breakdown, error) {
	return s.KeyBreakdownFn(ctx, f)
}

var _ usage.AdminStore = (*AdminStore)(nil)

// AdminStore is a usage.AdminStore.
type AdminStore struct {
	AdminSummaryFn     func(ctx context.Context, r usage.DayRange, now time.Time) (*usage.AdminSummary, error)
	TopUsersFn         func(ctx context.Context, f usage.TopUsersFilter, now time.Time) ([]usage.TopUser, error)
	PutPlanFn          func(ctx context.Context, c usage.PlanChange) (*usage.PlanChanged, error)
	PlanAuditFn        func(ctx context.Context, userID string, before int64, limit int) ([]usage.PlanAuditEntry, error)
	QueueAggregationFn func(ctx context.Context, r usage.DayRange) (int, error)
	RejectedEventsFn   func(ctx context.Context, before int64, limit int) ([]usage.RejectedEvent, error)
	ListLedgerPageFn   func(ctx context.Context, f usage.LedgerPage) ([]usage.LedgerEntry, error)
	RetryLedgerEntryFn func(ctx context.Context, ledgerID, who string) (*usage.LedgerEntry, error)
}

// AdminSummary calls AdminSummaryFn.
func (s *AdminStore) AdminSummary(ctx context.Context, r usage.DayRange, now time.Time) (*usage.AdminSummary, error) {
	return s.AdminSummaryFn(ctx, r, now)
}

// TopUsers calls TopUsersFn.
func (s *AdminStore) TopUsers(ctx context.Context, f usage.TopUsersFilter, now time.Time) ([]usage.TopUser, error) {
	return s.TopUsersFn(ctx, f, now)
}

// PutPlan calls PutPlanFn.
func (s *AdminStore) PutPlan(ctx context.Context, c usage.PlanChange) (*usage.PlanChanged, error) {
	return s.PutPlanFn(ctx, c)
}

// PlanAudit calls PlanAuditFn.
func (s *AdminStore) PlanAudit(ctx context.Context, userID string, before int64, limit int) ([]usage.PlanAuditEntry, error) {
	return s.PlanAuditFn(ctx, userID, before, limit)
}

// QueueAggregation calls QueueAggregationFn.
func (s *AdminStore) QueueAggregation(ctx context.Context, r usage.DayRange) (int, error) {
	return s.QueueAggregationFn(ctx, r)
}

// RejectedEvents calls RejectedEventsFn.
func (s *AdminStore) RejectedEvents(ctx context.Context, before int64, limit int) ([]usage.RejectedEvent, error) {
	return s.RejectedEventsFn(ctx, before, limit)
}

// ListLedgerPage calls ListLedgerPageFn.
func (s *AdminStore) ListLedgerPage(ctx context.Context, f usage.LedgerPage) ([]usage.LedgerEntry, error) {
	return s.ListLedgerPageFn(ctx, f)
}

// RetryLedgerEntry calls RetryLedgerEntryFn.
func (s *AdminStore) RetryLedgerEntry(ctx context.Context, ledgerID, who string) (*usage.LedgerEntry, error) {
	return s.RetryLedgerEntryFn(ctx, ledgerID, who)
}
