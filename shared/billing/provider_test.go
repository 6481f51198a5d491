package billing_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file bill over PostgreSQL against the stripetest fake:
// what each kind of provider error does to the rows and the run, and usage
// that arrives after a period was billed.

// TestRunServerError: a 500 leaves the row pending and the run asks to be
// retried; the next run bills it. Others bill in the first run.
func TestRunServerError(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.configure(func(c *billing.Config) { c.Workers = 1 })
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_2", used: 150_000})
	fake.FailNextCreates(http.StatusInternalServerError)
	rep, err := e.run(runAt)
	if usage.ErrorCode(err) != usage.CodeUnavailable || rep.Retry != 1 || rep.Billed != 1 {
		t.Fatalf("Run = %+v, %v; want 1 billed, 1 retry and CodeUnavailable", rep, err)
	}
	var pending *billing.LedgerEntry
	for _, r := range e.rows() {
		if r.Status == billing.LedgerPending {
			pending = r
		}
	}
	if pending == nil || !strings.Contains(pending.LastError, "stripe 500") {
		t.Fatalf("no pending row with the 500 as last error: %+v", e.rows())
	}
	if _, err := e.run(runAt.Add(time.Hour)); err != nil {
		t.Fatalf("next run: %v", err)
	}
	for k, r := range e.rows() {
		if r.Status != billing.LedgerBilled {
			t.Errorf("%s: status %s; want billed", k, r.Status)
		}
	}
	if n := len(fake.Items()); n != 2 {
		t.Errorf("%d invoice items; want 2", n)
	}
}

// TestRunPermanentErrors: 402 and 404 fail their rows with the reason;
// the others bill and the run succeeds.
func TestRunPermanentErrors(t *testing.T) {
	fake := stripetest.New(t)
	fake.FailCustomer("cus_declined", http.StatusPaymentRequired)
	fake.FailCustomer("cus_gone", http.StatusNotFound)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_declined", used: 150_000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_gone", used: 150_000},
		sub{user: userID(3), plan: usage.PlanPro, customer: "cus_ok", used: 150_000},
		sub{user: userID(4), plan: usage.PlanPro, customer: "", used: 150_000})
	rep, err := e.run(runAt)
	if err != nil || rep.Failed != 3 || rep.Billed != 1 {
		t.Fatalf("Run = %+v, %v; want 3 failed, 1 billed, no error", rep, err)
	}
	rows := e.rows()
	for user, reason := range map[int]string{1: "card_declined", 2: "resource_missing", 4: "no Stripe customer"} {
		r := rows[userID(user)+"/0"]
		if r.Status != billing.LedgerFailed || !strings.Contains(r.LastError, reason) {
			t.Errorf("user %d: %s %q; want failed with %q", user, r.Status, r.LastError, reason)
		}
	}
	if r := rows[userID(3)+"/0"]; r.Status != billing.LedgerBilled {
		t.Errorf("user 3: %s; want billed", r.Status)
	}
	// Failed rows are final: the next run neither retries nor adjusts them
	// (it lists Stripe's items, to reconcile the ledger, and sends nothing).
	before := len(fake.Requests())
	if _, err := e.run(runAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if reqs := fake.Requests()[before:]; len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].Form.Get("customer") != "" {
		t.Errorf("rerun sent %+v; want the list of items alone", reqs)
	}
}

// TestRunMaxAttempts: a row that keeps failing with retryable errors is
// looked up (as before every create) once it has had MaxAttempts, and
// failed when the lookup finds nothing.
func TestRunMaxAttempts(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.configure(func(c *billing.Config) { c.MaxAttempts = 2 })
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	fake.FailNextCreates(500, 500)
	for i := range 3 {
		_, _ = e.run(runAt.Add(time.Duration(i) * time.Hour))
	}
	r := e.rows()[userID(1)+"/0"]
	reqs := fake.Requests()
	if r.Status != billing.LedgerFailed || !strings.Contains(r.LastError, "gave up after 2 attempts") || len(reqs) != 7 ||
		reqs[6].Method != http.MethodGet || reqs[6].Form.Get("customer") != "cus_1" {
		t.Errorf("row = %+v after requests %+v; want failed after 2 attempts and a lookup", r, reqs)
	}
}

// TestRunMaxAttemptsFound: the give-up lookup finds the item an
// earlier attempt created (its answer was lost): the row is billed, not
// failed, and not charged again.
func TestRunMaxAttemptsFound(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.configure(func(c *billing.Config) { c.MaxAttempts = 1 })
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	if _, err := e.runCrashing(runAt); err == nil {
		t.Fatal("want an error from the injected crash")
	}
	if _, err := e.run(runAt.Add(billing.DefaultLease + time.Minute)); err != nil {
		t.Fatal(err)
	}
	r := e.rows()[userID(1)+"/0"]
	if items := fake.Items(); len(items) != 1 || r.Status != billing.LedgerBilled || r.StripeObjectID != items[0].ID {
		t.Errorf("items %d, row %+v; want the one item found and billed", len(items), r)
	}
}

// TestRunBadCredentials: a 401 stops the run with an error and leaves the
// rows pending.
func TestRunBadCredentials(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.configure(func(c *billing.Config) { c.Workers = 1 })
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_2", used: 150_000})
	fake.FailNext(http.StatusUnauthorized)
	if _, err := e.run(runAt); usage.ErrorCode(err) != usage.CodeUnauthorized {
		t.Fatalf("Run = %v; want CodeUnauthorized", err)
	}
	for k, r := range e.rows() {
		if r.Status != billing.LedgerPending {
			t.Errorf("%s: %s; want pending", k, r.Status)
		}
	}
}

// TestRunLateUsage: usage arriving after a period was billed is billed
// once as an adjustment; usage that goes down is recorded as a credit for an
// admin, once.
func TestRunLateUsage(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	if _, err := e.run(runAt); err != nil {
		t.Fatal(err)
	}
	// 5,500 late calls on 28 February: 156 units instead of 50.
	e.addCalls(userID(1), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), 5_500)
	for i := 1; i <= 2; i++ {
		if _, err := e.run(runAt.Add(time.Duration(i) * 24 * time.Hour)); err != nil {
			t.Fatalf("run %d after late usage: %v", i, err)
		}
	}
	items := fake.Items()
	if len(items) != 2 {
		t.Fatalf("%d invoice items; want 2 (charge and one adjustment)", len(items))
	}
	adj := e.rows()[userID(1)+"/1"]
	if items[1].Amount != 300 || items[1].Metadata["seq"] != "1" || adj == nil || adj.Status != billing.LedgerBilled ||
		adj.Units != 56 || adj.Amount != 300 || adj.Used != 155_500 || adj.IdempotencyKey != billing.IdempotencyKey(userID(1), february.Start, 1) {
		t.Errorf("adjustment item %+v, row %+v; want 56 units in all, 300 cents, seq 1, billed", items[1], adj)
	}
	if want := "API overage adjustment 1, 2026-02-01 – 2026-02-28: Pro, 155,500 calls, 100,000 included: " +
		"56 × 1,000 calls at 0.50 USD = 28.00 USD; less 25.00 USD charged before"; items[1].Description != want {
		t.Errorf("adjustment description = %q; want %q", items[1].Description, want)
	}
	// Usage goes down by 20,000 calls: a credit of 20 units is recorded once.
	e.addCalls(userID(1), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), -20_000)
	for i := 3; i <= 4; i++ {
		if _, err := e.run(runAt.Add(time.Duration(i) * 24 * time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	rows := e.rows()
	credit := rows[userID(1)+"/2"]
	if len(rows) != 3 || credit.Status != billing.LedgerSkipped || credit.Amount != -20*50 || credit.Units != 36 ||
		!strings.Contains(credit.Note, "credit of 10.00 USD") {
		t.Errorf("rows = %d, credit = %+v; want 3 rows, a skipped credit of -1000", len(rows), credit)
	}
	if len(fake.Items()) != 2 {
		t.Errorf("a credit was sent to Stripe")
	}
}
