package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/usage"
)

func ptr[T any](v T) *T { return &v }

// recordingProxy forwards to target and records the form of every POST.
type recordingProxy struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			f, _ := url.ParseQuery(string(body))
			f.Set("idempotency_key", r.Header.Get("Idempotency-Key"))
			p.mu.Lock()
			p.forms = append(p.forms, f)
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// TestHandleStripeMock bills a mix of plans and usages against stripe-mock
// and checks every invoice item sent.
func TestHandleStripeMock(t *testing.T) {
	mock := pgtest.Require(t, "NEXUS_TEST_STRIPE_URL", "stripe-mock")
	proxy := newRecordingProxy(t, mock)
	e := newEnv(t, fakeBiller(proxy.URL))
	e.seed(
		sub{user: userID(1), plan: usage.PlanFree, customer: "cus_free", used: 5000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_below", used: 50_000},
		sub{user: userID(3), plan: usage.PlanPro, customer: "cus_at", used: 100_000},
		sub{user: userID(4), plan: usage.PlanPro, customer: "cus_above1", used: 100_001},
		sub{user: userID(5), plan: usage.PlanPro, customer: "cus_above2", used: 250_500},
		sub{user: userID(6), plan: usage.PlanEnterprise, customer: "cus_ent", used: 10_002_000},
		sub{user: userID(7), plan: usage.PlanPro, customer: "cus_override", used: 201_000, overrides: usage.Overrides{
			IncludedCalls: ptr(int64(200_000)), OverageUnitSize: ptr(int64(500)), OverageUnitPrice: ptr(int64(100)), Currency: ptr("eur")}},
		sub{user: userID(8), plan: usage.PlanEnterprise, customer: "cus_ent_below", used: 9_000_000},
	)
	rep, err := e.run(runAt)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if rep.Subscriptions != 7 || rep.Billed != 4 {
		t.Errorf("report = %+v; want 7 subscriptions (free excluded), 4 billed", rep)
	}
	type want struct {
		amount   int64
		currency string
		desc     string
	}
	span := "period 2026-02-01 – 2026-02-28"
	wants := map[string]want{
		"cus_above1":   {50, "usd", "API overage: 1 calls above 100000 included, " + span},
		"cus_above2":   {151 * 50, "usd", "API overage: 150500 calls above 100000 included, " + span},
		"cus_ent":      {40, "usd", "API overage: 2000 calls above 10000000 included, " + span},
		"cus_override": {200, "eur", "API overage: 1000 calls above 200000 included, " + span},
	}
	rows := e.rows()
	got := map[string]url.Values{}
	for _, f := range proxy.forms {
		got[f.Get("customer")] = f
	}
	if len(proxy.forms) != len(wants) {
		t.Errorf("sent %d invoice items; want %d", len(proxy.forms), len(wants))
	}
	users := map[string]string{"cus_above1": userID(4), "cus_above2": userID(5), "cus_ent": userID(6), "cus_override": userID(7)}
	for cus, w := range wants {
		f := got[cus]
		if f == nil {
			t.Errorf("no invoice item for %s", cus)
			continue
		}
		row := rows[users[cus]+"/0"]
		checks := map[string]string{
			"amount": strconv.FormatInt(w.amount, 10), "currency": w.currency, "description": w.desc,
			"subscription":        "sub_" + strings.TrimPrefix(cus, "cus_"),
			"period[start]":       strconv.FormatInt(february.Start.Unix(), 10),
			"period[end]":         strconv.FormatInt(february.End.Unix()-1, 10),
			"metadata[ledger_id]": row.ID, "metadata[user_id]": users[cus],
			"metadata[period_start]": "2026-02-01", "metadata[seq]": "0",
			"idempotency_key": "nexus-overage-" + users[cus] + "-20260201-0",
		}
		for k, v := range checks {
			if f.Get(k) != v {
				t.Errorf("%s: %s = %q; want %q", cus, k, f.Get(k), v)
			}
		}
		if row.Status != usage.LedgerBilled || row.StripeObjectID == "" || row.Amount != w.amount || row.Attempts != 1 {
			t.Errorf("%s: ledger row = %+v; want billed, amount %d, 1 attempt", cus, row, w.amount)
		}
	}
	for _, u := range []int{2, 3, 8} {
		if r := rows[userID(u)+"/0"]; r == nil || r.Status != usage.LedgerSkipped || r.Amount != 0 || r.Note == "" {
			t.Errorf("user %d: ledger row = %+v; want skipped with 0 amount and a note", u, r)
		}
	}
	if r := rows[userID(1)+"/0"]; r != nil {
		t.Errorf("free user has a ledger row: %+v", r)
	}
	// A second run changes nothing.
	if _, err := e.run(runAt.Add(time.Hour)); err != nil {
		t.Fatalf("second Handle: %v", err)
	}
	if len(proxy.forms) != len(wants) {
		t.Errorf("after a rerun %d invoice items were sent; want %d", len(proxy.forms), len(wants))
	}
}

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

// TestHandleCrashAfterStripeCall: the process dies after Stripe created the
// item and before the row is marked billed. The rerun (after the claim's
// lease) sends the same key and Stripe's answer is the same item.
func TestHandleCrashAfterStripeCall(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	if _, err := e.runCrashing(runAt); err == nil {
		t.Fatal("Handle after an injected crash = nil error; want one so that the scheduler retries")
	}
	key := usage.IdempotencyKey(userID(1), february.Start, 0)
	if r := e.rows()[userID(1)+"/0"]; r.Status != usage.LedgerPending {
		t.Fatalf("after the crash the row is %s; want pending", r.Status)
	}
	if _, err := e.run(runAt.Add(usage.DefaultLease + time.Minute)); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	n, replayed := postsWithKey(fake, key)
	if n != 2 || replayed != 1 {
		t.Errorf("POSTs with key %s = %d (%d replayed); want 2 (1 replayed)", key, n, replayed)
	}
	items := fake.Items()
	r := e.rows()[userID(1)+"/0"]
	if len(items) != 1 || r.Status != usage.LedgerBilled || r.StripeObjectID != items[0].ID || r.Attempts != 2 {
		t.Errorf("items = %d, row = %+v; want 1 item, billed with its id after 2 attempts", len(items), r)
	}
}

// TestHandleConcurrentRuns: three runs at once charge each period once.
func TestHandleConcurrentRuns(t *testing.T) {
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
		perKey[r.Key]++
	}
	for k, n := range perKey {
		if n != 1 {
			t.Errorf("key %s sent %d times; want 1", k, n)
		}
	}
	for k, r := range e.rows() {
		if r.Status != usage.LedgerBilled {
			t.Errorf("%s: status %s; want billed", k, r.Status)
		}
	}
}

// TestHandleServerError: a 500 leaves the row pending and the run asks to be
// retried; the next run bills it. Others bill in the first run.
func TestHandleServerError(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.h.Billing.Workers = 1
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_2", used: 150_000})
	fake.FailNext(http.StatusInternalServerError)
	rep, err := e.run(runAt)
	if usage.ErrorCode(err) != usage.CodeUnavailable || rep.Retry != 1 || rep.Billed != 1 {
		t.Fatalf("Handle = %+v, %v; want 1 billed, 1 retry and CodeUnavailable", rep, err)
	}
	var pending *usage.LedgerEntry
	for _, r := range e.rows() {
		if r.Status == usage.LedgerPending {
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
		if r.Status != usage.LedgerBilled {
			t.Errorf("%s: status %s; want billed", k, r.Status)
		}
	}
	if n := len(fake.Items()); n != 2 {
		t.Errorf("%d invoice items; want 2", n)
	}
}

// TestHandlePermanentErrors: 402 and 404 fail their rows with the reason;
// the others bill and the run succeeds.
func TestHandlePermanentErrors(t *testing.T) {
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
		t.Fatalf("Handle = %+v, %v; want 3 failed, 1 billed, no error", rep, err)
	}
	rows := e.rows()
	for user, reason := range map[int]string{1: "card_declined", 2: "resource_missing", 4: "no Stripe customer"} {
		r := rows[userID(user)+"/0"]
		if r.Status != usage.LedgerFailed || !strings.Contains(r.LastError, reason) {
			t.Errorf("user %d: %s %q; want failed with %q", user, r.Status, r.LastError, reason)
		}
	}
	if r := rows[userID(3)+"/0"]; r.Status != usage.LedgerBilled {
		t.Errorf("user 3: %s; want billed", r.Status)
	}
	// Failed rows are final: the next run neither retries nor adjusts them.
	before := len(fake.Requests())
	if _, err := e.run(runAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Requests()); n != before {
		t.Errorf("rerun sent %d requests; want none", n-before)
	}
}

// TestHandleOldPendingFound: a pending row older than the key window, whose
// item Stripe did create before the crash, is found by metadata and not
// charged again, even though Stripe forgot the key.
func TestHandleOldPendingFound(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.h.Billing.Workers = 1
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
	key := usage.IdempotencyKey(user, february.Start, 0)
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
	if lists < 1 || len(fake.Items()) != 2 || r.Status != usage.LedgerBilled || r.StripeObjectID != crashed.ID {
		t.Errorf("lists = %d, items = %d, row = %+v; want a lookup, 2 items, billed with %s", lists, len(fake.Items()), r, crashed.ID)
	}
	for k, r := range rows {
		if r.Status != usage.LedgerBilled {
			t.Errorf("%s: %s; want billed", k, r.Status)
		}
	}
}

// TestHandleOldPendingNotFound: a pending row older than the key window
// whose earlier attempt never reached Stripe is looked up, not found, and
// then created once.
func TestHandleOldPendingNotFound(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	fake.FailNext(http.StatusServiceUnavailable)
	if _, err := e.run(runAt); err == nil {
		t.Fatal("want an error after a 503")
	}
	if _, err := e.run(runAt.Add(25 * time.Hour)); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	reqs := fake.Requests()
	if len(reqs) != 3 || reqs[1].Method != http.MethodGet || reqs[2].Method != http.MethodPost || len(fake.Items()) != 1 {
		t.Errorf("requests = %+v, items = %d; want POST (503), GET lookup, POST; 1 item", reqs, len(fake.Items()))
	}
}

// TestHandleLateUsage: usage arriving after a period was billed is billed
// once as an adjustment; usage that goes down is recorded as a credit for an
// admin, once.
func TestHandleLateUsage(t *testing.T) {
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
	if items[1].Amount != 300 || items[1].Metadata["seq"] != "1" || adj == nil || adj.Status != usage.LedgerBilled ||
		adj.Units != 6 || adj.Amount != 300 || adj.Used != 155_500 || adj.IdempotencyKey != usage.IdempotencyKey(userID(1), february.Start, 1) {
		t.Errorf("adjustment item %+v, row %+v; want 6 units, 300 cents, seq 1, billed", items[1], adj)
	}
	if !strings.HasPrefix(items[1].Description, "API overage adjustment 1: 55500 calls above 100000 included") {
		t.Errorf("adjustment description = %q", items[1].Description)
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
	if len(rows) != 3 || credit.Status != usage.LedgerSkipped || credit.Amount != -20*50 || credit.Units != -20 ||
		!strings.Contains(credit.Note, "credit of 1000 usd") {
		t.Errorf("rows = %d, credit = %+v; want 3 rows, a skipped credit of -1000", len(rows), credit)
	}
	if len(fake.Items()) != 2 {
		t.Errorf("a credit was sent to Stripe")
	}
}

// TestHandleDryRun: no Stripe key → rows written as dry_run with amounts.
func TestHandleDryRun(t *testing.T) {
	e := newEnv(t, nil)
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_2", used: 10})
	rep, err := e.run(runAt)
	if err != nil || !rep.DryRun || rep.StripeCalls != 0 {
		t.Fatalf("Handle = %+v, %v; want a dry run without Stripe calls", rep, err)
	}
	rows := e.rows()
	if r := rows[userID(1)+"/0"]; r.Status != usage.LedgerDryRun || r.Amount != 2500 || r.Units != 50 {
		t.Errorf("row = %+v; want dry_run, 50 units, 2500", r)
	}
	if r := rows[userID(2)+"/0"]; r.Status != usage.LedgerSkipped {
		t.Errorf("row = %+v; want skipped", r)
	}
}

// TestHandleMaxAttempts: a row that keeps failing with retryable errors is
// failed after MaxAttempts.
func TestHandleMaxAttempts(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.h.Billing.MaxAttempts = 2
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000})
	fake.FailNext(500, 500, 500)
	for i := range 3 {
		_, _ = e.run(runAt.Add(time.Duration(i) * time.Hour))
	}
	r := e.rows()[userID(1)+"/0"]
	if r.Status != usage.LedgerFailed || !strings.Contains(r.LastError, "gave up after 2 attempts") || len(fake.Requests()) != 2 {
		t.Errorf("row = %+v after %d requests; want failed after 2 attempts", r, len(fake.Requests()))
	}
}

// TestHandleBadCredentials: a 401 stops the run with an error and leaves the
// rows pending.
func TestHandleBadCredentials(t *testing.T) {
	fake := stripetest.New(t)
	e := newEnv(t, fakeBiller(fake.URL))
	e.h.Billing.Workers = 1
	e.seed(sub{user: userID(1), plan: usage.PlanPro, customer: "cus_1", used: 150_000},
		sub{user: userID(2), plan: usage.PlanPro, customer: "cus_2", used: 150_000})
	fake.FailNext(http.StatusUnauthorized)
	if _, err := e.run(runAt); usage.ErrorCode(err) != usage.CodeUnauthorized {
		t.Fatalf("Handle = %v; want CodeUnauthorized", err)
	}
	for k, r := range e.rows() {
		if r.Status != usage.LedgerPending {
			t.Errorf("%s: %s; want pending", k, r.Status)
		}
	}
}
