package testkit_test

import (
	"testing"

	"github.com/nexus/usage/shared/testkit"
)

// TestContextEndsBeforeTheRun: the suite's context ends before go test's
// -timeout, leaving time to stop what it started, and not before the test.
func TestContextEndsBeforeTheRun(t *testing.T) {
	ctx := testkit.Context(t)
	if err := ctx.Err(); err != nil {
		t.Fatalf("the context ended at once: %v", err)
	}
	run, ok := t.Deadline()
	at, has := ctx.Deadline()
	switch {
	case ok && !has:
		t.Fatalf("go test ends at %v; the context has no deadline", run)
	case ok && !at.Before(run):
		t.Fatalf("the context ends at %v, not before go test's %v", at, run)
	case !ok && has:
		t.Fatalf("no -timeout, yet the context ends at %v", at)
	}
}
