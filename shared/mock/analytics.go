package mock

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

var _ report.UsageReader = (*UsageReader)(nil)

// UsageReader is a report.UsageReader.
type UsageReader struct {
	UsageSummaryFn      func(ctx context.Context, userID string, now time.Time) (*report.UsageSummary, error)
	DailyUsageFn        func(ctx context.Context, userID string, r usage.DayRange, now time.Time) ([]report.DailyUsage, error)
	EndpointBreakdownFn func(ctx context.Context, f report.BreakdownFilter) ([]report.Breakdown, error)
	KeyBreakdownFn      func(ctx context.Context, f report.BreakdownFilter) ([]report.Breakdown, error)
}

// UsageSummary calls UsageSummaryFn.
func (s *UsageReader) UsageSummary(ctx context.Context, userID string, now time.Time) (*report.UsageSummary, error) {
	return s.UsageSummaryFn(ctx, userID, now)
}

// DailyUsage calls DailyUsageFn.
func (s *UsageReader) DailyUsage(ctx context.Context, userID string, r usage.DayRange, now time.Time) ([]report.DailyUsage, error) {
	return s.DailyUsageFn(ctx, userID, r, now)
}

// EndpointBreakdown calls EndpointBreakdownFn.
func (s *UsageReader) EndpointBreakdown(ctx context.Context, f report.BreakdownFilter) ([]report.Breakdown, error) {
	return s.EndpointBreakdownFn(ctx, f)
}

// KeyBreakdown calls KeyBreakdownFn.
func (s *UsageReader) KeyBreakdown(ctx context.Context, f report.BreakdownFilter) ([]report.Breakdown, error) {
	return s.KeyBreakdownFn(ctx, f)
}

var _ report.AdminStore = (*AdminStore)(nil)

// AdminStore is a report.AdminStore.
type AdminStore struct {
	AdminSummaryFn     func(ctx context.Context, r usage.DayRange, now time.Time) (*report.AdminSummary, error)
	TopUsersFn         func(ctx context.Context, f report.TopUsersFilter, now time.Time) ([]report.TopUser, error)
	PutPlanFn          func(ctx context.Context, c report.PlanChange) (*report.PlanChanged, error)
	PlanAuditFn        func(ctx context.Context, userID string, before int64, limit int) ([]report.PlanAuditEntry, error)
	QueueAggregationFn func(ctx context.Context, r usage.DayRange) (int, error)
	RejectedEventsFn   func(ctx context.Context, before int64, limit int) ([]report.RejectedEvent, error)
	ListLedgerPageFn   func(ctx context.Context, f report.LedgerPage) ([]billing.LedgerEntry, error)
	RetryLedgerEntryFn func(ctx context.Context, ledgerID, who string) (*billing.LedgerEntry, error)
}

// AdminSummary calls AdminSummaryFn.
func (s *AdminStore) AdminSummary(ctx context.Context, r usage.DayRange, now time.Time) (*report.AdminSummary, error) {
	return s.AdminSummaryFn(ctx, r, now)
}

// TopUsers calls TopUsersFn.
func (s *AdminStore) TopUsers(ctx context.Context, f report.TopUsersFilter, now time.Time) ([]report.TopUser, error) {
	return s.TopUsersFn(ctx, f, now)
}

// PutPlan calls PutPlanFn.
func (s *AdminStore) PutPlan(ctx context.Context, c report.PlanChange) (*report.PlanChanged, error) {
	return s.PutPlanFn(ctx, c)
}

// PlanAudit calls PlanAuditFn.
func (s *AdminStore) PlanAudit(ctx context.Context, userID string, before int64, limit int) ([]report.PlanAuditEntry, error) {
	return s.PlanAuditFn(ctx, userID, before, limit)
}

// QueueAggregation calls QueueAggregationFn.
func (s *AdminStore) QueueAggregation(ctx context.Context, r usage.DayRange) (int, error) {
	return s.QueueAggregationFn(ctx, r)
}

// RejectedEvents calls RejectedEventsFn.
func (s *AdminStore) RejectedEvents(ctx context.Context, before int64, limit int) ([]report.RejectedEvent, error) {
	return s.RejectedEventsFn(ctx, before, limit)
}

// ListLedgerPage calls ListLedgerPageFn.
func (s *AdminStore) ListLedgerPage(ctx context.Context, f report.LedgerPage) ([]billing.LedgerEntry, error) {
	return s.ListLedgerPageFn(ctx, f)
}

// RetryLedgerEntry calls RetryLedgerEntryFn.
func (s *AdminStore) RetryLedgerEntry(ctx context.Context, ledgerID, who string) (*billing.LedgerEntry, error) {
	return s.RetryLedgerEntryFn(ctx, ledgerID, who)
}
