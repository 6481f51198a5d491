package rollup

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// DirtyDay is a day whose raw events changed since it was last
// aggregated, as read at the start of a run: the day as a whole (a
// backfill, a day retention found unaggregated), or the days of some of
// its users (the record path marks the users whose events it inserts, so
// one user's late events cost the others nothing), or both. A run clears a
// mark only if it is still the one it read, so an event recorded meanwhile
// keeps the day dirty.
type DirtyDay struct {
	Day time.Time
	// MarkedAt is the time of the whole day's mark, zero when only users
	// are marked.
	MarkedAt time.Time
	// Users are the marks of users' days, in user order; a user's day may
	// hold several (see UserMark).
	Users []UserMark
	// Most is set by the store when Users are at least half of the users
	// the day's rollup holds (or it holds none): recomputing them alone
	// would read the day's raw rows anyway and cost about as much as
	// recomputing every user's.
	Most bool
}

// Whole reports whether the day is recomputed as a whole, every user's
// rows of it, not only Users': when the day as a whole is marked, or most
// of its users are, or no user is.
func (d DirtyDay) Whole() bool { return !d.MarkedAt.IsZero() || d.Most || len(d.Users) == 0 }

// UserMark is one dirty mark of a user's day.
type UserMark struct {
	UserID string
	// Slot tells a user's marks of a day apart: record transactions that
	// run at once mark in slots of their own, so that none waits for
	// another.
	Slot     int
	MarkedAt time.Time
}

// Partition is one raw partition of the usage log: the raw events that
// occurred in [Start, End). Name is the store's name for it, as run
// reports show it.
type Partition struct {
	Name  string
	Start time.Time
	End   time.Time
}

// ErrDeferred is returned by a Store step that needs the raw table's
// lock and gave up waiting for it (the record path holds it), so as not to
// hold every later insert up behind itself. Its code is CodeUnavailable;
// the job leaves the step to its next run.
var ErrDeferred = &usage.Error{Code: usage.CodeUnavailable, Message: "raw table busy; deferred to the next run"}

// Store holds the statements of the aggregation job, each one round
// trip (one transaction where a method says so). Unless a method says
// otherwise, errors are CodeUnavailable when the database cannot be
// reached or is busy, and CodeInternal for anything else; they name the
// operation (and the day or partition), so the job returns them as they are.
type Store interface {
	// AcquireJobLock takes the job lock for holder until now+lease unless
	// another holder's lease still runs at now; then acquired is false and
	// heldBy names that holder. The lock is a row, not session state. A
	// holder may take its own lock again.
	AcquireJobLock(ctx context.Context, holder string, now time.Time, lease time.Duration) (acquired bool, heldBy string, err error)
	// ReleaseJobLock gives the lock up if holder still has it.
	ReleaseJobLock(ctx context.Context, holder string) error
	// SkippedRun records a run of holder that did nothing because heldBy
	// held the lock, and returns its run id.
	SkippedRun(ctx context.Context, holder, heldBy string, at time.Time) (int64, error)
	// OpenRun records the start of holder's run and returns its run id. It
	// is called with the job lock held, so any other run record still open
	// belongs to a run that stopped without closing it: OpenRun closes
	// those as failed.
	OpenRun(ctx context.Context, holder string, at time.Time) (int64, error)
	// CloseRun records what the run did, finished at at, and runErr when
	// it failed.
	CloseRun(ctx context.Context, run *Run, at time.Time, runErr error) error
	// EnsurePartitions creates the raw partitions of the months months
	// starting with the one holding from, and returns how many it created;
	// existing ones are left alone. Creating a partition locks the raw
	// table: it waits a bounded time for the lock and returns ErrDeferred
	// past it.
	EnsurePartitions(ctx context.Context, from time.Time, months int) (int, error)
	// Partitions returns the raw partitions that exist, oldest first.
	Partitions(ctx context.Context) ([]Partition, error)
	// EnsureKeyGenerations creates the generations gens of the event key
	// store (see KeyGeneration) and returns how many it created; existing
	// ones are left alone. It locks the key store as EnsurePartitions locks
	// the raw table, and returns ErrDeferred past the same bound.
	EnsureKeyGenerations(ctx context.Context, gens []int) (int, error)
	// DropKeyGenerations drops every generation of the event key store
	// before oldest, each in a transaction of its own, and returns the
	// names of those it dropped. It returns them with ErrDeferred when the
	// key store's lock was not available in time.
	DropKeyGenerations(ctx context.Context, oldest int) ([]string, error)
	// MarkDirty marks the days dirty as a whole, moving the mark of those
	// dirty already. A day without a raw partition is refused (CodeInvalid
	// naming "from") and none is marked; the check holds against a
	// DropPartition at the same time.
	MarkDirty(ctx context.Context, days []time.Time) error
	// DirtyDays returns every dirty day, oldest first, with its marks:
	// the whole day's and its users', and whether those users are most of
	// the day's.
	DirtyDays(ctx context.Context) ([]DirtyDay, error)
	// RecomputeDay rebuilds part of parts of d's rollup in one
	// transaction: of a Whole day every user's rows, of another the rows
	// of d.Users only (the others' rows are not touched); the users that
	// fall in part of parts, 0 of 1 being all of them. With clear it clears
	// d's marks in the same transaction, each only if it is still the one
	// in d. A user's day keeps maxEndpoints (at least 1) endpoints by name
	// and the rest under OtherEndpoint, as the reference (rolluptest.Rollup) defines. It returns
	// the rollup rows written and whether every mark was cleared.
	// Recomputing is idempotent. A day whose raw partition is gone is
	// refused (CodeInternal): its rollup would be emptied.
	RecomputeDay(ctx context.Context, d DirtyDay, part, parts, maxEndpoints int, clear bool) (written int64, cleared bool, err error)
	// ClearDirty clears d's marks, each only if it is still the one in d,
	// and reports whether every one was.
	ClearDirty(ctx context.Context, d DirtyDay) (bool, error)
	// RetentionBlocked reports whether p holds a dirty day (as a whole or
	// of a user) or a day with raw events that was never aggregated, and
	// marks the latter dirty so that the next run aggregates them.
	RetentionBlocked(ctx context.Context, p Partition) (bool, error)
	// DropPartition drops p in one transaction that first locks the raw
	// table and then checks that no day of p is dirty, as a whole or of a
	// user (a record transaction that wrote into p after RetentionBlocked
	// has committed by then, and its mark is seen); it reports whether it
	// dropped p. A dropped month is never created again: its late events
	// are refused. Returns ErrDeferred when the lock was not available in
	// time.
	DropPartition(ctx context.Context, p Partition) (bool, error)
}
