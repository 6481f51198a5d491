package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// The handler tests run the billing run on mocks (shared/mock): what the
// input asks for, which failures make the invocation fail so that Lambda
// retries it, and the metrics it logs. shared/billing's tests run
// the billing run over PostgreSQL and Stripe; main_test.go wires the
// handler to them.

// The run under test: daily at 00:30 UTC on 2 March 2026. The
// subscription, anchored on 1 February, has one closed period, February.
var (
	runAt    = time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC)
	anchor   = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	february = usage.Period{Start: anchor, End: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
)

// user is the subscription's user.
const user = "00000000-0000-4000-8000-000000000001"

// ledger is a mock ledger with one pro subscription, anchored on 1 February,
// that used 150,000 calls in February: one pending row to bill.
type ledger struct {
	mock.LedgerStore
	inserted []*billing.LedgerEntry
	progress []billing.Progress
	nows     []time.Time
	billed   []billing.Billed
	claims   int
	runs     []*billing.RunReport // closed
}

func newLedger() *ledger {
	l := &ledger{}
	pro := usage.Plan{ID: usage.PlanPro, Name: "Pro", IncludedCalls: 100_000, PriceModel: usage.PricePackage,
		OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
	sub := &billing.BillableSubscription{Subscription: usage.Subscription{UserID: user, PlanID: usage.PlanPro,
		PeriodAnchor: anchor, StripeCustomerID: "cus_1", Effective: pro},
		History: []usage.Terms{{From: anchor, PlanID: usage.PlanPro, Effective: pro, Change: usage.ChangeStart}}}
	l.BillableSubscriptionsFn = func(context.Context) ([]*billing.BillableSubscription, error) {
		return []*billing.BillableSubscription{sub}, nil
	}
	l.PeriodStatesFn = func(_ context.Context, ps []billing.UserPeriod) ([]billing.PeriodState, error) {
		out := make([]billing.PeriodState, len(ps))
		for i, p := range ps {
			out[i] = billing.PeriodState{UserPeriod: p, Days: []usage.DayCalls{{Day: p.Period.Start.AddDate(0, 0, 9), Calls: 150_000}}}
		}
		return out, nil
	}
	l.InsertLedgerEntriesFn = func(_ context.Context, es []*billing.LedgerEntry, pr []billing.Progress, now time.Time) (int, error) {
		l.inserted, l.nows = append(l.inserted, es...), append(l.nows, now)
		l.progress = append(l.progress, pr...)
		return len(es), nil
	}
	l.PromoteDueTermsFn = func(context.Context, time.Time) (int, error) { return 0, nil }
	l.OpenRunFn = func(context.Context, *billing.RunReport, time.Time, time.Time) (int64, error) { return 7, nil }
	l.CloseRunFn = func(_ context.Context, id int64, rep *billing.RunReport, _ time.Time, _ error) error {
		l.runs = append(l.runs, rep)
		return nil
	}
	l.ClaimPendingFn = func(_ context.Context, r billing.ClaimRequest) ([]*billing.LedgerEntry, error) {
		l.claims++
		if l.claims > 1 {
			return nil, nil
		}
		var out []*billing.LedgerEntry
		for _, e := range l.inserted {
			c := *e
			c.ID, c.CustomerID, c.Attempts, c.CreatedAt = "ledger-"+e.UserID, sub.StripeCustomerID, 1, r.Now
			out = append(out, &c)
		}
		return out, nil
	}
	l.MarkBilledFn = func(_ context.Context, b []billing.Billed, _ time.Time) error {
		l.billed = append(l.billed, b...)
		return nil
	}
	l.MarkRetryFn = func(context.Context, string, string, time.Time) error { return nil }
	l.MarkFailedFn = func(context.Context, string, string, time.Time) error { return nil }
	return l
}

func newHandler(t *testing.T, l *ledger, b billing.Biller) *Handler {
	t.Helper()
	run, err := billing.New(billing.Config{Ledger: l, Biller: b, Clock: func() time.Time { return runAt }})
	if err != nil {
		t.Fatal(err)
	}
	return &Handler{Billing: run, Logger: testkit.Logger(), Now: func() time.Time { return runAt }, AllowClockOverride: true}
}

func biller(keys *[]string, err error) *mock.Biller {
	return &mock.Biller{CreateInvoiceItemFn: func(_ context.Context, item *billing.InvoiceItem, key string) (string, error) {
		*keys = append(*keys, key)
		return "ii_" + item.LedgerID, err
	}}
}

func TestHandleInput(t *testing.T) {
	later := runAt.Add(48 * time.Hour)
	for _, tt := range []struct {
		name  string
		in    Input
		now   time.Time
		calls int
	}{
		{"scheduled", Input{}, runAt, 1},
		{"replayed at an instant", Input{Now: &later}, later, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			var keys []string
			rep, err := newHandler(t, l, biller(&keys, nil)).Handle(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.inserted) != 1 || l.inserted[0].Status != billing.LedgerPending || l.inserted[0].Period != february || !l.nows[0].Equal(tt.now) {
				t.Fatalf("inserted %+v at %v; want one pending row for February at %v", l.inserted, l.nows, tt.now)
			}
			if len(l.progress) != 1 || !l.progress[0].ClosedThrough.Equal(february.End) {
				t.Errorf("progress %+v; want February planned", l.progress)
			}
			if len(keys) != tt.calls || rep.DryRun || rep.Billed != tt.calls || rep.JobRunID != 7 || len(l.runs) != 1 {
				t.Errorf("report %+v after %d Stripe calls; want %d, recorded as job run 7", rep, len(keys), tt.calls)
			}
			if keys[0] != billing.IdempotencyKey(user, february.Start, 0) || len(l.billed) != 1 {
				t.Errorf("key %s, billed %+v", keys[0], l.billed)
			}
		})
	}
}

// TestHandleDryRunWritesNothing: a dry run reports the row a real run
// would write, per user and in total, and writes none.
func TestHandleDryRunWritesNothing(t *testing.T) {
	l := newLedger()
	l.InsertLedgerEntriesFn = func(context.Context, []*billing.LedgerEntry, []billing.Progress, time.Time) (int, error) {
		t.Fatal("a dry run wrote ledger rows")
		return 0, nil
	}
	l.PromoteDueTermsFn = func(context.Context, time.Time) (int, error) {
		t.Fatal("a dry run changed subscriptions")
		return 0, nil
	}
	var keys []string
	rep, err := newHandler(t, l, biller(&keys, nil)).Handle(context.Background(), Input{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []billing.DraftRow{{UserID: user, Period: february, Seq: 0, Status: billing.LedgerPending, Amount: 2500, Currency: "usd",
		Description: "API overage, 2026-02-01 – 2026-02-28: Pro, 150,000 calls, 100,000 included: 50 × 1,000 calls at 0.50 USD = 25.00 USD"}}
	if d := cmp.Diff(want, rep.Planned); d != "" || !rep.DryRun || len(keys) != 0 || rep.PlannedRows != 1 ||
		!cmp.Equal(rep.Due, []billing.Amount{{Currency: "usd", Amount: 2500}}) || len(l.runs) != 1 {
		t.Errorf("dry run report %+v (-want +got planned):\n%s", rep, d)
	}
}

// TestHandleClockOverride: the payload's now is refused unless the stack
// allows it, and nothing runs.
func TestHandleClockOverride(t *testing.T) {
	l := newLedger()
	l.OpenRunFn = func(context.Context, *billing.RunReport, time.Time, time.Time) (int64, error) {
		t.Fatal("a refused run started")
		return 0, nil
	}
	h := newHandler(t, l, &mock.Biller{})
	h.AllowClockOverride = false
	later := runAt.Add(time.Hour)
	if _, err := h.Handle(context.Background(), Input{Now: &later}); usage.ErrorField(err) != "now" ||
		!strings.Contains(usage.ErrorMessage(err), "ALLOW_CLOCK_OVERRIDE") {
		t.Errorf("Handle(now) = %v; want refused naming now", err)
	}
}

// TestHandleErrors: the invocation fails, to be retried, when the store
// fails, when Stripe refuses the credentials, or when rows stay pending
// after retryable errors; a row Stripe refuses for good is failed and the
// run succeeds.
func TestHandleErrors(t *testing.T) {
	down := fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "database unavailable"), errors.New("dial tcp: refused"))
	for _, tt := range []struct {
		name    string
		setup   func(l *ledger) billing.Biller
		code    string // of the returned error; "" for none
		failed  int
		retried int
	}{
		{"store down", func(l *ledger) billing.Biller {
			l.BillableSubscriptionsFn = func(context.Context) ([]*billing.BillableSubscription, error) { return nil, down }
			return &mock.Biller{}
		}, usage.CodeUnavailable, 0, 0},
		{"insert fails", func(l *ledger) billing.Biller {
			l.InsertLedgerEntriesFn = func(context.Context, []*billing.LedgerEntry, []billing.Progress, time.Time) (int, error) {
				return 0, down
			}
			return &mock.Biller{}
		}, usage.CodeUnavailable, 0, 0},
		{"bad credentials", func(l *ledger) billing.Biller {
			var keys []string
			return biller(&keys, usage.Errorf(usage.CodeUnauthorized, "invalid api key"))
		}, usage.CodeUnauthorized, 0, 0},
		{"stripe unavailable", func(l *ledger) billing.Biller {
			var keys []string
			return biller(&keys, usage.Errorf(usage.CodeUnavailable, "stripe 503"))
		}, usage.CodeUnavailable, 0, 1},
		{"card declined", func(l *ledger) billing.Biller {
			var keys []string
			return biller(&keys, usage.Errorf(usage.CodeInvalid, "card_declined"))
		}, "", 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			rep, err := newHandler(t, l, tt.setup(l)).Handle(context.Background(), Input{})
			if usage.ErrorCode(err) != tt.code || rep.Failed != tt.failed || rep.Retry != tt.retried {
				t.Errorf("Handle = %+v, %v (code %q); want code %q, %d failed, %d retried", rep, err, usage.ErrorCode(err), tt.code, tt.failed, tt.retried)
			}
		})
	}
}

// runner is a Runner that answers rep and err.
type runner struct {
	rep billing.RunReport
	err error
}

func (r runner) RunWith(context.Context, time.Time, billing.RunOptions) (billing.RunReport, error) {
	return r.rep, r.err
}

// TestHandleReportsMetrics: the run's report becomes one CloudWatch
// Embedded Metric Format line, at error level when a subscription went
// unpriced or Stripe holds an item twice (the template's
// OverageUnpricedAlarm reads OverageUnpricedSubscriptions), at info level
// otherwise, also when the run failed.
func TestHandleReportsMetrics(t *testing.T) {
	for _, tt := range []struct {
		name    string
		r       runner
		level   string
		metrics string
	}{
		{"unpriced", runner{rep: billing.RunReport{Unpriced: 2, Billed: 1}}, "ERROR",
			`"OverageUnpricedSubscriptions":2,"OverageDuplicateItems":0,"OverageFailedRows":0,"OverageAdoptedItems":0`},
		{"duplicates", runner{rep: billing.RunReport{Duplicates: 1, Adopted: 3}}, "ERROR",
			`"OverageUnpricedSubscriptions":0,"OverageDuplicateItems":1,"OverageFailedRows":0,"OverageAdoptedItems":3`},
		{"failed rows, run left pending", runner{rep: billing.RunReport{Failed: 4}, err: usage.Errorf(usage.CodeUnavailable, "1 overage items left pending")},
			"INFO", `"OverageUnpricedSubscriptions":0,"OverageDuplicateItems":0,"OverageFailedRows":4,"OverageAdoptedItems":0`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := &Handler{Billing: tt.r, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return runAt }}
			if _, err := h.Handle(context.Background(), Input{}); !errors.Is(err, tt.r.err) {
				t.Errorf("Handle = %v; want %v", err, tt.r.err)
			}
			var line string
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, `"msg":"overage run metrics"`) {
					line = l
				}
			}
			if !strings.Contains(line, `"level":"`+tt.level+`"`) || !strings.Contains(line, tt.metrics) ||
				!strings.Contains(line, `"CloudWatchMetrics":[{`) || !strings.Contains(line, `"Namespace":"NexusUsage"`) ||
				!strings.Contains(line, fmt.Sprintf(`"Timestamp":%d`, runAt.UnixMilli())) {
				t.Errorf("metrics line %q; want level %s and %s", line, tt.level, tt.metrics)
			}
		})
	}
}

// runnerFunc is a Runner running f.
type runnerFunc func(ctx context.Context, now time.Time, opts billing.RunOptions) (billing.RunReport, error)

func (f runnerFunc) RunWith(ctx context.Context, now time.Time, opts billing.RunOptions) (billing.RunReport, error) {
	return f(ctx, now, opts)
}

// TestHandleStopsBeforeDeadline: the run ends deadlineMargin before the
// invocation's deadline, so that it still records how it ended (and marks
// what it billed) before Lambda stops the function: a run cut off with the
// function stayed "running" in eco_job_runs for ever.
func TestHandleStopsBeforeDeadline(t *testing.T) {
	deadline := time.Now().Add(time.Minute)
	var got time.Time
	h := &Handler{Logger: testkit.Logger(), Now: func() time.Time { return runAt },
		Billing: runnerFunc(func(ctx context.Context, _ time.Time, _ billing.RunOptions) (billing.RunReport, error) {
			got, _ = ctx.Deadline()
			return billing.RunReport{}, nil
		})}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, err := h.Handle(ctx, Input{}); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(deadline.Add(-deadlineMargin)) {
		t.Errorf("the run's deadline %s; want %s before the invocation's (%s)", got, deadlineMargin, deadline)
	}
}
