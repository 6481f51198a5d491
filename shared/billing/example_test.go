package billing_test

import (
	"fmt"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/usage"
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

// ExampleNew: a Billing is built once from a Config, which must name its
// ledger store; settings left zero take the defaults, negative ones are
// refused, and without a Biller every run is a dry run.
func ExampleNew() {
	ledger := &mock.LedgerStore{} // postgres.NewLedgerStore(db) in the overage function
	if _, err := billing.New(billing.Config{Ledger: ledger, Workers: -1}); err != nil {
		fmt.Println(usage.ErrorCode(err), usage.ErrorMessage(err))
	}
	b, err := billing.New(billing.Config{Ledger: ledger})
	if err != nil {
		panic(err)
	}
	c := b.Config()
	fmt.Println(c.Grace, c.Workers, c.MaxAttempts, c.Biller == nil)
	// Output:
	// invalid billing: the workers must be 0 (the default, 4) or more, not -1
	// 24h0m0s 4 10 true
}
