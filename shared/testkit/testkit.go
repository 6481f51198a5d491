// Package testkit holds what the test suites share that is not about one
// service: the context a suite that drives processes runs under.
package testkit

import (
	"context"
	"testing"
	"time"
)

// cleanup is the time left, before go test's -timeout, for a suite to stop
// what it started (servers, containers) once its context is done.
const cleanup = 30 * time.Second

// Context is the context of a suite that drives processes and waits on
// them: it ends with the test, or shortly before go test's -timeout would
// end the whole binary, so that the suite fails with its own words and
// stops what it started. It is never a timed assertion: a suite on a
// loaded machine may take as long as the run allows.
func Context(tb testing.TB) context.Context {
	ctx := context.Background()
	if t, ok := tb.(interface{ Context() context.Context }); ok {
		ctx = t.Context()
	}
	type deadliner interface{ Deadline() (time.Time, bool) }
	if d, ok := tb.(deadliner); ok {
		if at, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, at.Add(-cleanup))
			tb.Cleanup(cancel)
		}
	}
	return ctx
}
