package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// CI reports whether the tests run as CI runs them (CI=true): there a
// missing tool or service is a failure, never a skip.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing ends the test for want of something it needs, said in why:
// under CI=true it fails, elsewhere it is skipped.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if CI() {
		tb.Fatalf(format, args...)
	}
	tb.Skipf(format, args...)
}

// Require ends the test as Missing does when err (from looking for what
// the test needs) is not nil, saying what was looked for.
func Require(tb testing.TB, err error, what string) {
	tb.Helper()
	if err != nil {
		Missing(tb, "%s is not available: %v", what, err)
	}
}

// RequireTool returns the path of the program name on PATH, or ends the
// test as Missing does; need says what the program is for ("make test
// installs it", "scripts/smoke.sh runs it").
func RequireTool(tb testing.TB, name, need string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, "%s is not installed (%s)", name, need)
	}
	return p
}

// Midday is noon (UTC) of today: the clock of tests whose events, a
// minute or an hour before it, must fall on the day they read back
// whenever the tests run (at 00:00:30 an event a minute ago is
// yesterday's).
func Midday() time.Time {
	return time.Now().UTC().Truncate(24 * time.Hour).Add(12 * time.Hour)
}

// Clock is a fake clock the test moves by hand; its Now goes where a
// service takes a clock. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// String is the clock's time, for messages.
func (c *Clock) String() string { return fmt.Sprint(c.Now()) }
