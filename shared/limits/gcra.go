package limits

import (
	"math"
	"math/bits"
	"time"
)

// GCRA is the generic cell rate algorithm as go-redis/redis_rate runs it:
// a limiter of Rate calls per second with bursts of up to Burst calls keeps
// one number per key, the theoretical arrival time (TAT). A call of cost c
// at time now is admitted when
//
//	max(TAT, now) + c·T − Burst·T ≤ now        (T = 1/Rate, the emission interval)
//
// and then moves TAT to max(TAT, now) + c·T; a refused call leaves it alone.
// The delay variation tolerance is Burst·T.
//
// The exact bound: starting from a full burst, the calls of cost 1 admitted
// in any window [t0, t0+W] number at most Burst + floor(W / T), and a caller
// that keeps trying is admitted at least Burst + floor(W / T) − 1 times.
// Times are integer microseconds, so the bound is exact arithmetic; T is
// 1/Rate rounded to the microsecond (IntervalMicros).
//
// A key's limit can change (a plan change): its TAT, written under another
// limit, is first read as this one would have written it (Rescale), so
// that the new limit applies at once, from the share of the burst the
// caller had spent.
//
// postgres.RateStore runs the same step in one SQL statement; this type is
// the reference the SQL is tested against and the documentation of the math.
type GCRA struct {
	// IntervalMicros is the emission interval T in microseconds.
	IntervalMicros int64
	Burst          int64
}

// NewGCRA returns the limiter of rate calls per second and burst calls.
func NewGCRA(rate float64, burst int) GCRA {
	return GCRA{IntervalMicros: IntervalMicros(rate), Burst: int64(burst)}
}

// IntervalMicros is the emission interval 1/rate in whole microseconds
// (rounded half away from zero, at least 1), as the database computes it.
func IntervalMicros(rate float64) int64 {
	if !(rate > 0) {
		return math.MaxInt32
	}
	return max(1, int64(math.Round(1e6/rate)))
}

// RateResult is the outcome of one GCRA step.
type RateResult struct {
	Allowed bool
	// Remaining is how many calls of cost 1 would be admitted right after.
	Remaining int64
	// Reset is how long until the limiter is back to a full burst.
	Reset time.Duration
	// RetryAfter is how long until a refused call would be admitted.
	RetryAfter time.Duration
}

// Take runs one step for a call of cost at now (microseconds since the
// epoch) on state tat (0 for a fresh key) and returns the new state.
func (g GCRA) Take(tat, now, cost int64) (int64, RateResult) {
	t0 := max(tat, now)
	newTAT := t0 + g.IntervalMicros*cost
	allowAt := newTAT - g.IntervalMicros*g.Burst
	if allowAt > now {
		return tat, RateResult{
			Reset:      time.Duration(t0-now) * time.Microsecond,
			RetryAfter: time.Duration(allowAt-now) * time.Microsecond,
		}
	}
	return newTAT, RateResult{
		Allowed:   true,
		Remaining: (now - allowAt) / g.IntervalMicros,
		Reset:     time.Duration(newTAT-now) * time.Microsecond,
	}
}

// Tolerance is the delay variation tolerance Burst·T in microseconds: how
// far ahead of now a TAT written by g can be.
func (g GCRA) Tolerance() int64 { return g.IntervalMicros * g.Burst }

// Rescale returns the state tat of a key, written under a limit whose
// Tolerance was tolerance, as g reads it at now (microseconds since the
// epoch): the caller has spent the same share of g's burst as it had of
// that limit's, (tat − now) / tolerance at most 1, rounded down to the
// microsecond. Under the same tolerance it is tat. A tolerance of 0 stands
// for one not known (a key written before it was kept): the state then
// counts as at most g's whole burst spent.
//
// Without it, a limit made faster kept a caller who had spent a slow burst
// refused for the rest of the slow window (a whole burst at one call every
// 100 s: 500 s, where the new limit waits one interval), and a limit made
// slower gave a caller who had just spent the fast burst more calls at
// once.
func (g GCRA) Rescale(tat, tolerance, now int64) int64 {
	next := g.Tolerance()
	switch {
	case tat <= now || tolerance == next:
		return tat
	case tolerance <= 0:
		return min(tat, now+next)
	}
	spent := uint64(min(tat-now, tolerance))
	// spent·next/tolerance ≤ next: the quotient fits, and Div64 cannot
	// overflow (hi < tolerance since spent ≤ tolerance).
	hi, lo := bits.Mul64(spent, uint64(next))
	q, _ := bits.Div64(hi, lo, uint64(tolerance))
	return now + int64(q)
}

// MaxAdmitted is GCRA's exact upper bound on calls of cost 1 admitted in a
// window of w starting from a full burst: Burst + floor(w / T).
func (g GCRA) MaxAdmitted(w time.Duration) int64 {
	return g.Burst + w.Microseconds()/g.IntervalMicros
}
