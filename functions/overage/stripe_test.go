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
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file bill over PostgreSQL against stripe-mock (or no
// Stripe at all, a dry run): the invoice items sent and the ledger rows kept.

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
