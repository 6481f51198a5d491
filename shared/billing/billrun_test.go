package billing_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/usage"
)

// TestNew: New refuses a Billing without a ledger store and negative
// durations and counts, each refusal CodeInvalid and saying what is wrong;
// it fills in the defaults of the settings left zero and keeps those
// given; without a Biller it builds a Billing whose runs are dry.
func TestNew(t *testing.T) {
	ledger := &mock.LedgerStore{}
	for _, tt := range []struct {
		name string
		cfg  billing.Config
		want string // in the error
	}{
		{"no ledger", billing.Config{Biller: &mock.Biller{}}, "a ledger store is required"},
		{"negative grace", billing.Config{Ledger: ledger, Grace: -time.Hour}, "the grace period must be 0 (the default, 24h0m0s) or more, not -1h0m0s"},
		{"negative lookback", billing.Config{Ledger: ledger, Lookback: -time.Hour}, "the lookback"},
		{"negative attempts", billing.Config{Ledger: ledger, MaxAttempts: -1}, "the attempts per row"},
		{"negative lease", billing.Config{Ledger: ledger, Lease: -time.Minute}, "the lease"},
		{"negative workers", billing.Config{Ledger: ledger, Workers: -1}, "the workers must be 0 (the default, 4) or more, not -1"},
		{"negative batch", billing.Config{Ledger: ledger, Batch: -1}, "the batch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := billing.New(tt.cfg)
			if b != nil || usage.ErrorCode(err) != usage.CodeInvalid || !strings.Contains(usage.ErrorMessage(err), tt.want) {
				t.Errorf("New(%+v) = %v, %v; want a CodeInvalid error saying %q", tt.cfg, b, err, tt.want)
			}
		})
	}

	b, err := billing.New(billing.Config{Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	got := b.Config()
	if got.Ledger != ledger || got.Biller != nil || got.Grace != billing.DefaultGrace || got.Lookback != billing.DefaultLookback ||
		got.MaxAttempts != billing.DefaultMaxAttempts || got.Lease != billing.DefaultLease || got.Workers != billing.DefaultWorkers ||
		got.Batch != billing.DefaultBatch || got.Logger != slog.Default() || got.Clock == nil {
		t.Errorf("New with the zero settings: %+v; want the defaults", got)
	}
	set := billing.Config{Ledger: ledger, Biller: &mock.Biller{}, Grace: 48 * time.Hour, Lookback: 50 * 24 * time.Hour,
		MaxAttempts: 3, Lease: time.Minute, Workers: 1, Batch: 7}
	b, err = billing.New(set)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Config(); got.Biller != set.Biller || got.Grace != set.Grace || got.Lookback != set.Lookback || got.MaxAttempts != set.MaxAttempts ||
		got.Lease != set.Lease || got.Workers != set.Workers || got.Batch != set.Batch {
		t.Errorf("New(%+v).Config() = %+v; want the settings given", set, got)
	}
}

// TestNewWithoutBillerRunsDry: a Billing built without a Biller runs dry:
// it reports what it would bill and writes no ledger row.
func TestNewWithoutBillerRunsDry(t *testing.T) {
	var closed []*billing.RunReport
	ledger := &mock.LedgerStore{
		BillableSubscriptionsFn: func(context.Context) ([]*billing.BillableSubscription, error) { return nil, nil },
		OpenRunFn:               func(context.Context, *billing.RunReport, time.Time, time.Time) (int64, error) { return 1, nil },
		CloseRunFn: func(_ context.Context, _ int64, rep *billing.RunReport, _ time.Time, _ error) error {
			closed = append(closed, rep)
			return nil
		},
		PromoteDueTermsFn: func(context.Context, time.Time) (int, error) {
			t.Fatal("a dry run changed subscriptions")
			return 0, nil
		},
		InsertLedgerEntriesFn: func(context.Context, []*billing.LedgerEntry, []billing.Progress, time.Time) (int, error) {
			t.Fatal("a dry run wrote ledger rows")
			return 0, nil
		},
	}
	b, err := billing.New(billing.Config{Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := b.Run(context.Background(), day(2026, 3, 2))
	if err != nil || !rep.DryRun || len(closed) != 1 {
		t.Errorf("Run = %+v, %v; want a dry run, recorded", rep, err)
	}
}
