package billing_test

import (
	"fmt"
	"time"

	"github.com/nexus/usage/shared/billing"
)

// ExampleIdempotencyKey: a ledger row's id and the key its invoice item is
// sent with follow from the user, the period and the line alone, so a
// retried or restarted run finds the row and the provider's item it made
// before instead of billing twice.
func ExampleIdempotencyKey() {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	user := "3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607"
	fmt.Println(billing.IdempotencyKey(user, start, 0))
	fmt.Println(billing.LedgerID(user, start, 0))
	fmt.Println(billing.LedgerID(user, start, 0) == billing.LedgerID(user, start, 1))
	// Output:
	// nexus-overage-3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607-20260301-0
	// 851ca4c1-8bb8-50b0-a3a8-7799e1852cac
	// false
}
