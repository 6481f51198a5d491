package billing_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file bill over PostgreSQL against the stripetest fake
// (which ties an idempotency key to its first parameters, as Stripe does):
// failed rows retried by an admin, and rows whose Stripe customer changed.

// TestRunRetryFailed: a failed row, its customer fixed, retried by an
// admin (the statement behind POST /v1/admin/overage/{id}/retry), is
// billed once by the next run, also when an earlier attempt reached
// Stripe.
func TestRunRetryFailed(t *testing.T) {
	key := billing.IdempotencyKey(userID(1), february.Start, 0)
	tests := []struct {
		name string
		// fail makes the row fail, from the subscription on customer.
		customer string
		fail     func(t *testing.T, e *testEnv, fake *stripetest.Server)
		reason   string
		// keys are the POSTs after the retry.
		keys []string
	}{
		{"no Stripe customer, then one", "", func(t *testing.T, e *testEnv, _ *stripetest.Server) {
			if _, err := e.run(runAt); err != nil {
				t.Fatal(err)
			}
		}, "no Stripe customer", []string{key}},
		// Stripe keeps the 404 under the row's key: sent again under it to
		// the new customer, Stripe would refuse the key (other parameters).
		{"Stripe refused the customer, then a new one", "cus_gone", func(t *testing.T, e *testEnv, fake *stripetest.Server) {
			fake.FailCustomer("cus_gone", http.StatusNotFound)
			if _, err := e.run(runAt); err != nil {
				t.Fatal(err)
			}
		}, "resource_missing", []string{key + "-cus_new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fake := stripetest.New(t)
			e := newEnv(t, fakeBiller(fake.URL))
			e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: tt.customer, used: 150_000})
			tt.fail(t, e, fake)
			r := e.rows()[userID(1)+"/0"]
			if r.Status != billing.LedgerFailed || !strings.Contains(r.LastError, tt.reason) {
				t.Fatalf("row = %s %q; want failed with %q", r.Status, r.LastError, tt.reason)
			}
			// Still failed, and not billed, at the next run.
			if _, err := e.run(runAt.Add(time.Hour)); err != nil || e.rows()[userID(1)+"/0"].Status != billing.LedgerFailed {
				t.Fatalf("a failed row moved without a retry: %v", err)
			}
			if _, err := e.db.Pool.Exec(ctx, `UPDATE eco_subscriptions SET stripe_customer_id = 'cus_new' WHERE user_id = $1`, userID(1)); err != nil {
				t.Fatal(err)
			}
			admin := postgres.NewAnalyticsStore(e.db)
			retried, err := admin.RetryLedgerEntry(ctx, r.ID, "ops@nexus")
			if err != nil || retried.Status != billing.LedgerPending || retried.Attempts != 0 || retried.Retries != 1 {
				t.Fatalf("RetryLedgerEntry = %+v, %v", retried, err)
			}
			before := len(fake.Requests())
			if _, err := e.run(runAt.Add(26 * time.Hour)); err != nil {
				t.Fatalf("run after the retry: %v", err)
			}
			var keys []string
			for _, q := range fake.Requests()[before:] {
				if q.Method == http.MethodPost {
					keys = append(keys, q.Key)
				}
			}
			items := fake.Items()
			r = e.rows()[userID(1)+"/0"]
			if !equalStrings(keys, tt.keys) || len(items) != 1 || r.Status != billing.LedgerBilled || r.StripeObjectID != items[0].ID {
				t.Errorf("POSTs %v (want %v), %d items, row %s %s; want billed once", keys, tt.keys, len(items), r.Status, r.StripeObjectID)
			}
			if len(items) > 0 && items[0].Customer != "cus_new" {
				t.Errorf("item of %s; want cus_new", items[0].Customer)
			}
			// Billed rows are not retried; the retry was audited.
			if _, err := admin.RetryLedgerEntry(ctx, r.ID, "ops@nexus"); usage.ErrorCode(err) != usage.CodeConflict {
				t.Errorf("retry of a billed row: %v; want CodeConflict", err)
			}
			var who, oldStatus string
			if err := e.db.Pool.QueryRow(ctx, `SELECT who, old->>'status' FROM eco_overage_audit WHERE ledger_id = $1 AND action = 'retry'`, r.ID).
				Scan(&who, &oldStatus); err != nil || who != "ops@nexus" || oldStatus != "failed" {
				t.Errorf("audit = %s %s, %v", who, oldStatus, err)
			}
		})
	}
}

// TestRunCustomerChanged: a pending row sent to one customer and then
// claimed for another is looked up under the first; not found, it is sent
// under a key of its own for the new customer, since Stripe refuses the
// row's key with other parameters, and a run after that finds it under
// either.
func TestRunCustomerChanged(t *testing.T) {
	ctx := context.Background()
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_a", used: 150_000})
	fake.FailNextCreates(http.StatusServiceUnavailable)
	if _, err := e.run(runAt); err == nil {
		t.Fatal("want an error after a 503")
	}
	if _, err := e.db.Pool.Exec(ctx, `UPDATE eco_subscriptions SET stripe_customer_id = 'cus_b' WHERE user_id = $1`, userID(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.run(runAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	reqs := fake.Requests()
	key := billing.IdempotencyKey(userID(1), february.Start, 0)
	if len(reqs) != 6 || reqs[1].Method != http.MethodPost || reqs[1].Status != http.StatusServiceUnavailable ||
		reqs[3].Method != http.MethodGet || reqs[3].Form.Get("customer") != "cus_a" ||
		reqs[4].Method != http.MethodGet || reqs[4].Form.Get("customer") != "cus_b" ||
		reqs[5].Key != key+"-cus_b" || reqs[5].Form.Get("customer") != "cus_b" || reqs[5].Status != http.StatusOK {
		t.Errorf("requests %+v; want the list, POST (503), the list, lookups under cus_a and cus_b, POST to cus_b under its own key", reqs)
	}
	r := e.rows()[userID(1)+"/0"]
	if items := fake.Items(); len(items) != 1 || r.Status != billing.LedgerBilled || r.StripeObjectID != items[0].ID {
		t.Errorf("items %+v, row %+v", items, r)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRunFailedRowFoundInStripe: the first attempt created the item
// and its answer was lost; the row then failed without a lookup (as runs
// before lookups did), a day passed (Stripe forgot the key) and the
// customer changed. The next run finds the item as it reconciles the
// ledger with Stripe, and bills the row with it, under the customer it was
// sent to: no retry needed, nothing sent again.
func TestRunFailedRowFoundInStripe(t *testing.T) {
	ctx := context.Background()
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_a", used: 150_000})
	if _, err := e.runCrashing(runAt); err == nil {
		t.Fatal("want an error from the injected crash")
	}
	r := e.rows()[userID(1)+"/0"]
	if err := e.ledger.MarkFailed(ctx, r.ID, "gave up after 10 attempts: network error", runAt); err != nil {
		t.Fatal(err)
	}
	fake.ForgetKeys()
	if _, err := e.db.Pool.Exec(ctx, `UPDATE eco_subscriptions SET stripe_customer_id = 'cus_new' WHERE user_id = $1`, userID(1)); err != nil {
		t.Fatal(err)
	}
	rep, err := e.run(runAt.Add(26 * time.Hour))
	if err != nil || rep.Adopted != 1 {
		t.Fatalf("run = %+v, %v; want the item adopted", rep, err)
	}
	items := fake.Items()
	r = e.rows()[userID(1)+"/0"]
	if len(items) != 1 || items[0].Customer != "cus_a" || r.Status != billing.LedgerBilled || r.StripeObjectID != items[0].ID ||
		!strings.Contains(r.Note, "found in Stripe") {
		t.Errorf("items %+v, row %+v; want the one item, the row billed with it", items, r)
	}
}
