package mock

import (
	"context"

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

var _ usage.Alerter = (*Alerter)(nil)

// Alerter is a usage.Alerter.
type Alerter struct {
	AlertFn func(ctx context.Context, a usage.Alert) error
}

// Alert calls AlertFn.
func (a *Alerter) Alert(ctx context.Context, al usage.Alert) error { return a.AlertFn(ctx, al) }

var _ usage.BudgetChecker = (*BudgetChecker)(nil)

// BudgetChecker is a usage.BudgetChecker.
type BudgetChecker struct {
	TakeFn func(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error)
}

// Take calls TakeFn.
func (b *BudgetChecker) Take(ctx context.Context, id usage.Identity, cost int64) (usage.Decision, error) {
	return b.TakeFn(ctx, id, cost)
}
