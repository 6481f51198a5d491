package usage

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// DefaultRetentionDays is how long raw usage events are kept by default.
const DefaultRetentionDays = 90

// DailyRollup is one row of the daily rollup: a user's calls to one endpoint
// with one API key (empty: none) on one UTC day. Calls and the error counts
// are sums of the events' quantities; bytes and latency are sums over the
// events; the percentiles are percentile_disc over the events' latencies
// (see Percentile); Events counts the raw events.
type DailyRollup struct {
	Day           time.Time `json:"day"`
	UserID        string    `json:"user_id"`
	Endpoint      string    `json:"endpoint"`
	APIKeyID      string    `json:"api_key_id,omitempty"`
	Calls         int64     `json:"calls"`
	Errors4xx     int64     `json:"errors_4xx"`
	Errors5xx     int64     `json:"errors_5xx"`
	RequestBytes  int64     `json:"request_bytes"`
	ResponseBytes int64     `json:"response_bytes"`
	LatencySumMS  int64     `json:"latency_sum_ms"`
	LatencyP50MS  int64     `json:"latency_p50_ms"`
	LatencyP95MS  int64     `json:"latency_p95_ms"`
	LatencyMaxMS  int64     `json:"latency_max_ms"`
	Events        int64     `json:"events"`
}

// Percentile returns the discrete percentile p (0..1) of sorted values, as
// PostgreSQL's percentile_disc computes it: the first value whose cumulative
// share of the values is at least p, sorted[ceil(p*n)-1]. It returns 0 for
// no values.
func Percentile(sorted []int64, p float64) int64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(p * float64(n)))
	if i < 1 {
		i = 1
	}
	if i > n {
		i = n
	}
	return sorted[i-1]
}

// DefaultMaxEndpointsPerDay is how many endpoints of one user and day the
// daily rollup keeps by name unless RollupOptions.MaxEndpointsPerDay says
// otherwise.
const DefaultMaxEndpointsPerDay = 1000

// MaxEndpointsPerDayLimit is the largest cap RollupOptions.MaxEndpointsPerDay
// may set: a hundred times the default. A cap much larger would bound
// nothing a caller could not reach.
const MaxEndpointsPerDayLimit = 100_000

// CheckMaxEndpointsPerDay returns a CodeInvalid error unless n is a cap the
// daily rollup takes: 1 to MaxEndpointsPerDayLimit.
func CheckMaxEndpointsPerDay(n int) error {
	if n < 1 || n > MaxEndpointsPerDayLimit {
		return Errorf(CodeInvalid, "the endpoints kept per user and day must be between 1 and %d, not %d", MaxEndpointsPerDayLimit, n)
	}
	return nil
}

// OtherEndpoint is the endpoint under which the daily rollup keeps the
// calls of a user's day beyond its most called endpoints.
const OtherEndpoint = "(other)"

// RollupEvents computes the daily rollup of events: the reference
// definition the database's aggregate_daily_usage implements. Events must
// already be deduplicated (the raw table keeps one row per event). The
// result is ordered by day, user, endpoint and API key.
//
// A user's day keeps at most maxEndpoints endpoints by name, its most
// called ones (every endpoint when maxEndpoints < 1); the events of the
// others are rolled up under OtherEndpoint, one row per API key.
// Endpoints rank by their calls summed over API keys, most first, ties in
// byte order, and an endpoint named OtherEndpoint last (so that it joins
// the row it names whenever anything is folded). Calls, errors, bytes and
// events keep their totals; the percentiles and the maximum of an
// OtherEndpoint row are those of its events.
func RollupEvents(events []Event, maxEndpoints int) []DailyRollup {
	folded := foldedEndpoints(events, maxEndpoints)
	type key struct {
		day                      time.Time
		user, endpoint, apiKeyID string
	}
	type acc struct {
		row       DailyRollup
		latencies []int64
	}
	groups := map[key]*acc{}
	for _, e := range events {
		k := key{Day(e.OccurredAt), e.UserID, e.Endpoint, e.APIKeyID}
		if folded[userDayEndpoint{k.day, k.user, k.endpoint}] {
			k.endpoint = OtherEndpoint
		}
		a := groups[k]
		if a == nil {
			a = &acc{row: DailyRollup{Day: k.day, UserID: k.user, Endpoint: k.endpoint, APIKeyID: k.apiKeyID}}
			groups[k] = a
		}
		q := quantity(e)
		r := &a.row
		r.Calls += q
		switch {
		case e.StatusCode >= 400 && e.StatusCode <= 499:
			r.Errors4xx += q
		case e.StatusCode >= 500 && e.StatusCode <= 599:
			r.Errors5xx += q
		}
		r.RequestBytes += e.RequestBytes
		r.ResponseBytes += e.ResponseBytes
		r.LatencySumMS += e.LatencyMS
		r.LatencyMaxMS = max(r.LatencyMaxMS, e.LatencyMS)
		r.Events++
		a.latencies = append(a.latencies, e.LatencyMS)
	}
	out := make([]DailyRollup, 0, len(groups))
	for _, a := range groups {
		slices.Sort(a.latencies)
		a.row.LatencyP50MS = Percentile(a.latencies, 0.5)
		a.row.LatencyP95MS = Percentile(a.latencies, 0.95)
		out = append(out, a.row)
	}
	SortDailyUsage(out)
	return out
}

// userDayEndpoint is one endpoint of one user's UTC day.
type userDayEndpoint struct {
	day            time.Time
	user, endpoint string
}

// foldedEndpoints returns the endpoints of events that RollupEvents keeps
// under OtherEndpoint.
func foldedEndpoints(events []Event, maxEndpoints int) map[userDayEndpoint]bool {
	if maxEndpoints < 1 {
		return nil
	}
	type userDay struct {
		day  time.Time
		user string
	}
	calls := map[userDay]map[string]int64{}
	for _, e := range events {
		k := userDay{Day(e.OccurredAt), e.UserID}
		if calls[k] == nil {
			calls[k] = map[string]int64{}
		}
		calls[k][e.Endpoint] += quantity(e)
	}
	folded := map[userDayEndpoint]bool{}
	for k, byEndpoint := range calls {
		if len(byEndpoint) <= maxEndpoints {
			continue
		}
		endpoints := slices.Collect(maps.Keys(byEndpoint))
		slices.SortFunc(endpoints, func(a, b string) int {
			if ao, bo := a == OtherEndpoint, b == OtherEndpoint; ao != bo {
				if ao {
					return 1
				}
				return -1
			}
			if c := cmp.Compare(byEndpoint[b], byEndpoint[a]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, ep := range endpoints[maxEndpoints:] {
			folded[userDayEndpoint{k.day, k.user, ep}] = true
		}
	}
	return folded
}

// quantity is an event's quantity, a zero read as 1.
func quantity(e Event) int64 {
	if e.Quantity == 0 {
		return 1
	}
	return e.Quantity
}

// SortDailyUsage orders rows by day, user, endpoint and API key.
func SortDailyUsage(rows []DailyRollup) {
	slices.SortFunc(rows, func(a, b DailyRollup) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		if c := strings.Compare(a.UserID, b.UserID); c != 0 {
			return c
		}
		if c := strings.Compare(a.Endpoint, b.Endpoint); c != 0 {
			return c
		}
		return strings.Compare(a.APIKeyID, b.APIKeyID)
	})
}

// RollupOptions tune one run of the aggregation job. Zero values take the
// defaults.
type RollupOptions struct {
	// Backfill, when set, marks the range's days dirty before the run, so
	// they are recomputed with whatever else is dirty.
	Backfill *DayRange
	// RetentionDays is how long raw events are kept (DefaultRetentionDays).
	RetentionDays int
	// MaxEndpointsPerDay is how many endpoints of one user and day the
	// rollup keeps by name (DefaultMaxEndpointsPerDay, at most
	// MaxEndpointsPerDayLimit); the calls of the others are kept under
	// OtherEndpoint (see RollupEvents), so that no caller can grow the
	// rollup without bound.
	MaxEndpointsPerDay int
	// PartitionsAhead is how many months of raw partitions must exist after
	// the current one (2).
	PartitionsAhead int
	// Workers is how many days are recomputed at once (2).
	Workers int
	// Holder names this run in the job lock (a request ID); random if empty.
	Holder string
	// Lease is how long the job lock is held before another run may take it
	// over (20 minutes: longer than a Lambda can run).
	Lease time.Duration
}

// RollupRun is what one run of the aggregation job did.
type RollupRun struct {
	RunID int64 `json:"run_id"`
	// Skipped is set when another run held the job lock; nothing was done.
	Skipped bool `json:"skipped,omitempty"`
	// Days are the days recomputed, as a whole or for some users.
	Days []time.Time `json:"days"`
	// UserDays counts the users' days recomputed alone: the days of Days
	// that were not dirty as a whole, one per user marked.
	UserDays    int   `json:"user_days"`
	RowsWritten int64 `json:"rows_written"`
	// StillDirty are days recomputed whose raw events changed during the
	// run; they stay dirty for the next run.
	StillDirty        []time.Time `json:"still_dirty,omitempty"`
	PartitionsCreated int         `json:"partitions_created"`
	PartitionsDropped []string    `json:"partitions_dropped,omitempty"`
	// KeyGenerationsCreated and KeyGenerationsDropped are the event key
	// store's generations created ahead and dropped past the dedupe window.
	KeyGenerationsCreated int      `json:"key_generations_created"`
	KeyGenerationsDropped []string `json:"key_generations_dropped,omitempty"`
	// RetentionBlocked are raw partitions past retention kept because a day
	// in them is dirty or not yet aggregated.
	RetentionBlocked []string `json:"retention_blocked,omitempty"`
	// Deferred names the upkeep steps given up because the raw table's
	// lock was not available in time (busy record path); the next run
	// does them.
	Deferred []string      `json:"deferred,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Rollup runs the daily aggregation job.
type Rollup interface {
	// RunRollup recomputes every dirty day (and the backfill range, if
	// any), creates raw partitions and key generations ahead, drops raw
	// partitions past retention and key generations past the dedupe
	// window, and records the run. When another run holds the job lock
	// it records a skipped run and returns it with Skipped set and a nil
	// error. Returns CodeInvalid for a bad backfill range (reversed, too
	// long, or reaching days whose raw events are no longer kept) or a
	// MaxEndpointsPerDay past MaxEndpointsPerDayLimit, and CodeUnavailable
	// when the database is unreachable or busy.
	RunRollup(ctx context.Context, opts RollupOptions) (*RollupRun, error)
}
