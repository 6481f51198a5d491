package stripebill_test

import (
	"context"
	"fmt"
	"os"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/stripebill"
)

// Example sends a ledger row's overage to a customer as an invoice item
// with the row's idempotency key: a retry (a lost answer, a crash) sends
// the same key and Stripe answers with the first item. It needs Stripe,
// so it is compiled, not run; the package's tests run it against
// stripe-mock and stripetest.
func Example() {
	ctx := context.Background()
	c := stripebill.New(stripebill.Config{Key: os.Getenv("STRIPE_API_KEY"), RequestsPerSecond: 20, MaxNetworkRetries: 2})
	entry := &billing.LedgerEntry{ID: "led_1", UserID: "0b0e6f4e-3d0a-4b8c-9d51-6f1f3c1e2a10",
		Amount: 100, Currency: "usd", IdempotencyKey: "overage-0b0e6f4e-2026-03-15-1", Description: "API calls above the plan"}
	customer := "cus_123"
	id, err := c.CreateInvoiceItem(ctx, entry.InvoiceItem(customer), entry.SendKey(customer))
	switch {
	case billing.Retryable(err): // leave the row pending: the next run sends the same key
		fmt.Println("later:", err)
	case err != nil:
		fmt.Println("failed:", err)
	default:
		fmt.Println("billed as", id)
	}
}
