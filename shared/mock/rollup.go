package mock

import (
	"context"

	"github.com/nexus/usage/shared/rollup"
)

var _ rollup.Rollup = (*Rollup)(nil)

// Rollup is a rollup.Rollup.
type Rollup struct {
	RunRollupFn func(ctx context.Context, opts rollup.RollupOptions) (*rollup.RollupRun, error)
}

// RunRollup calls RunRollupFn.
func (r *Rollup) RunRollup(ctx context.Context, opts rollup.RollupOptions) (*rollup.RollupRun, error) {
	return r.RunRollupFn(ctx, opts)
}
