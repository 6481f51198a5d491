package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// What the mocked stores answer unless a test says otherwise: alice on pro
// (period Mar 10 – Apr 10, 87 of 50 calls used), her last days, her two
// endpoints and keys, and the admin reports of the same data.

var (
	marchPeriod = usage.Period{Start: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC)}
	proPlan     = usage.Plan{ID: "pro", Name: "Pro", IncludedCalls: 50, RatePerSecond: 50, Burst: 100, PriceModel: usage.PricePackage,
		OverageUnitSize: 10, OverageUnitPrice: 50, Currency: "usd"}
	lastUpdated = time.Date(2026, 3, 15, 11, 0, 0, 0, time.UTC)

	allowedDecision = usage.Decision{Allowed: true, Limit: 100, Remaining: 57, Reset: 860 * time.Millisecond, RatePerSecond: 50,
		Quota: usage.QuotaStatus{Period: marchPeriod, Included: 50, Used: 87}}
	rateLimitedDecision = usage.Decision{Reason: usage.CodeRateLimited, Limit: 100, Reset: 1500 * time.Millisecond,
		RetryAfter: 200 * time.Millisecond, RatePerSecond: 50, Quota: usage.QuotaStatus{Period: marchPeriod, Included: 50, Used: 87}}
	quotaExceededDecision = usage.Decision{Reason: usage.CodeQuotaExceeded, Limit: 100, Remaining: 99, RetryAfter: marchPeriod.End.Sub(testNow),
		RatePerSecond: 50, Quota: usage.QuotaStatus{Period: marchPeriod, Included: 50, Used: 50, Hard: true}}
)

func p95(n int32) *int32 { return &n }

func cannedUsage() *mock.UsageReader {
	return &mock.UsageReader{
		UsageSummaryFn: func(_ context.Context, userID string, now time.Time) (*report.UsageSummary, error) {
			history := []usage.Terms{{From: marchPeriod.Start, PlanID: "pro", Effective: proPlan}}
			days := []usage.DayCalls{{Day: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), Calls: 60}, {Day: time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC), Calls: 20},
				{Day: usage.Day(now), Calls: 7}}
			febPeriod := usage.Period{Start: time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), End: marchPeriod.Start}
			sub := &usage.Subscription{UserID: userID, PlanID: "pro", Effective: proPlan, PeriodAnchor: marchPeriod.Start}
			s, err := report.Summarize(sub, history, days, []report.LedgerSums{{Period: febPeriod, Currency: "usd", Billed: 500, BilledRows: 1}}, now)
			if err != nil {
				return nil, err
			}
			s.LastUpdated = &lastUpdated
			return s, nil
		},
		DailyUsageFn: func(_ context.Context, userID string, r usage.DayRange, now time.Time) ([]report.DailyUsage, error) {
			var out []report.DailyUsage
			for _, d := range r.Days() {
				u := report.DailyUsage{Day: d, Calls: 15, Errors4xx: 1, Errors5xx: 1, RequestBytes: 150, ResponseBytes: 1500, P95LatencyMS: p95(200)}
				if !d.Before(usage.Day(now)) {
					u = report.DailyUsage{Day: d, Calls: 7, Errors5xx: 1, RequestBytes: 70, ResponseBytes: 700, Live: true}
				}
				out = append(out, u)
			}
			return out, nil
		},
		EndpointBreakdownFn: func(_ context.Context, f report.BreakdownFilter) ([]report.Breakdown, error) {
			return page2(f.Limit, []report.Breakdown{
				{Key: "GET /v1/a", Calls: 140, Errors4xx: 14, RequestBytes: 1400, ResponseBytes: 14000, AvgLatencyMS: 50, MaxLatencyMS: 150},
				{Key: "GET /v1/b", Calls: 70, Errors5xx: 14, RequestBytes: 700, ResponseBytes: 7000, AvgLatencyMS: 200, MaxLatencyMS: 300},
			}), nil
		},
		KeyBreakdownFn: func(_ context.Context, f report.BreakdownFilter) ([]report.Breakdown, error) {
			return page2(f.Limit, []report.Breakdown{
				{Key: "4b1d0000-0000-4000-8000-0000000000a1", KeyPrefix: "nx_AbCdEf12", KeyName: "ci", Calls: 140, AvgLatencyMS: 50, MaxLatencyMS: 150},
				{Key: "", Calls: 70, AvgLatencyMS: 200, MaxLatencyMS: 300},
			}), nil
		},
	}
}

// page2 is what a store returns for a page of at most limit rows.
func page2(limit int, rows []report.Breakdown) []report.Breakdown {
	return rows[:min(limit, len(rows))]
}

func cannedAdmin() *mock.AdminStore {
	return &mock.AdminStore{
		AdminSummaryFn: func(context.Context, usage.DayRange, time.Time) (*report.AdminSummary, error) {
			return &report.AdminSummary{Calls: 225, Errors4xx: 15, Errors5xx: 14, ActiveUsers: 2, ErrorRate: 29.0 / 225,
				CallsByPlan: map[string]int64{"pro": 222, "free": 3},
				Overage:     []report.OverageTotal{{Currency: "usd", Billed: 500, Pending: 300}}}, nil
		},
		TopUsersFn: func(_ context.Context, f report.TopUsersFilter, _ time.Time) ([]report.TopUser, error) {
			users := []report.TopUser{{UserID: alice, PlanID: "pro", Calls: 222, Errors4xx: 15, Errors5xx: 14},
				{UserID: bob, PlanID: "free", Calls: 3}}
			return users[:min(f.Limit, len(users))], nil
		},
		PutPlanFn: func(_ context.Context, c report.PlanChange) (*report.PlanChanged, error) {
			eff := proPlan
			eff.ID, eff.Name = c.PlanID, "Enterprise"
			before := usage.Terms{From: marchPeriod.Start, PlanID: "pro", Effective: proPlan, Change: usage.ChangeStart}
			after := usage.Terms{From: testNow, PlanID: c.PlanID, Overrides: c.Overrides, Effective: eff.Apply(c.Overrides), Change: usage.ChangeUpgrade}
			return &report.PlanChanged{Subscription: &usage.Subscription{UserID: c.UserID, PlanID: c.PlanID, Overrides: c.Overrides,
				Effective: eff.Apply(c.Overrides), PeriodAnchor: marchPeriod.Start}, Change: usage.ChangeUpgrade, EffectiveAt: testNow,
				Before: &before, After: after, Changed: usage.ChangedTerms(before, after)}, nil
		},
		PlanAuditFn: func(_ context.Context, userID string, before int64, limit int) ([]report.PlanAuditEntry, error) {
			if userID != bob {
				return []report.PlanAuditEntry{}, nil
			}
			rows := []report.PlanAuditEntry{
				{ID: 8, Who: operator, At: time.Date(2026, 3, 15, 9, 30, 0, 0, time.UTC),
					Old: json.RawMessage(`{"plan_id":"free","burst":null}`), New: json.RawMessage(`{"plan_id":"pro","burst":5}`)},
				{ID: 5, Who: operator, At: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), New: json.RawMessage(`{"plan_id":"free","burst":null}`)},
			}
			var out []report.PlanAuditEntry
			for _, r := range rows {
				if (before == 0 || r.ID < before) && len(out) < limit {
					out = append(out, r)
				}
			}
			return out, nil
		},
		QueueAggregationFn: func(_ context.Context, r usage.DayRange) (int, error) { return r.Len(), nil },
		RejectedEventsFn: func(_ context.Context, before int64, limit int) ([]report.RejectedEvent, error) {
			rows := []report.RejectedEvent{
				{ID: 3, Source: "record", MessageID: "m3", EventID: "e3", Field: "user_id", Reason: "user_id: must be a UUID", Body: "{}", RejectedAt: time.Date(2026, 3, 14, 3, 0, 0, 0, time.UTC)},
				{ID: 2, Source: "record", MessageID: "m2", EventID: "e2", Field: "status_code", Reason: "status_code: must be between 100 and 599", Body: "{}", RejectedAt: time.Date(2026, 3, 14, 2, 0, 0, 0, time.UTC)},
			}
			var out []report.RejectedEvent
			for _, r := range rows {
				if (before == 0 || r.ID < before) && len(out) < limit {
					out = append(out, r)
				}
			}
			return out, nil
		},
		ListLedgerPageFn: func(_ context.Context, f report.LedgerPage) ([]billing.LedgerEntry, error) {
			rows := []billing.LedgerEntry{{ID: "10000000-0000-4000-8000-000000000002", UserID: charlie,
				Period:   usage.Period{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
				Included: 100, Used: 700, Units: 6, UnitSize: 100, UnitPrice: 50, Amount: 300, Currency: "usd",
				Status: billing.LedgerPending, Attempts: 1, LastError: "stripe 500", IdempotencyKey: billing.IdempotencyKey(charlie, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 0),
				CreatedAt: time.Date(2026, 4, 2, 0, 30, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 4, 2, 0, 30, 0, 0, time.UTC)},
				{ID: "10000000-0000-4000-8000-000000000003", UserID: dave,
					Period:   usage.Period{Start: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 5, 0, 0, 0, 0, time.UTC)},
					Included: 100, Used: 300, Units: 2, UnitSize: 100, UnitPrice: 50, Amount: 100, Currency: "usd",
					Status: billing.LedgerBilled, StripeObjectID: "ii_123", Attempts: 1, IdempotencyKey: billing.IdempotencyKey(dave, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), 0),
					CreatedAt: time.Date(2026, 4, 6, 0, 30, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 4, 6, 0, 30, 0, 0, time.UTC)}}
			return rows[:min(f.Limit, len(rows))], nil
		},
		RetryLedgerEntryFn: func(_ context.Context, id, _ string) (*billing.LedgerEntry, error) {
			if id != failedRow.ID {
				return nil, usage.Errorf(usage.CodeNotFound, "no ledger row %s", id)
			}
			e := failedRow
			e.Status, e.Attempts, e.Retries = billing.LedgerPending, 0, 1
			return &e, nil
		},
	}
}

// noStore makes every store call fail the test: for requests that must be
// refused before any is made.
func (f *fixture) noStore(t *testing.T) {
	t.Helper()
	called := func(what string) { t.Errorf("%s called for a request that should have been refused", what) }
	*f.usage = mock.UsageReader{
		UsageSummaryFn: func(context.Context, string, time.Time) (*report.UsageSummary, error) {
			called("UsageSummary")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		DailyUsageFn: func(context.Context, string, usage.DayRange, time.Time) ([]report.DailyUsage, error) {
			called("DailyUsage")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		EndpointBreakdownFn: func(context.Context, report.BreakdownFilter) ([]report.Breakdown, error) {
			called("EndpointBreakdown")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		KeyBreakdownFn: func(context.Context, report.BreakdownFilter) ([]report.Breakdown, error) {
			called("KeyBreakdown")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
	}
	*f.admin = mock.AdminStore{
		AdminSummaryFn: func(context.Context, usage.DayRange, time.Time) (*report.AdminSummary, error) {
			called("AdminSummary")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		TopUsersFn: func(context.Context, report.TopUsersFilter, time.Time) ([]report.TopUser, error) {
			called("TopUsers")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		PutPlanFn: func(context.Context, report.PlanChange) (*report.PlanChanged, error) {
			called("PutPlan")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		PlanAuditFn: func(context.Context, string, int64, int) ([]report.PlanAuditEntry, error) {
			called("PlanAudit")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		QueueAggregationFn: func(context.Context, usage.DayRange) (int, error) {
			called("QueueAggregation")
			return 0, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		RejectedEventsFn: func(context.Context, int64, int) ([]report.RejectedEvent, error) {
			called("RejectedEvents")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		ListLedgerPageFn: func(context.Context, report.LedgerPage) ([]billing.LedgerEntry, error) {
			called("ListLedgerPage")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
		RetryLedgerEntryFn: func(context.Context, string, string) (*billing.LedgerEntry, error) {
			called("RetryLedgerEntry")
			return nil, usage.Errorf(usage.CodeInternal, "unexpected")
		},
	}
	f.overage.PreviewFn = func(context.Context, time.Time, time.Time) (*billing.Preview, error) {
		called("Preview")
		return nil, usage.Errorf(usage.CodeInternal, "unexpected")
	}
	f.pub.SendFn = func(_ context.Context, events []usage.Event) []error {
		called("Send")
		return make([]error, len(events))
	}
	f.limits.CheckFn = func(context.Context, usage.Identity, int64) (usage.Decision, error) {
		called("Check")
		return allowedDecision, nil
	}
	f.limits.CheckRateFn = func(context.Context, usage.Identity, int64) (usage.Decision, error) {
		called("CheckRate")
		return allowedDecision, nil
	}
}
