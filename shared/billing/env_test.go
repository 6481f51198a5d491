package billing_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/stripebill"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// The tests of the billing run over PostgreSQL (postgres.LedgerStore) and
// Stripe (stripebill.Client against the stripetest fake or stripe-mock):
// what the run sends, and the ledger rows it keeps.

// The run under test: daily at 00:30 UTC on 2 March 2026. Subscriptions
// anchored on 1 February have one closed period, February.
var (
	runAt    = time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC)
	anchor   = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	february = usage.Period{Start: anchor, End: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
)

// testEnv is one test's database and billing run.
type testEnv struct {
	t      testing.TB
	db     *postgres.DB
	ledger *postgres.LedgerStore
	b      *billing.Billing
}

func newEnv(t testing.TB, biller billing.Biller) *testEnv {
	t.Helper()
	// The overage function's pool: no JIT (postgres.Config.NoJIT).
	db, err := postgres.Open(context.Background(), postgres.Config{URL: pgtest.NewURL(t), MaxConns: 16, NoJIT: true})
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(db.Close)
	ledger := postgres.NewLedgerStore(db)
	e := &testEnv{t: t, db: db, ledger: ledger}
	e.b = mustNew(t, billing.Config{Ledger: ledger, Biller: biller, Logger: testkit.Logger(), Clock: func() time.Time { return runAt }})
	return e
}

// mustNew is billing.New(cfg), which must succeed.
func mustNew(tb testing.TB, cfg billing.Config) *billing.Billing {
	tb.Helper()
	b, err := billing.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// configure changes the settings of the test's billing run.
func (e *testEnv) configure(change func(c *billing.Config)) {
	e.t.Helper()
	cfg := e.b.Config()
	change(&cfg)
	e.b = mustNew(e.t, cfg)
}

// sub is a subscription to seed: its plan, overrides, Stripe customer and
// the calls used in February.
type sub struct {
	user      string
	plan      string
	customer  string
	overrides usage.Overrides
	used      int64
}

func userID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

func (e *testEnv) seed(subs ...sub) {
	e.t.Helper()
	ctx := context.Background()
	store := postgres.NewSubscriptionStore(e.db)
	for _, s := range subs {
		st := &usage.Subscription{UserID: s.user, PlanID: s.plan, Overrides: s.overrides, PeriodAnchor: anchor,
			StripeCustomerID: s.customer}
		if s.customer != "" {
			st.StripeSubscriptionID = "sub_" + strings.TrimPrefix(s.customer, "cus_")
		}
		if err := store.PutSubscription(ctx, st); err != nil {
			e.t.Fatalf("PutSubscription(%s): %v", s.user, err)
		}
		e.addCalls(s.user, time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), s.used)
	}
}

// addCalls adds calls to a user's live counter of a day (negative: fewer).
func (e *testEnv) addCalls(user string, day time.Time, calls int64) {
	e.t.Helper()
	if err := pgtest.AddCalls(context.Background(), e.db, user, day, calls); err != nil {
		e.t.Fatalf("add calls: %v", err)
	}
}

// run is a real run at at (a dry one without a Biller).
func (e *testEnv) run(at time.Time) (billing.RunReport, error) {
	return e.b.Run(context.Background(), at)
}

// dryRun is a dry run at at.
func (e *testEnv) dryRun(at time.Time) (billing.RunReport, error) {
	return e.b.RunWith(context.Background(), at, billing.RunOptions{DryRun: true})
}

// rows returns the ledger rows keyed by user and seq ("user/seq").
func (e *testEnv) rows() map[string]*billing.LedgerEntry {
	e.t.Helper()
	rows, err := e.db.Pool.Query(context.Background(), `SELECT ledger_id::text, user_id::text,
		period_start, period_end, seq, included_calls, used_calls, units, unit_size, unit_price, amount,
		currency, idempotency_key, status, coalesce(stripe_object_id, ''), attempts,
		coalesce(last_error, ''), coalesce(note, ''), created_at, updated_at
		FROM eco_overage_ledger`)
	if err != nil {
		e.t.Fatalf("read the ledger: %v", err)
	}
	defer rows.Close()
	out := map[string]*billing.LedgerEntry{}
	for rows.Next() {
		var r billing.LedgerEntry
		if err := rows.Scan(&r.ID, &r.UserID, &r.Period.Start, &r.Period.End, &r.Seq, &r.Included, &r.Used,
			&r.Units, &r.UnitSize, &r.UnitPrice, &r.Amount, &r.Currency, &r.IdempotencyKey, &r.Status,
			&r.StripeObjectID, &r.Attempts, &r.LastError, &r.Note, &r.CreatedAt, &r.UpdatedAt); err != nil {
			e.t.Fatalf("read the ledger: %v", err)
		}
		r.Period.Start, r.Period.End = r.Period.Start.UTC(), r.Period.End.UTC()
		out[fmt.Sprintf("%s/%d", r.UserID, r.Seq)] = &r
	}
	if err := rows.Err(); err != nil {
		e.t.Fatalf("read the ledger: %v", err)
	}
	return out
}

func fakeBiller(url string) *stripebill.Client {
	return stripebill.New(stripebill.Config{Key: "sk_test_123", URL: url})
}

// crashAfterCreate is a Biller that lets its first invoice item be created
// and then stops the run as a crash between the Stripe call and marking the
// row billed would: the run's context is cancelled and the answer is lost.
type crashAfterCreate struct {
	billing.Biller
	once   sync.Once
	cancel context.CancelFunc
}

func (c *crashAfterCreate) CreateInvoiceItem(ctx context.Context, item *billing.InvoiceItem, key string) (string, error) {
	id, err := c.Biller.CreateInvoiceItem(ctx, item, key)
	if err != nil {
		return id, err
	}
	crashed := false
	c.once.Do(func() { c.cancel(); crashed = true })
	if crashed {
		return "", fmt.Errorf("crashed after creating %s: %w", id, context.Canceled)
	}
	return id, nil
}

// runCrashing runs at at with the Biller wrapped in crashAfterCreate.
func (e *testEnv) runCrashing(at time.Time) (billing.RunReport, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := e.b.Config()
	cfg.Biller = &crashAfterCreate{Biller: cfg.Biller, cancel: cancel}
	return mustNew(e.t, cfg).Run(ctx, at)
}
