package postgres

import "testing"

// SetMigrateLockWait makes Migrate wait at most tries polls of one second
// for another migrator's lock, until the test ends.
func SetMigrateLockWait(tb testing.TB, tries uint64) {
	old := migrateLockTries
	migrateLockTries = tries
	tb.Cleanup(func() { migrateLockTries = old })
}
