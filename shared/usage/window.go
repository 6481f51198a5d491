package usage

import (
	"math"
	"time"
)

// How long an event can be accepted, and what must outlast that.
//
// An event is accepted while its occurred_at is at most the backfill window
// old (DefaultBackfillWindow, at most MaxBackfillWindow). Two things must
// last at least that long plus BackfillMargin: the memory of its event id
// (DedupeWindow), so that a redelivery, or a retry that re-stamps
// occurred_at, is a duplicate; and its raw partition (raw retention), so
// that a late event never recreates a dropped month.
const (
	// MaxBackfillWindow is the longest backfill window a deployment may set.
	MaxBackfillWindow = 45 * 24 * time.Hour
	// BackfillMargin is added to the backfill window by whatever must
	// outlast it. It covers the clocks of producers and functions
	// (MaxFutureSkew, KeyGenerationOverlap) and the day boundaries of
	// retention, with room to spare.
	BackfillMargin = 5 * 24 * time.Hour
	// DedupeWindow is how long after its first receipt an event id is
	// remembered, at least: MaxBackfillWindow + BackfillMargin, 50 days.
	// It is also the length of one generation of the event key store (see
	// KeyGeneration), so ids are remembered between one and two windows.
	DedupeWindow = MaxBackfillWindow + BackfillMargin
	// KeyGenerationOverlap is how close to a generation boundary a batch
	// stores its keys in both generations (see KeyGenerations): more than
	// a Lambda runs (15 minutes) plus any clock skew between functions.
	KeyGenerationOverlap = time.Hour
)

// CheckBackfillWindow returns a CodeInvalid error unless 0 < d <=
// MaxBackfillWindow: the event key store remembers ids for DedupeWindow,
// which covers no longer window.
func CheckBackfillWindow(d time.Duration) error {
	if d <= 0 || d > MaxBackfillWindow {
		return Errorf(CodeInvalid, "the backfill window must be more than 0 and at most %d days, not %s",
			int(MaxBackfillWindow/(24*time.Hour)), d)
	}
	return nil
}

// MinRetentionDays returns the fewest days of raw events a deployment with
// the given backfill window must keep: the window plus BackfillMargin, in
// whole days. Shorter, a late event could land in a month retention has
// dropped.
func MinRetentionDays(backfill time.Duration) int {
	return int(math.Ceil(float64(backfill+BackfillMargin) / float64(24*time.Hour)))
}

// MaxRetentionDays is the most days of raw retention CheckRetention
// accepts, 100 years: far more days than that made the retention cutoff
// (today minus the days) wrap around past today.
const MaxRetentionDays = 36500

// CheckRetention returns a CodeInvalid error unless days of raw retention
// are at least MinRetentionDays(backfill) and at most MaxRetentionDays.
func CheckRetention(days int, backfill time.Duration) error {
	if min := MinRetentionDays(backfill); days < min {
		return Errorf(CodeInvalid, "raw events must be kept at least %d days (the backfill window of %s plus a margin of %d days), not %d",
			min, backfill, int(BackfillMargin/(24*time.Hour)), days)
	}
	if days > MaxRetentionDays {
		return Errorf(CodeInvalid, "raw events can be kept at most %d days (100 years), not %d", MaxRetentionDays, days)
	}
	return nil
}

// KeyGeneration returns the generation of the event key store that holds
// the keys received at t. Generations are consecutive spans of
// DedupeWindow counted from the Unix epoch, so they start at midnight UTC.
// The key store keeps a generation while the record path may read it (see
// OldestKeyGeneration) and then drops it whole.
func KeyGeneration(t time.Time) int {
	span := int64(DedupeWindow / time.Second)
	s := t.Unix()
	g := s / span
	if s < 0 && s%span != 0 {
		g--
	}
	return int(g)
}

// KeyGenerations returns the generations a batch received at now stores
// its event keys in, and the older generation it looks them up in: an
// event is new only if its id is in none of them. Usually write is the one
// generation of now. Within KeyGenerationOverlap of a boundary it is both
// neighbours, so that two batches holding the same id on either side of
// the boundary, at once, collide on the same unique key instead of each
// missing the other's uncommitted row. A key stored at r is found at now
// while now - r <= DedupeWindow: its generation is then at least older.
func KeyGenerations(now time.Time) (write []int, older int) {
	lo, hi := KeyGeneration(now.Add(-KeyGenerationOverlap)), KeyGeneration(now.Add(KeyGenerationOverlap))
	write = []int{lo}
	if hi != lo {
		write = append(write, hi)
	}
	return write, lo - 1
}

// OldestKeyGeneration returns the oldest generation of the event key store
// the record path may still read at now (with a clock up to
// KeyGenerationOverlap ahead of now's); older generations can be dropped.
func OldestKeyGeneration(now time.Time) int {
	return KeyGeneration(now.Add(-2*KeyGenerationOverlap)) - 1
}
