package stripebill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/stripebill/stripetest"
	"github.com/nexus/usage/shared/usage"
	"github.com/stripe/stripe-go/v76"
)

func TestConvertError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"network", &url.Error{Op: "Post", URL: "x", Err: errors.New("connection refused")}, usage.CodeUnavailable},
		{"deadline", context.DeadlineExceeded, usage.CodeUnavailable},
		{"500", &stripe.Error{HTTPStatusCode: 500, Type: stripe.ErrorTypeAPI}, usage.CodeUnavailable},
		{"503", &stripe.Error{HTTPStatusCode: 503}, usage.CodeUnavailable},
		{"429", &stripe.Error{HTTPStatusCode: 429, Code: stripe.ErrorCodeRateLimit}, usage.CodeRateLimited},
		{"409 lock timeout", &stripe.Error{HTTPStatusCode: 409, Type: stripe.ErrorTypeInvalidRequest, Code: "lock_timeout"}, usage.CodeUnavailable},
		{"409 idempotency", &stripe.Error{HTTPStatusCode: 400, Type: stripe.ErrorTypeIdempotency}, usage.CodeConflict},
		{"400", &stripe.Error{HTTPStatusCode: 400, Type: stripe.ErrorTypeInvalidRequest, Code: stripe.ErrorCodeParameterMissing}, usage.CodeInvalid},
		{"401", &stripe.Error{HTTPStatusCode: 401}, usage.CodeUnauthorized},
		{"402", &stripe.Error{HTTPStatusCode: 402, Type: stripe.ErrorTypeCard, Code: stripe.ErrorCodeCardDeclined}, usage.CodeInvalid},
		{"403", &stripe.Error{HTTPStatusCode: 403}, usage.CodeForbidden},
		{"404", &stripe.Error{HTTPStatusCode: 404, Code: stripe.ErrorCodeResourceMissing, Msg: "No such customer: 'cus_x'"}, usage.CodeNotFound},
		{"wrapped", fmt.Errorf("call: %w", &stripe.Error{HTTPStatusCode: 502}), usage.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := convertError("op", tt.err)
			if usage.ErrorCode(got) != tt.code {
				t.Errorf("convertError(%v) = %v; want code %s", tt.err, got, tt.code)
			}
		})
	}
	got := convertError("create invoice item", &stripe.Error{HTTPStatusCode: 402, Code: stripe.ErrorCodeCardDeclined, Msg: "Your card was declined."})
	if want := "create invoice item: stripe 402 card_declined: Your card was declined."; usage.ErrorMessage(got) != want {
		t.Errorf("message = %q; want %q", usage.ErrorMessage(got), want)
	}
}

func testItem(n int) *billing.InvoiceItem {
	return &billing.InvoiceItem{
		LedgerID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), UserID: "00000000-0000-4000-8000-000000000001",
		CustomerID: "cus_1", SubscriptionID: "sub_1", Seq: 0, Amount: 150, Currency: "usd", Description: "API overage",
		Period: usage.Period{Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
	}
}

func TestCreateAndFindInvoiceItems(t *testing.T) {
	fake := stripetest.New(t)
	c := New(Config{Key: "sk_test", URL: fake.URL, RequestsPerSecond: 1000, Burst: 10})
	ctx := context.Background()
	var ids []string
	for i := 1; i <= 120; i++ { // more than one page of 100
		item := testItem(i)
		item.Seq = i - 1
		if i%2 == 0 {
			item.UserID = "00000000-0000-4000-8000-000000000002" // another user of the same customer
		}
		id, err := c.CreateInvoiceItem(ctx, item, fmt.Sprintf("key-%d", i))
		if err != nil {
			t.Fatalf("CreateInvoiceItem: %v", err)
		}
		ids = append(ids, id)
	}
	// Same key: the same item, no new charge.
	if id, err := c.CreateInvoiceItem(ctx, testItem(1), "key-1"); err != nil || id != ids[0] {
		t.Errorf("repeat CreateInvoiceItem = %s, %v; want %s", id, err, ids[0])
	}
	if n := len(fake.Items()); n != 120 {
		t.Errorf("%d items; want 120", n)
	}
	f := fake.Requests()[0].Form
	for k, want := range map[string]string{"customer": "cus_1", "subscription": "sub_1", "amount": "150", "currency": "usd",
		"period[start]": "1769904000", "period[end]": "1772323199", "metadata[seq]": "0", "metadata[period_start]": "2026-02-01",
		"metadata[ledger_id]": testItem(1).LedgerID} {
		if f.Get(k) != want {
			t.Errorf("%s = %q; want %q", k, f.Get(k), want)
		}
	}
	// The items of user 1's February, oldest first: the oldest is on the
	// second page (newest first), and the other user's are left out.
	found, err := c.FindInvoiceItems(ctx, "cus_1", testItem(1).UserID, testItem(1).Period)
	if err != nil || len(found) != 60 || found[0].ID != ids[0] || found[0].Seq != 0 || found[0].LedgerID != testItem(1).LedgerID ||
		found[0].Amount != 150 || found[0].Currency != "usd" || found[59].ID != ids[118] || found[59].Seq != 118 {
		t.Errorf("FindInvoiceItems = %d items, %+v, %v; want 60 from %s", len(found), found, err, ids[0])
	}
	march := usage.Period{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
	if found, err := c.FindInvoiceItems(ctx, "cus_1", testItem(1).UserID, march); err != nil || len(found) != 0 {
		t.Errorf("FindInvoiceItems(another period) = %+v, %v; want none", found, err)
	}
	var since string
	for _, r := range fake.Requests() {
		if r.Method == http.MethodGet {
			since = r.Form.Get("created[gte]")
		}
	}
	if since != "1772323200" {
		t.Errorf("the lookup lists the items created since %q; want since the period's start, 1772323200", since)
	}
	if _, err := c.CreateInvoiceItem(ctx, &billing.InvoiceItem{CustomerID: "cus_1", Amount: -5, Currency: "usd"}, "k"); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("negative amount: %v; want CodeInvalid", err)
	}
}

func TestCreateErrors(t *testing.T) {
	fake := stripetest.New(t)
	fake.FailCustomer("cus_1", http.StatusPaymentRequired)
	c := New(Config{Key: "sk_test", URL: fake.URL})
	_, err := c.CreateInvoiceItem(context.Background(), testItem(1), "k1")
	if usage.ErrorCode(err) != usage.CodeInvalid || billing.Retryable(err) {
		t.Errorf("402: %v; want permanent CodeInvalid", err)
	}
	// stripe-go retries a 503 with the same key (not a POST's 500, which Stripe
	// saves under the key); the second attempt succeeds.
	fake = stripetest.New(t)
	fake.FailNext(http.StatusServiceUnavailable)
	c = New(Config{Key: "sk_test", URL: fake.URL, MaxNetworkRetries: 1})
	if _, err := c.CreateInvoiceItem(context.Background(), testItem(1), "k2"); err != nil {
		t.Errorf("503 then retry: %v", err)
	}
	reqs := fake.Requests()
	if len(reqs) != 2 || reqs[0].Key != "k2" || reqs[1].Key != "k2" {
		t.Errorf("requests = %+v; want two with key k2", reqs)
	}
	// Nobody listening: a network error, retryable.
	c = New(Config{Key: "sk_test", URL: "http://127.0.0.1:1"})
	if _, err := c.CreateInvoiceItem(context.Background(), testItem(1), "k3"); !billing.Retryable(err) {
		t.Errorf("network error: %v; want retryable", err)
	}
}

// TestStripeMock creates and lists an item on stripe-mock, which follows a
// newer API than stripe-go v76 (amount and currency, no price).
func TestStripeMock(t *testing.T) {
	url := pgtest.Require(t, "NEXUS_TEST_STRIPE_URL", "stripe-mock")
	c := New(Config{Key: "sk_test_123", URL: url})
	id, err := c.CreateInvoiceItem(context.Background(), testItem(1), "mock-key")
	if err != nil || id == "" {
		t.Fatalf("CreateInvoiceItem = %q, %v", id, err)
	}
	if _, err := c.FindInvoiceItems(context.Background(), "cus_1", testItem(1).UserID, testItem(1).Period); err != nil {
		t.Errorf("FindInvoiceItems: %v", err)
	}
}

// TestFakeValidatedByStripeMock: the fake with stripe-mock upstream keeps
// the items, and refuses what stripe-mock refuses.
func TestFakeValidatedByStripeMock(t *testing.T) {
	fake := stripetest.New(t)
	fake.Upstream = pgtest.Require(t, "NEXUS_TEST_STRIPE_URL", "stripe-mock")
	c := New(Config{Key: "sk_test_123", URL: fake.URL})
	ctx := context.Background()
	id, err := c.CreateInvoiceItem(ctx, testItem(1), "k1")
	if err != nil || id == "" {
		t.Fatalf("CreateInvoiceItem = %q, %v", id, err)
	}
	if found, err := c.ListInvoiceItems(ctx, testItem(1).Period.Start); err != nil || len(found) != 1 || found[0].ID != id {
		t.Errorf("ListInvoiceItems = %+v, %v; want the item created", found, err)
	}
	req, _ := http.NewRequest(http.MethodPost, fake.URL+"/v1/invoiceitems", strings.NewReader("customer=cus_1&amount=5&currency=usd&bogus=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer sk_test_123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || len(fake.Items()) != 1 {
		t.Errorf("an unknown parameter: %d, %d items; want 400 from stripe-mock, nothing created", resp.StatusCode, len(fake.Items()))
	}
}

// TestFoundItemSeq: an item names a ledger row only with a seq this code
// writes (strconv.Itoa of 0 to the ledger's int32 maximum). An item made
// by hand or by another integration with "seq" -1 was read as a row's and
// adopted, which the ledger refuses (seq ≥ 0), failing every run while the
// item stayed in the reconciled span; one with 4294967296 was read as seq
// 0 by the store (int32).
func TestFoundItemSeq(t *testing.T) {
	feb := usage.Period{Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	for seq, want := range map[string]bool{"0": true, "7": true, "2147483647": true,
		"-1": false, "2147483648": false, "4294967296": false, "+1": false, "01": false, " 1": false, "": false} {
		ii := &stripe.InvoiceItem{ID: "ii_1", Amount: 150, Currency: "usd",
			Period:   &stripe.Period{Start: feb.Start.Unix(), End: feb.End.Unix() - 1},
			Metadata: map[string]string{MetaUserID: "00000000-0000-4000-8000-000000000001", MetaPeriodStart: "2026-02-01", MetaSeq: seq}}
		if _, ok := foundItem(ii); ok != want {
			t.Errorf("an item with seq %q names a ledger row: %t; want %t", seq, ok, want)
		}
	}
}
