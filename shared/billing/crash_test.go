package billing_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file bill over PostgreSQL against the stripetest fake:
// crashes between the charge and the ledger, runs at once, and rows whose
// key Stripe may have forgotten are charged once.

func postsWithKey(f *stripetest.Server, key string) (n, replayed int) {
	for _, r := range f.Requests() {
		if r.Method == http.MethodPost && r.Key == key {
			n++
			if r.Replayed {
				replayed++
			}
		}
	}
	return n, replayed
}

// TestRunCrashAfterStripeCall: the process dies after Stripe created the
// item and before the row is marked billed. The rerun finds the item in
// Stripe as it reconciles the ledger before planning, and bills the row
// with it: nothing is sent again.
func TestRunCrashAfterStripeCall(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	if _, err := e.runCrashing(runAt); err == nil {
		t.Fatal("Run after an injected crash = nil error; want one so that the scheduler retries")
	}
	key := billing.IdempotencyKey(userID(1), february.Start, 0)
	if r := e.rows()[userID(1)+"/0"]; r.Status != billing.LedgerPending {
		t.Fatalf("after the crash the row is %s; want pending", r.Status)
	}
	rep, err := e.run(runAt.Add(billing.DefaultLease + time.Minute))
	if err != nil || rep.Adopted != 1 || rep.Billed != 0 {
		t.Fatalf("rerun = %+v, %v; want the item adopted", rep, err)
	}
	if n, _ := postsWithKey(fake, key); n != 1 {
		t.Errorf("POSTs with key %s = %d; want 1", key, n)
	}
	items := fake.Items()
	r := e.rows()[userID(1)+"/0"]
	if len(items) != 1 || r.Status != billing.LedgerBilled || r.StripeObjectID != items[0].ID || r.Attempts != 1 || r.Amount != items[0].Amount {
		t.Errorf("items = %d, row = %+v; want 1 item, billed with its id after 1 attempt", len(items), r)
	}
}

// TestConcurrentRuns: three runs at once charge each period once.
func TestConcurrentRuns(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	const users = 30
	for i := 1; i <= users; i++ {
		e.seed(sub{user: userID(i), plan: usage.PlanPro, customer: "cus_" + strconv.Itoa(i), used: 100_000 + int64(i)*1000})
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { _, errs[i] = e.run(runAt) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("run %d: %v", i, err)
		}
	}
	items := fake.Items()
	if len(items) != users {
		t.Errorf("%d invoice items; want %d (one per period)", len(items), users)
	}
	perKey := map[string]int{}
	for _, r := range fake.Requests() {
		if r.Method == http.MethodPost {
			perKey[r.Key]++
		}
	}
	for k, n := range perKey {
		if n != 1 {
			t.Errorf("key %s sent %d times; want 1", k, n)
		}
	}
	for k, r := range e.rows() {
		if r.Status != billing.LedgerBilled {
			t.Errorf("%s: status %s; want billed", k, r.Status)
		}
	}
}

// TestRunOldPendingFound: a pending row older than the key window, whose
// item Stripe did create before the crash, is found by metadata and not
// charged again, even though Stripe forgot the key.
func TestRunOldPendingFound(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.configure(func(c *billing.Config) { c.Workers = 1 })
	// Two rows of the same customer: the lookup must pick the right item.
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_1", used: 160_000})
	if _, err := e.runCrashing(runAt); err == nil {
		t.Fatal("want an error from the injected crash")
	}
	if len(fake.Items()) != 1 {
		t.Fatalf("%d items after the crash; want 1", len(fake.Items()))
	}
	crashed := fake.Items()[0]
	fake.ForgetKeys()
	if _, err := e.run(runAt.Add(25 * time.Hour)); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	user := crashed.Metadata["user_id"]
	key := billing.IdempotencyKey(user, february.Start, 0)
	if n, _ := postsWithKey(fake, key); n != 1 {
		t.Errorf("POSTs with key = %d; want 1 (the rerun must look the item up, not create it)", n)
	}
	var lists int
	for _, r := range fake.Requests() {
		if r.Method == http.MethodGet && r.Form.Get("customer") == "cus_1" {
			lists++
		}
	}
	rows := e.rows()
	r := rows[user+"/0"]
	if lists < 1 || len(fake.Items()) != 2 || r.Status != billing.LedgerBilled || r.StripeObjectID != crashed.ID {
		t.Errorf("lists = %d, items = %d, row = %+v; want a lookup, 2 items, billed with %s", lists, len(fake.Items()), r, crashed.ID)
	}
	for k, r := range rows {
		if r.Status != billing.LedgerBilled {
			t.Errorf("%s: %s; want billed", k, r.Status)
		}
	}
}

// TestRunOldPendingNotFound: a pending row older than the key window
// whose earlier attempt never reached Stripe is looked up, not found, and
// then created once.
func TestRunOldPendingNotFound(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	fake.FailNextCreates(http.StatusServiceUnavailable)
	if _, err := e.run(runAt); err == nil {
		t.Fatal("want an error after a 503")
	}
	if _, err := e.run(runAt.Add(25 * time.Hour)); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	reqs := fake.Requests()
	if len(reqs) != 5 || reqs[0].Method != http.MethodGet || reqs[1].Method != http.MethodPost || reqs[2].Method != http.MethodGet ||
		reqs[3].Method != http.MethodGet || reqs[3].Form.Get("customer") != "cus_1" || reqs[4].Method != http.MethodPost || len(fake.Items()) != 1 {
		t.Errorf("requests = %+v, items = %d; want the list, POST (503), the list, the row's lookup, POST; 1 item", reqs, len(fake.Items()))
	}
}

// TestRunItemWithAnOddSeq: an invoice item in Stripe whose metadata names
// a user and period of the ledger with a seq this code never writes (-1,
// made by hand or by another integration) is not a ledger row's: the run
// bills as if it were not there. It was adopted as seq -1, which the
// ledger refuses, and every run failed while the item was in the span a
// run reconciles (some 70 days).
func TestRunItemWithAnOddSeq(t *testing.T) {
	fake := stripetest.New(t)
	biller := fakeBiller(fake.URL)
	e := newEnv(t, biller)
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	odd := &billing.InvoiceItem{LedgerID: billing.LedgerID(userID(1), february.Start, 0), UserID: userID(1), CustomerID: "cus_1",
		Period: february, Seq: -1, Amount: 100, Currency: "usd", Description: "made by hand"}
	if _, err := biller.CreateInvoiceItem(context.Background(), odd, "by-hand"); err != nil {
		t.Fatal(err)
	}
	rep, err := e.run(runAt)
	if err != nil {
		t.Fatalf("run: %v; want the odd item left alone", err)
	}
	if r := e.rows()[userID(1)+"/0"]; r == nil || r.Status != billing.LedgerBilled || r.Amount != 50*50 || rep.Adopted != 0 {
		t.Errorf("row = %+v, adopted %d; want February billed, 25.00 USD, nothing adopted", r, rep.Adopted)
	}
}

// TestRunTwoItemsOfOneUnbilledRow: Stripe holds two items that name the
// same ledger row, which the ledger has not billed (a row lost by a restore
// of the database whose item was created twice, under two customers or by
// hand). The run adopts the older and leaves the other for an admin, as it
// does for a row billed already. Both were adopted in one statement, which
// PostgreSQL refuses (a row cannot be updated twice by one INSERT … ON
// CONFLICT), and every run failed while the items were in the span a run
// reconciles.
func TestRunTwoItemsOfOneUnbilledRow(t *testing.T) {
	fake := stripetest.New(t)
	biller := fakeBiller(fake.URL)
	e := newEnv(t, biller)
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	var ids []string
	for i, cus := range []string{"cus_1", "cus_old"} {
		it := &billing.InvoiceItem{LedgerID: billing.LedgerID(userID(1), february.Start, 0), UserID: userID(1), CustomerID: cus,
			Period: february, Seq: 0, Amount: 50 * 50, Currency: "usd", Description: "API overage"}
		id, err := biller.CreateInvoiceItem(context.Background(), it, "twice-"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rep, err := e.run(runAt)
	if err != nil {
		t.Fatalf("run: %v; want the older item adopted and the other left for an admin", err)
	}
	r := e.rows()[userID(1)+"/0"]
	if r == nil || r.Status != billing.LedgerBilled || r.StripeObjectID != ids[0] || rep.Adopted != 1 || rep.Duplicates != 1 || len(fake.Items()) != 2 {
		t.Errorf("row = %+v, report %+v, %d items; want February billed with %s, 1 adopted, 1 duplicate, nothing created",
			r, rep, len(fake.Items()), ids[0])
	}
}

// TestRunCrashInAPeriodStartingWithinASecond: a subscription migrated by
// SQL with an anchor that has a fraction of a second (14:00:00.25, as
// now() writes it). Stripe keeps an item's period in whole seconds, and a
// run finds the row of an item by its period: the item a crash left
// unaccounted for was adopted for a period starting a quarter of a second
// before the row's, whose row id (derived from the day) is the row's own,
// and every run failed on that conflict. The database keeps anchors in
// whole seconds: the item is adopted by its row, and charged once.
func TestRunCrashInAPeriodStartingWithinASecond(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	u := userID(1)
	start := time.Date(2026, 2, 1, 14, 0, 0, 250_000_000, time.UTC)
	if _, err := e.db.Pool.Exec(context.Background(), `INSERT INTO eco_subscriptions (user_id, plan_id, stripe_customer_id, period_anchor)
		VALUES ($1, 'pro', 'cus_1', $2)`, u, start); err != nil {
		t.Fatal(err)
	}
	e.addCalls(u, time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), 150_000)
	at := time.Date(2026, 3, 3, 0, 30, 0, 0, time.UTC)
	if _, err := e.runCrashing(at); err == nil {
		t.Fatal("Run after an injected crash = nil error; want one")
	}
	if len(fake.Items()) != 1 {
		t.Fatalf("%d items after the crash; want 1", len(fake.Items()))
	}
	fake.ForgetKeys()
	if _, err := e.run(at.Add(25 * time.Hour)); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	rows := e.rows()
	r := rows[u+"/0"]
	if len(fake.Items()) != 1 || len(rows) != 1 || r.Status != billing.LedgerBilled || !r.Period.Start.Equal(start.Truncate(time.Second)) {
		t.Errorf("%d items, %d ledger rows, row %+v; want 1 item and February's row billed with it", len(fake.Items()), len(rows), r)
	}
}

// deadlineAfterCreate is a Biller whose run's deadline passes just after
// its first invoice item is created and answered.
type deadlineAfterCreate struct {
	billing.Biller
	cancel context.CancelFunc
	once   sync.Once
}

func (d *deadlineAfterCreate) CreateInvoiceItem(ctx context.Context, item *billing.InvoiceItem, key string) (string, error) {
	id, err := d.Biller.CreateInvoiceItem(ctx, item, key)
	if err == nil {
		d.once.Do(d.cancel)
	}
	return id, err
}

// TestDeadlineMarksWhatWasBilled: a run whose context ends (the function's
// deadline) after an item was created and answered still marks that row
// billed with the item: the marks were made on the ended context and
// failed, and the row stayed pending with its item in Stripe until a later
// run looked it up. The rows not reached stay pending for the next run.
func TestDeadlineMarksWhatWasBilled(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.configure(func(c *billing.Config) { c.Workers = 1 })
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_2", used: 160_000})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := e.b.Config()
	cfg.Biller = &deadlineAfterCreate{Biller: cfg.Biller, cancel: cancel}
	rep, err := mustNew(t, cfg).Run(ctx, runAt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run past its deadline = %v; want the cancellation", err)
	}
	items := fake.Items()
	if len(items) != 1 {
		t.Fatalf("%d items; want 1 (created before the deadline)", len(items))
	}
	user := items[0].Metadata["user_id"]
	other := map[string]string{userID(1): userID(2), userID(2): userID(1)}[user]
	rows := e.rows()
	if r := rows[user+"/0"]; r.Status != billing.LedgerBilled || r.StripeObjectID != items[0].ID || rep.Billed != 1 {
		t.Errorf("row of the item created = %+v, report billed %d; want billed with %s, 1", r, rep.Billed, items[0].ID)
	}
	if r := rows[other+"/0"]; r.Status != billing.LedgerPending {
		t.Errorf("row not reached = %s; want pending", r.Status)
	}
}
