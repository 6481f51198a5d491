package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// Input is what the schedule sends: {} (or nothing) for a normal run, or a
// backfill range of UTC days, both ends included:
//
//	{"from": "2026-01-01", "to": "2026-01-31"}
type Input struct {
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Output summarizes the run for whoever invoked the function by hand; the
// scheduler ignores it.
type Output struct {
	JobRunID          int64    `json:"job_run_id"`
	Skipped           bool     `json:"skipped,omitempty"`
	DaysRecomputed    int      `json:"days_recomputed"`
	RowsWritten       int64    `json:"rows_written"`
	StillDirty        []string `json:"still_dirty,omitempty"`
	PartitionsCreated int      `json:"partitions_created"`
	PartitionsDropped []string `json:"partitions_dropped,omitempty"`
	RetentionBlocked  []string `json:"retention_blocked,omitempty"`
	// KeyGenerationsDropped are the event key store's generations dropped
	// past the dedupe window.
	KeyGenerationsDropped []string `json:"key_generations_dropped,omitempty"`
	DurationMS            int64    `json:"duration_ms"`
}

// deadlineMargin is how long before the invocation's deadline the run
// stops: the recompute statements still running are cancelled on the
// server (confirmed within postgres.CancelGrace), and the run still records
// how it ended in eco_job_runs and gives the job lock up before Lambda
// stops the function (cut off with it, the run stayed "running" for ever
// and held the lock to its lease).
const deadlineMargin = 5 * time.Second

// Handler is the EventBridge Scheduler target of the daily aggregation.
//
// Errors: malformed input returns a CodeInvalid error, so the invocation is
// counted as failed (metrics, alarms) and lands on the function's failure
// destination with its payload for inspection; it is not retried, because
// the template sets the function's asynchronous retries to 0: retrying the
// same input cannot help, and every other failure heals by itself on the
// next hourly run (dirty days stay dirty until recomputed, the job lock's
// lease expires). A run skipped because another holds the lock succeeds;
// its backfill's days are marked dirty for the next run all the same.
type Handler struct {
	Rollup rollup.Runner
	Logger *slog.Logger
	// Now is the clock a backfill range is judged against: the job's.
	Now func() time.Time
}

// Handle runs the aggregation once.
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) (*Output, error) {
	var opts rollup.Options
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		opts.Holder = lc.AwsRequestID
	}
	r, err := ParseInput(payload, h.Now())
	if err != nil {
		h.Logger.ErrorContext(ctx, "aggregate: bad input", "request_id", opts.Holder, "error", usage.ErrorMessage(err), "input", string(payload))
		return nil, err
	}
	opts.Backfill = r

	work := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadline(ctx, deadline.Add(-deadlineMargin))
		defer cancel()
	}
	run, err := h.Rollup.RunRollup(work, opts)
	if err != nil {
		if usage.ErrorCode(err) == usage.CodeInvalid {
			h.Logger.ErrorContext(ctx, "aggregate: refused", "request_id", opts.Holder, "error", usage.ErrorMessage(err))
			return nil, err
		}
		attrs := []any{"request_id", opts.Holder, "error", err.Error()}
		if run != nil {
			attrs = append(attrs, "job_run_id", run.JobRunID, "days_recomputed", len(run.Days))
		}
		h.Logger.ErrorContext(ctx, "aggregate: run failed", attrs...)
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	out := &Output{
		JobRunID:              run.JobRunID,
		Skipped:               run.Skipped,
		DaysRecomputed:        len(run.Days),
		RowsWritten:           run.RowsWritten,
		PartitionsCreated:     run.PartitionsCreated,
		PartitionsDropped:     run.PartitionsDropped,
		RetentionBlocked:      run.RetentionBlocked,
		KeyGenerationsDropped: run.KeyGenerationsDropped,
		DurationMS:            run.Duration.Milliseconds(),
	}
	for _, d := range run.StillDirty {
		out.StillDirty = append(out.StillDirty, d.Format(time.DateOnly))
	}
	if run.Skipped {
		h.Logger.InfoContext(ctx, "aggregate: skipped, another run holds the lock", "request_id", opts.Holder, "job_run_id", run.JobRunID)
		return out, nil
	}
	h.Logger.InfoContext(ctx, "aggregate: done", "request_id", opts.Holder, "job_run_id", run.JobRunID,
		"days_recomputed", out.DaysRecomputed, "rows_written", out.RowsWritten, "still_dirty", out.StillDirty,
		"partitions_created", out.PartitionsCreated, "partitions_dropped", out.PartitionsDropped,
		"retention_blocked", out.RetentionBlocked, "key_generations_dropped", out.KeyGenerationsDropped,
		"duration_ms", out.DurationMS)
	return out, nil
}

// ParseInput decodes the scheduler's payload: empty, null or {} is a normal
// run (nil range); {"from","to"} in YYYY-MM-DD is a backfill of those days.
// Unknown fields, a lone from or to, bad dates, a reversed or too long range
// and a range reaching past today (at now) are CodeInvalid.
func ParseInput(payload json.RawMessage, now time.Time) (*usage.DayRange, error) {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		return nil, nil
	}
	var in Input
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		e := usage.JSONError(err, len(p), "input")
		return nil, usage.FieldErrorf(usage.ErrorField(e), "%s; the input is {} or {\"from\":\"YYYY-MM-DD\",\"to\":\"YYYY-MM-DD\"}",
			strings.TrimPrefix(usage.ErrorMessage(e), usage.ErrorField(e)+": "))
	}
	if dec.More() {
		return nil, usage.FieldErrorf("input", "must be a single JSON object")
	}
	if in.From == "" && in.To == "" {
		return nil, nil
	}
	if in.From == "" || in.To == "" {
		return nil, usage.FieldErrorf(map[bool]string{true: "from", false: "to"}[in.From == ""], "a backfill needs both from and to")
	}
	from, err := time.Parse(time.DateOnly, in.From)
	if err != nil {
		return nil, usage.FieldErrorf("from", "must be a date YYYY-MM-DD")
	}
	to, err := time.Parse(time.DateOnly, in.To)
	if err != nil {
		return nil, usage.FieldErrorf("to", "must be a date YYYY-MM-DD")
	}
	r := &usage.DayRange{From: from, To: to}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if to.After(usage.Day(now)) {
		return nil, usage.FieldErrorf("to", "is after today (%s)", usage.Day(now).Format(time.DateOnly))
	}
	return r, nil
}
