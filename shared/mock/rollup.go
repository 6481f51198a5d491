package mock

import (
	"context"

	"github.com/nexus/usage/shared/usage"
)

var _ usage.Rollup = (*Rollup)(nil)

// Rollup is a usage.Rollup.
type Rollup struct {
	RunRollupFn func(ctx context.Context, opts usage.RollupOptions) (*usage.RollupRun, error)
}

// RunRollup calls RunRollupFn.
func (r *Rollup) RunRollup(ctx context.Context, opts usage.RollupOptions) (*usage.RollupRun, error) {
	return r.RunRollupFn(ctx, opts)
}
