package mock

import (
	"context"

	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/usage"
)

var _ usage.LimitChecker = (*LimitChecker)(nil)

// LimitChecker is a usage.LimitChecker.
type LimitChecker struct {
	CheckFn     func(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error)
	CheckRateFn func(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error)
}

// Check calls CheckFn.
func (c *LimitChecker) Check(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	return c.CheckFn(ctx, id, cost)
}

// CheckRate calls CheckRateFn.
func (c *LimitChecker) CheckRate(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	return c.CheckRateFn(ctx, id, cost)
}

var _ limits.BudgetChecker = (*BudgetChecker)(nil)

// BudgetChecker is a limits.BudgetChecker.
type BudgetChecker struct {
	TakeFn func(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error)
}

// Take calls TakeFn.
func (b *BudgetChecker) Take(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	return b.TakeFn(ctx, id, cost)
}
