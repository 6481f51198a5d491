package rollup

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/usage"
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

// DefaultMaxEndpointsPerDay is how many endpoints of one user and day the
// daily rollup keeps by name unless Config.MaxEndpointsPerDay says
// otherwise.
const DefaultMaxEndpointsPerDay = 1000

// MaxEndpointsPerDayLimit is the largest cap Config.MaxEndpointsPerDay
// may set: a hundred times the default. A cap much larger would bound
// nothing a caller could not reach.
const MaxEndpointsPerDayLimit = 100_000

// CheckMaxEndpointsPerDay returns a CodeInvalid error unless n is a cap the
// daily rollup takes: 1 to MaxEndpointsPerDayLimit.
func CheckMaxEndpointsPerDay(n int) error {
	if n < 1 || n > MaxEndpointsPerDayLimit {
		return usage.Errorf(usage.CodeInvalid, "the endpoints kept per user and day must be between 1 and %d, not %d", MaxEndpointsPerDayLimit, n)
	}
	return nil
}

// OtherEndpoint is the endpoint under which the daily rollup keeps the
// calls of a user's day beyond its most called endpoints.
const OtherEndpoint = "(other)"

// Options are one run's own: who runs it and what it backfills. The
// job's settings are its Config's.
type Options struct {
	// Backfill, when set, marks the range's days dirty before the run, so
	// they are recomputed with whatever else is dirty.
	Backfill *usage.DayRange
	// Holder names this run in the job lock (a request ID); random if empty.
	Holder string
}

// Run is what one run of the aggregation job did.
type Run struct {
	JobRunID int64 `json:"job_run_id"`
	// Skipped is set when another run held the job lock; nothing was done
	// but marking the backfill's days dirty, which the next run recomputes.
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

// Runner runs the daily aggregation job.
type Runner interface {
	// RunRollup recomputes every dirty day (and the backfill range, if
	// any), creates raw partitions and key generations ahead, drops raw
	// partitions past retention and key generations past the dedupe
	// window, and records the run. When another run holds the job lock
	// it marks the backfill range's days dirty (for the next run), records
	// a skipped run and returns it with Skipped set and a nil error. Returns CodeInvalid for a bad backfill range (reversed, too
	// long, or reaching days whose raw events are no longer kept) or a
	// MaxEndpointsPerDay past MaxEndpointsPerDayLimit, and CodeUnavailable
	// when the database is unreachable or busy.
	RunRollup(ctx context.Context, opts Options) (*Run, error)
}
