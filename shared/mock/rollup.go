package mock

import (
	"context"

	"github.com/nexus/usage/shared/rollup"
)

var _ rollup.Runner = (*Rollup)(nil)

// Rollup is a rollup.Rollup.
type Rollup struct {
	RunRollupFn func(ctx context.Context, opts rollup.Options) (*rollup.Run, error)
}

// RunRollup calls RunRollupFn.
func (r *Rollup) RunRollup(ctx context.Context, opts rollup.Options) (*rollup.Run, error) {
	return r.RunRollupFn(ctx, opts)
}
