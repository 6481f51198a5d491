package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/usage"
)

// The handler tests run the billing run on mocks (shared/mock): what the
// input asks for, and which failures make the invocation fail so that the
// scheduler retries it. The tests of stripe_test.go, crash_test.go and
// provider_test.go run it over PostgreSQL.

// ledger is a mock ledger with one pro subscription, anchored on 1 February,
// that used 150,000 calls in February: one pending row to bill.
type ledger struct {
	mock.LedgerStore
	inserted []*usage.LedgerEntry
	progress []usage.Progress
	nows     []time.Time
	billed   []usage.Billed
	claims   int
	runs     []*usage.RunReport // closed
}

func newLedger() *ledger {
	l := &ledger{}
	pro := usage.Plan{ID: usage.PlanPro, Name: "Pro", IncludedCalls: 100_000, PriceModel: usage.PricePackage,
		OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}
	sub := &usage.BillableSubscription{Subscription: usage.Subscription{UserID: userID(1), PlanID: usage.PlanPro,
		PeriodAnchor: anchor, StripeCustomerID: "cus_1", Effective: pro},
		History: []usage.Terms{{From: anchor, PlanID: usage.PlanPro, Effective: pro, Change: usage.ChangeStart}}}
	l.BillableSubscriptionsFn = func(context.Context) ([]*usage.BillableSubscription, error) {
		return []*usage.BillableSubscription{sub}, nil
	}
	l.PeriodStatesFn = func(_ context.Context, ps []usage.UserPeriod) ([]usage.PeriodState, error) {
		out := make([]usage.PeriodState, len(ps))
		for i, p := range ps {
			out[i] = usage.PeriodState{UserPeriod: p, Days: []usage.DayCalls{{Day: p.Period.Start.AddDate(0, 0, 9), Calls: 150_000}}}
		}
		return out, nil
	}
	l.InsertLedgerEntriesFn = func(_ context.Context, es []*usage.LedgerEntry, pr []usage.Progress, now time.Time) (int, error) {
		l.inserted, l.nows = append(l.inserted, es...), append(l.nows, now)
		l.progress = append(l.progress, pr...)
		return len(es), nil
	}
	l.PromoteDueTermsFn = func(context.Context, time.Time) (int, error) { return 0, nil }
	l.OpenRunFn = func(context.Context, *usage.RunReport, time.Time, time.Time) (int64, error) { return 7, nil }
	l.CloseRunFn = func(_ context.Context, id int64, rep *usage.RunReport, _ time.Time, _ error) error {
		l.runs = append(l.runs, rep)
		return nil
	}
	l.ClaimPendingFn = func(_ context.Context, r usage.ClaimRequest) ([]*usage.LedgerEntry, error) {
		l.claims++
		if l.claims > 1 {
			return nil, nil
		}
		var out []*usage.LedgerEntry
		for _, e := range l.inserted {
			c := *e
			c.ID, c.CustomerID, c.Attempts, c.CreatedAt = "ledger-"+e.UserID, sub.StripeCustomerID, 1, r.Now
			out = append(out, &c)
		}
		return out, nil
	}
	l.MarkBilledFn = func(_ context.Context, b []usage.Billed, _ time.Time) error {
		l.billed = append(l.billed, b...)
		return nil
	}
	l.MarkRetryFn = func(context.Context, string, string, time.Time) error { return nil }
	l.MarkFailedFn = func(context.Context, string, string, time.Time) error { return nil }
	return l
}

func newHandler(t *testing.T, l *ledger, b usage.Biller) *Handler {
	return &Handler{Billing: usage.Billing{Ledger: l}, Biller: b, Logger: testLogger(t), Now: func() time.Time { return runAt },
		AllowClockOverride: true}
}

func biller(keys *[]string, err error) *mock.Biller {
	return &mock.Biller{CreateInvoiceItemFn: func(_ context.Context, item *usage.InvoiceItem, key string) (string, error) {
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
			if len(l.inserted) != 1 || l.inserted[0].Status != usage.LedgerPending || l.inserted[0].Period != february || !l.nows[0].Equal(tt.now) {
				t.Fatalf("inserted %+v at %v; want one pending row for February at %v", l.inserted, l.nows, tt.now)
			}
			if len(l.progress) != 1 || !l.progress[0].ClosedThrough.Equal(february.End) {
				t.Errorf("progress %+v; want February planned", l.progress)
			}
			if len(keys) != tt.calls || rep.DryRun || rep.Billed != tt.calls || rep.JobRunID != 7 || len(l.runs) != 1 {
				t.Errorf("report %+v after %d Stripe calls; want %d, recorded as job run 7", rep, len(keys), tt.calls)
			}
			if keys[0] != usage.IdempotencyKey(userID(1), february.Start, 0) || len(l.billed) != 1 {
				t.Errorf("key %s, billed %+v", keys[0], l.billed)
			}
		})
	}
}

// TestHandleDryRunWritesNothing: a dry run reports the row a real run
// would write, per user and in total, and writes none.
func TestHandleDryRunWritesNothing(t *testing.T) {
	l := newLedger()
	l.InsertLedgerEntriesFn = func(context.Context, []*usage.LedgerEntry, []usage.Progress, time.Time) (int, error) {
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
	want := []usage.PlannedRow{{UserID: userID(1), Period: february, Seq: 0, Status: usage.LedgerPending, Amount: 2500, Currency: "usd",
		Description: "API overage, 2026-02-01 – 2026-02-28: Pro, 150,000 calls, 100,000 included: 50 × 1,000 calls at 0.50 USD = 25.00 USD"}}
	if d := cmp.Diff(want, rep.Planned); d != "" || !rep.DryRun || len(keys) != 0 || rep.PlannedRows != 1 ||
		!cmp.Equal(rep.Due, []usage.Amount{{Currency: "usd", Amount: 2500}}) || len(l.runs) != 1 {
		t.Errorf("dry run report %+v (-want +got planned):\n%s", rep, d)
	}
}

// TestHandleClockOverride: the payload's now is refused unless the stack
// allows it, and nothing runs.
func TestHandleClockOverride(t *testing.T) {
	l := newLedger()
	l.OpenRunFn = func(context.Context, *usage.RunReport, time.Time, time.Time) (int64, error) {
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
		setup   func(l *ledger) usage.Biller
		code    string // of the returned error; "" for none
		failed  int
		retried int
	}{
		{"store down", func(l *ledger) usage.Biller {
			l.BillableSubscriptionsFn = func(context.Context) ([]*usage.BillableSubscription, error) { return nil, down }
			return &mock.Biller{}
		}, usage.CodeUnavailable, 0, 0},
		{"insert fails", func(l *ledger) usage.Biller {
			l.InsertLedgerEntriesFn = func(context.Context, []*usage.LedgerEntry, []usage.Progress, time.Time) (int, error) { return 0, down }
			return &mock.Biller{}
		}, usage.CodeUnavailable, 0, 0},
		{"bad credentials", func(l *ledger) usage.Biller {
			var keys []string
			return biller(&keys, usage.Errorf(usage.CodeUnauthorized, "invalid api key"))
		}, usage.CodeUnauthorized, 0, 0},
		{"stripe unavailable", func(l *ledger) usage.Biller {
			var keys []string
			return biller(&keys, usage.Errorf(usage.CodeUnavailable, "stripe 503"))
		}, usage.CodeUnavailable, 0, 1},
		{"card declined", func(l *ledger) usage.Biller {
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
