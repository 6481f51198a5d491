package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/usage"
)

// Example opens the pool a function keeps for its lifetime and reads
// through one of the stores. It needs a database, so it is compiled, not
// run; the package's tests run the same calls on a database of their own.
func Example() {
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Config{URL: os.Getenv("DATABASE_URL"), MaxConns: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	subs := postgres.NewSubscriptionStore(db)
	sub, err := subs.Subscription(ctx, "0b0e6f4e-3d0a-4b8c-9d51-6f1f3c1e2a10") // unknown users are on free: never CodeNotFound
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sub.Effective.ID)
}

// ExampleNewRateStore builds the limiter of the request path and a read
// budget over the rate limit state in PostgreSQL: one per process, shared
// by its requests. Compiled, not run (it needs a database).
func ExampleNewRateStore() {
	ctx := context.Background()
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	db, err := postgres.Open(ctx, postgres.Config{URL: os.Getenv("DATABASE_URL")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	id := usage.Identity{UserID: "0b0e6f4e-3d0a-4b8c-9d51-6f1f3c1e2a10"}

	l := limits.NewLimiter(postgres.NewRateStore(db), limits.LimiterOptions{Logger: logger})
	d, err := l.Check(ctx, id, 1)
	switch {
	case err != nil: // CodeUnavailable: the limiter's state cannot be reached
		fmt.Println(err)
	case !d.Allowed: // d.Reason: CodeRateLimited or CodeQuotaExceeded
		fmt.Println(d.Reason, d.RetryAfter)
	}

	b := limits.NewBudget(postgres.NewRateStore(db), limits.BudgetOptions{Name: "read", RatePerSecond: 2, Burst: 60})
	today := usage.Day(time.Now())
	rg := usage.DayRange{From: today.AddDate(0, 0, -29), To: today} // 30 days: one unit
	if d, err := b.Take(ctx, id, limits.ReadCost(rg)); err == nil && !d.Allowed {
		fmt.Println("429, retry after", d.RetryAfter)
	}
}
