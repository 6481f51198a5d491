package report

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/usage"
)

// UsageSummary is what a user sees about the current billing period.
type UsageSummary struct {
	UserID string `json:"user_id"`
	// Plan is the plan in force now; Included its included calls, the
	// quota the limiter applies.
	Plan      usage.Plan   `json:"plan"`
	Period    usage.Period `json:"period"`
	Included  int64        `json:"included"`
	Used      int64        `json:"used"`
	Remaining int64        `json:"remaining"`
	// OverageToDate prices the period's usage so far, segment by segment
	// of the terms history, as the overage job will.
	OverageToDate usage.PeriodCharge `json:"overage_to_date"`
	// Projected is the overage at the period's end if the period's rate so
	// far goes on (Project).
	Projected usage.PeriodCharge `json:"projected"`
	// Billed is what the ledger holds for the earlier periods, newest
	// first, at most MaxBilledPeriods.
	Billed []BilledPeriod `json:"billed"`
	// LastUpdated is when the live counters of the period last moved; nil
	// when nothing was counted in the period.
	LastUpdated *time.Time `json:"last_updated"`
}

// MaxBilledPeriods bounds the earlier periods a usage summary lists.
const MaxBilledPeriods = 12

// BilledPeriod is the ledger's view of one earlier period of a user.
type BilledPeriod struct {
	Period usage.Period `json:"period"`
	// Amount is the overage charged or owed for the period: its billed,
	// pending and failed rows (credits for review are not included).
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	// Status is failed when a row failed (an admin must retry it), else
	// pending while a row waits for Stripe, else billed, or skipped when
	// nothing was due.
	Status string `json:"status"`
}

// LedgerSums are a period's ledger rows summed by status.
type LedgerSums struct {
	Period   usage.Period
	Currency string
	Billed   int64
	Pending  int64
	Failed   int64
	// FailedRows and PendingRows count rows, whatever their amounts.
	FailedRows  int
	PendingRows int
	BilledRows  int
}

// NewBilledPeriod judges a period's ledger rows.
func NewBilledPeriod(s LedgerSums) BilledPeriod {
	b := BilledPeriod{Period: s.Period, Currency: s.Currency, Amount: s.Billed + s.Pending + s.Failed, Status: billing.LedgerSkipped}
	switch {
	case s.FailedRows > 0:
		b.Status = billing.LedgerFailed
	case s.PendingRows > 0:
		b.Status = billing.LedgerPending
	case s.BilledRows > 0:
		b.Status = billing.LedgerBilled
	}
	return b
}

// Summarize builds a user's usage summary at now: the terms in force, the
// period holding now, the calls of its days, the overage so far under the
// terms history (a subscription without one, or a user on free, is priced
// under its current terms since its anchor) and projected to the period's
// end, and the ledger of the earlier periods (ledger, newest first; the
// current period's rows are left out). A period that cannot be priced
// (terms in two currencies, or out of a price's bounds) is CodeConflict
// saying why: nothing priced here comes from the caller.
func Summarize(sub *usage.Subscription, history []usage.Terms, days []usage.DayCalls, ledger []LedgerSums, now time.Time) (*UsageSummary, error) {
	now = now.UTC()
	plan := sub.At(now)
	p := usage.PeriodAt(sub.PeriodAnchor, now)
	s := &UsageSummary{UserID: sub.UserID, Plan: plan, Period: p, Included: plan.IncludedCalls, Billed: []BilledPeriod{}}
	var in []usage.DayCalls
	for _, d := range days {
		if p.HasDay(d.Day) {
			s.Used += d.Calls
			in = append(in, d)
		}
	}
	s.Remaining = max(0, s.Included-s.Used)
	if len(history) == 0 {
		history = []usage.Terms{{From: sub.PeriodAnchor, PlanID: sub.PlanID, Overrides: sub.Overrides, Effective: sub.Effective}}
	}
	// Nothing priced here comes from the caller: terms that cannot be
	// priced (a plan row written by SQL out of a price's bounds) or
	// counts beyond the largest are a conflict with the stored state,
	// not an invalid request naming a field the caller never sent.
	unpriced := func(err error) error {
		if usage.ErrorCode(err) != usage.CodeInvalid {
			return err
		}
		return usage.Errorf(usage.CodeConflict, "the billing period %s cannot be priced: %s", usage.FormatDays(p.Start, p.End), usage.ErrorMessage(err))
	}
	lines, err := usage.PriceLines(p, usage.Segments(p, history), in, nil, p.End)
	if err != nil {
		return nil, unpriced(err)
	}
	if s.OverageToDate, err = usage.NewPeriodCharge(lines); err != nil {
		return nil, unpriced(err)
	}
	projected, err := usage.Project(p, lines, now)
	if err != nil {
		return nil, unpriced(err)
	}
	if plan.HardLimit {
		// A hard quota stops the calls at the included ones: the period
		// cannot end above them (or above what it has used already, the
		// overshoot the limiter allows).
		if err := usage.CapProjection(projected, max(plan.IncludedCalls, s.Used)); err != nil {
			return nil, unpriced(err)
		}
	}
	if s.Projected, err = usage.NewPeriodCharge(projected); err != nil {
		return nil, unpriced(err)
	}
	for _, l := range ledger {
		if l.Period.Start.Before(p.Start) && len(s.Billed) < MaxBilledPeriods {
			s.Billed = append(s.Billed, NewBilledPeriod(l))
		}
	}
	return s, nil
}

// DailyUsage is one user's usage on one day, summed over endpoints and keys.
type DailyUsage struct {
	Day           time.Time `json:"-"`
	Calls         int64     `json:"calls"`
	Errors4xx     int64     `json:"errors_4xx"`
	Errors5xx     int64     `json:"errors_5xx"`
	RequestBytes  int64     `json:"request_bytes"`
	ResponseBytes int64     `json:"response_bytes"`
	// P95LatencyMS is the highest p95 latency among the day's endpoints in
	// the rollup; nil for days served from the live counters (today, and
	// days waiting to be aggregated again).
	P95LatencyMS *int32 `json:"p95_latency_ms"`
	// Live marks days read from the live counters instead of the rollup.
	Live bool `json:"live"`
}

// Breakdown is a user's usage over a range for one endpoint or one API key.
type Breakdown struct {
	// Key is the endpoint, or the API key id ("" for calls without a key).
	Key           string  `json:"-"`
	Calls         int64   `json:"calls"`
	Errors4xx     int64   `json:"errors_4xx"`
	Errors5xx     int64   `json:"errors_5xx"`
	RequestBytes  int64   `json:"request_bytes"`
	ResponseBytes int64   `json:"response_bytes"`
	AvgLatencyMS  float64 `json:"avg_latency_ms"`
	MaxLatencyMS  int32   `json:"max_latency_ms"`
	// KeyPrefix and KeyName describe an API key (keys breakdown only).
	KeyPrefix string `json:"-"`
	KeyName   string `json:"-"`
}

// BreakdownCursor is the position after the last row of a breakdown page:
// rows are ordered by calls descending, then key ascending.
type BreakdownCursor struct {
	Calls int64  `json:"c"`
	Key   string `json:"k"`
}

// BreakdownFilter selects a page of a breakdown.
type BreakdownFilter struct {
	UserID string
	Range  usage.DayRange
	Limit  int
	After  *BreakdownCursor
}

// AdminSummary is the system-wide usage over a range.
type AdminSummary struct {
	Calls       int64            `json:"calls"`
	Errors4xx   int64            `json:"errors_4xx"`
	Errors5xx   int64            `json:"errors_5xx"`
	ActiveUsers int64            `json:"active_users"`
	ErrorRate   float64          `json:"error_rate"`
	CallsByPlan map[string]int64 `json:"calls_by_plan"`
	// Overage sums the ledger's amounts of periods starting in the range,
	// per currency and status, saturating at the int64 maximum.
	Overage []OverageTotal `json:"overage"`
}

// OverageTotal is the overage billed and pending in one currency.
type OverageTotal struct {
	Currency string `json:"currency"`
	Billed   int64  `json:"billed"`
	Pending  int64  `json:"pending"`
}

// Ranking orders the top users.
const (
	RankByCalls   = "calls"
	RankByErrors  = "errors"
	RankByOverage = "overage"
)

// TopUser is one row of the top users report.
type TopUser struct {
	UserID    string `json:"user_id"`
	PlanID    string `json:"plan_id"`
	Calls     int64  `json:"calls"`
	Errors4xx int64  `json:"errors_4xx"`
	Errors5xx int64  `json:"errors_5xx"`
	// Overage is the ledger amount (minor units of Currency) of periods
	// starting in the range, billed or pending, saturating at the int64
	// maximum; only set when ranking by overage.
	Overage int64 `json:"overage"`
	// Currency is the currency of Overage when ranking by overage: a
	// user's amounts in each currency are ranked against the others' in
	// it, never added together (a user billed in two appears in each).
	Currency string `json:"currency,omitempty"`
}

// TopUsersFilter selects the top users.
type TopUsersFilter struct {
	Range usage.DayRange
	By    string
	Limit int
}

// PlanChange is an admin's change of a user's plan and overrides.
//
// A whole change (PUT) names the plan and every override: those it leaves
// out go back to the plan's values. A partial one (Partial, PATCH) changes
// what it names of the terms the subscription is heading for (a pending
// downgrade, else the terms in force): PlanID "" keeps the plan, Overrides
// set those given, and Unset (OverrideNames) drops overrides back to the
// plan's values; the others are kept.
type PlanChange struct {
	UserID    string          `json:"-"`
	PlanID    string          `json:"plan_id"`
	Overrides usage.Overrides `json:"overrides"`
	Partial   bool            `json:"-"`
	Unset     []string        `json:"-"`
	// Who is the admin making the change, for the audit trail.
	Who string `json:"-"`
}

// PlanChanged is what a plan change did: the subscription after it, which
// kind of change it was (ChangeStart, ChangeUpgrade, ChangeDowngrade or
// ChangeSame, see DecideChange) and when the terms asked for are in force:
// the start of the day for a new subscription, now for an upgrade or the
// same terms, the end of the running period for a downgrade (until then
// the subscription's Next). Before and After show the terms side by side:
// those in force when the change was made (nil for a new subscription)
// and those asked for, from EffectiveAt; Changed names what differs
// (ChangedTerms); Cancelled is a pending downgrade the change replaced.
type PlanChanged struct {
	*usage.Subscription
	Change      string       `json:"change"`
	EffectiveAt time.Time    `json:"effective_at"`
	Before      *usage.Terms `json:"before"`
	After       usage.Terms  `json:"after"`
	Changed     []string     `json:"changed"`
	Cancelled   *usage.Terms `json:"cancelled,omitempty"`
}

// PlanAuditEntry is one audited change of a user's plan: the admin who made
// it, when, and the user's subscription before (null when the user had
// none) and after, as JSON objects of the subscription's stored fields,
// what the change was and when its terms took effect (PlanChanged; empty
// on changes audited before they were recorded), and the terms before and
// after side by side with what changed (PlanChanged's Before, After and
// Changed; null on changes audited before they were recorded).
type PlanAuditEntry struct {
	ID          int64           `json:"id"`
	Who         string          `json:"who"`
	At          time.Time       `json:"at"`
	Old         json.RawMessage `json:"old"`
	New         json.RawMessage `json:"new"`
	Change      string          `json:"change,omitempty"`
	EffectiveAt *time.Time      `json:"effective_at,omitempty"`
	Before      json.RawMessage `json:"before,omitempty"`
	After       json.RawMessage `json:"after,omitempty"`
	Changed     []string        `json:"changed,omitempty"`
}

// RejectedEvent is a message that could not be recorded.
type RejectedEvent struct {
	ID         int64     `json:"id"`
	Source     string    `json:"source"`
	MessageID  string    `json:"message_id"`
	EventID    string    `json:"event_id"`
	Field      string    `json:"field"`
	Reason     string    `json:"reason"`
	Body       string    `json:"body"`
	RejectedAt time.Time `json:"rejected_at"`
}

// LedgerCursor is the position after the last row of a ledger page: rows
// are ordered by period start, user and sequence.
type LedgerCursor struct {
	PeriodStart time.Time `json:"p"`
	UserID      string    `json:"u"`
	Seq         int       `json:"s"`
}

// LedgerPage selects a page of ledger rows whose period starts in
// [From, To).
type LedgerPage struct {
	From, To time.Time
	Limit    int
	After    *LedgerCursor
}

// LedgerLister lists the overage ledger.
type LedgerLister interface {
	// ListLedgerPage returns a page of ledger rows in cursor order. A
	// Limit below 1 is CodeInvalid naming "limit", a cursor whose user is
	// not a UUID CodeInvalid naming "cursor".
	ListLedgerPage(ctx context.Context, f LedgerPage) ([]billing.LedgerEntry, error)
}

// UsageReader answers what a user asks about their own usage (the user
// routes of the analytics API). Every method runs one query; user ids that
// are not UUIDs are CodeInvalid naming "id", invalid ranges CodeInvalid
// naming "from" or "to" (DayRange.Validate), and database outages
// CodeUnavailable.
type UsageReader interface {
	// UsageSummary returns the user's current billing period at now
	// (Summarize): plan, included, used (the live counters of the
	// period's days), remaining, overage to date and projected, and the
	// ledger of earlier periods. Users without a subscription are on free.
	UsageSummary(ctx context.Context, userID string, now time.Time) (*UsageSummary, error)
	// DailyUsage returns one row per day of the range, zeros included:
	// closed, aggregated days from the rollup, and today and days waiting
	// to be aggregated (dirty, or with no rollup) from the live counters.
	DailyUsage(ctx context.Context, userID string, r usage.DayRange, now time.Time) ([]DailyUsage, error)
	// EndpointBreakdown returns a page of the user's usage per endpoint
	// from the rollup, in cursor order. A Limit below 1 is CodeInvalid
	// naming "limit".
	EndpointBreakdown(ctx context.Context, f BreakdownFilter) ([]Breakdown, error)
	// KeyBreakdown returns a page of the user's usage per API key from the
	// rollup, in cursor order; Key "" stands for calls made without a key.
	// A Limit below 1 is CodeInvalid naming "limit".
	KeyBreakdown(ctx context.Context, f BreakdownFilter) ([]Breakdown, error)
}

// AdminStore answers and records what operators do through the admin
// routes of the analytics API: system-wide reports, plan changes, backfills
// queued for the aggregate job, the quarantine and the overage ledger.
// Every method runs one query or one transaction; user ids that are not
// UUIDs are CodeInvalid naming "id", invalid ranges CodeInvalid naming
// "from" or "to", limits below 1 CodeInvalid naming "limit", and database
// outages CodeUnavailable.
type AdminStore interface {
	// AdminSummary returns system-wide usage over the range.
	AdminSummary(ctx context.Context, r usage.DayRange, now time.Time) (*AdminSummary, error)
	// TopUsers returns the users with the most calls, errors or overage;
	// by overage, the top Limit in each currency, ordered by currency. An
	// unknown ranking is CodeInvalid naming "by".
	TopUsers(ctx context.Context, f TopUsersFilter, now time.Time) ([]TopUser, error)
	// PutPlan changes the user's plan and overrides (whole, or partial:
	// PlanChange) under the convention of DecideChange, keeps the terms
	// history and writes the audit row (who, when, the subscription before
	// and after, the kind of change and when it takes effect, the terms
	// before and after) in one transaction; it returns the subscription
	// after the change and what the change was. Returns CodeInvalid naming
	// "plan_id" if the plan is missing or does not exist, naming the
	// override that is invalid, or naming "currency" for a change that
	// would make a billing period bill in two currencies.
	PutPlan(ctx context.Context, c PlanChange) (*PlanChanged, error)
	// PlanAudit returns up to limit audited plan changes of the user with
	// ids below before (0: from the newest), newest first.
	PlanAudit(ctx context.Context, userID string, before int64, limit int) ([]PlanAuditEntry, error)
	// QueueAggregation marks the range's days dirty so that the next
	// aggregate run recomputes them, and returns how many days it marked.
	// A day whose raw usage is no longer kept (its raw partition is gone)
	// is refused with CodeInvalid naming "from", and no day is marked.
	QueueAggregation(ctx context.Context, r usage.DayRange) (int, error)
	// RejectedEvents returns up to limit quarantined events with ids below
	// before (0: from the newest), newest first.
	RejectedEvents(ctx context.Context, before int64, limit int) ([]RejectedEvent, error)
	LedgerLister
	// RetryLedgerEntry makes a failed ledger row pending again for the next
	// billing run, which looks it up by metadata before sending it again,
	// and audits who did it, when, and the row before and after. It returns
	// the row after. Returns CodeInvalid naming "id" for an id that is not
	// a UUID, CodeNotFound for no such row, CodeConflict for a row that is
	// not failed.
	RetryLedgerEntry(ctx context.Context, ledgerID, who string) (*billing.LedgerEntry, error)
}
