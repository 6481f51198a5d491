package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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
	nows     []time.Time
	billed   []usage.Billed
	claims   int
}

func newLedger() *ledger {
	l := &ledger{}
	sub := &usage.Subscription{UserID: userID(1), PlanID: usage.PlanPro, PeriodAnchor: anchor, StripeCustomerID: "cus_1",
		Effective: usage.Plan{ID: usage.PlanPro, IncludedCalls: 100_000, OverageUnitSize: 1000, OverageUnitPrice: 50, Currency: "usd"}}
	l.BillableSubscriptionsFn = func(context.Context) ([]*usage.Subscription, error) { return []*usage.Subscription{sub}, nil }
	l.PeriodStatesFn = func(_ context.Context, ps []usage.UserPeriod) ([]usage.PeriodState, error) {
		out := make([]usage.PeriodState, len(ps))
		for i, p := range ps {
			out[i] = usage.PeriodState{UserPeriod: p, Used: 150_000}
		}
		return out, nil
	}
	l.InsertLedgerEntriesFn = func(_ context.Context, es []*usage.LedgerEntry, now time.Time) (int, error) {
		l.inserted, l.nows = append(l.inserted, es...), append(l.nows, now)
		return len(es), nil
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
	return &Handler{Billing: usage.Billing{Ledger: l}, Biller: b, Logger: testLogger(t), Now: func() time.Time { return runAt }}
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
		name   string
		in     Input
		now    time.Time
		status string
		calls  int
	}{
		{"scheduled", Input{}, runAt, usage.LedgerPending, 1},
		{"replayed at an instant", Input{Now: &later}, later, usage.LedgerPending, 1},
		{"dry run", Input{DryRun: true}, runAt, usage.LedgerDryRun, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			var keys []string
			rep, err := newHandler(t, l, biller(&keys, nil)).Handle(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.inserted) != 1 || l.inserted[0].Status != tt.status || l.inserted[0].Period != february || !l.nows[0].Equal(tt.now) {
				t.Fatalf("inserted %+v at %v; want one %s row for February at %v", l.inserted, l.nows, tt.status, tt.now)
			}
			if len(keys) != tt.calls || rep.DryRun != (tt.calls == 0) || rep.Billed != tt.calls {
				t.Errorf("report %+v after %d Stripe calls; want %d", rep, len(keys), tt.calls)
			}
			if tt.calls == 1 && (keys[0] != usage.IdempotencyKey(userID(1), february.Start, 0) || len(l.billed) != 1) {
				t.Errorf("key %s, billed %+v", keys[0], l.billed)
			}
		})
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
			l.BillableSubscriptionsFn = func(context.Context) ([]*usage.Subscription, error) { return nil, down }
			return &mock.Biller{}
		}, usage.CodeUnavailable, 0, 0},
		{"insert fails", func(l *ledger) usage.Biller {
			l.InsertLedgerEntriesFn = func(context.Context, []*usage.LedgerEntry, time.Time) (int, error) { return 0, down }
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
