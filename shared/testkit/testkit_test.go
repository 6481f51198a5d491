package testkit_test

import (
	"testing"
	"time"

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

// endTB records how a test was ended instead of ending it.
type endTB struct {
	testing.TB
	ended string
}

func (e *endTB) Helper()                        {}
func (e *endTB) Fatalf(format string, a ...any) { e.end("fail") }
func (e *endTB) Skipf(format string, a ...any)  { e.end("skip") }

// end keeps the first ending: a real Fatalf or Skipf does not return.
func (e *endTB) end(how string) {
	if e.ended == "" {
		e.ended = how
	}
}

// TestMissingFailsUnderCI: a missing tool fails the test under CI=true and
// skips it elsewhere.
func TestMissingFailsUnderCI(t *testing.T) {
	for ci, want := range map[string]string{"true": "fail", "": "skip", "false": "skip"} {
		t.Setenv("CI", ci)
		tb := &endTB{TB: t}
		testkit.RequireTool(tb, "no-such-program-of-nexus-usage", "a test of the kit")
		if tb.ended != want {
			t.Errorf("CI=%q: a missing program ended the test as %q; want %q", ci, tb.ended, want)
		}
	}
}

// TestClock: the fake clock stands still until moved.
func TestClock(t *testing.T) {
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	c := testkit.NewClock(t0)
	c.Add(time.Minute)
	if got := c.Now(); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("after Add: %v", got)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Errorf("after Set: %v", got)
	}
}
