package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/usage"
)

// Input is what the EventBridge Scheduler target sends (the schedule's
// Input, "{}" by default). Now replays a run at a fixed instant, on a local
// stack only (Handler.AllowClockOverride); DryRun forces a dry run, which
// reports what a real run would bill and writes no ledger row.
type Input struct {
	Now    *time.Time `json:"now,omitempty"`
	DryRun bool       `json:"dry_run,omitempty"`
}

// deadlineMargin is how long before the invocation's deadline the run
// stops: the Stripe calls and statements still running are cancelled (a
// statement on the server, confirmed within postgres.CancelGrace), and the
// run still marks the rows it billed and records how it ended in
// eco_job_runs before Lambda stops the function (cut off with it, the run
// stayed "running" for ever). The rows it did not reach are billed by the
// next run.
const deadlineMargin = 5 * time.Second

// Runner runs the billing pass (billing.Billing).
type Runner interface {
	RunWith(ctx context.Context, now time.Time, opts billing.RunOptions) (billing.RunReport, error)
}

// Handler runs one billing pass per invocation.
type Handler struct {
	// Billing is the billing run, its ledger, provider (none: dry runs
	// only) and settings fixed when it was built.
	Billing Runner
	Logger  *slog.Logger
	Now     func() time.Time
	// AllowClockOverride lets Input.Now set the run's instant. Only the
	// local stack sets it (ALLOW_CLOCK_OVERRIDE=true, from
	// cmd/internal/devstack; template.yaml never does): in AWS a run bills
	// at the time it runs.
	AllowClockOverride bool
	// FunctionName is the dimension of the run's metrics: the name the
	// function runs under (lambdacontext.FunctionName), which tells this
	// stack's runs from another's in the same account.
	FunctionName string
}

// Handle closes the periods due and bills them. It returns an error only
// when the invocation should be retried (database or Stripe unavailable,
// items left pending for retry, bad credentials).
func (h *Handler) Handle(ctx context.Context, in Input) (billing.RunReport, error) {
	log := h.Logger
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		log = log.With("request_id", lc.AwsRequestID)
	}
	now := h.Now()
	if in.Now != nil {
		if !h.AllowClockOverride {
			err := usage.FieldErrorf("now", "the run's instant can be set on a local stack only (ALLOW_CLOCK_OVERRIDE=true); leave it out")
			log.ErrorContext(ctx, "overage run refused", "error", usage.ErrorMessage(err))
			return billing.RunReport{}, err
		}
		now = *in.Now
	}
	work := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadline(ctx, deadline.Add(-deadlineMargin))
		defer cancel()
	}
	rep, err := h.Billing.RunWith(work, now, billing.RunOptions{DryRun: in.DryRun, Logger: log})
	attrs := []any{"run_id", rep.RunID, "job_run_id", rep.JobRunID, "now", now, "dry_run", rep.DryRun,
		"subscriptions", rep.Subscriptions, "periods", rep.Periods, "planned_rows", rep.PlannedRows, "due", rep.Due,
		"plan_errors", rep.PlanErrors, "unpriced", rep.Unpriced, "unpriced_subscriptions", rep.UnpricedSubscriptions,
		"inserted", rep.Inserted, "listed", rep.Listed, "billed", rep.Billed, "found", rep.Found, "adopted", rep.Adopted,
		"replanned", rep.Replanned, "duplicates", rep.Duplicates, "retry", rep.Retry, "failed", rep.Failed,
		"stripe_calls", rep.StripeCalls, "plan_ms", rep.PlanTime.Milliseconds(), "bill_ms", rep.BillTime.Milliseconds()}
	reportMetrics(ctx, log, &rep, h.FunctionName, h.Now())
	if err != nil {
		// Returned, not logged as an error: Lambda retries the run (then
		// sends it to the schedule's DLQ, which an alarm watches) and the
		// failed invocation shows the error; the summary helps read it.
		log.WarnContext(ctx, "overage run incomplete", append(attrs, "error", err.Error())...)
		return rep, err
	}
	log.InfoContext(ctx, "overage run done", attrs...)
	return rep, nil
}

// MetricsNamespace is the CloudWatch namespace of the run's metrics.
const MetricsNamespace = "NexusUsage"

// reportMetrics writes what the run could not do as one CloudWatch
// Embedded Metric Format line (namespace NexusUsage, dimension FunctionName,
// the function's name, so that each stack's alarms watch its own runs): the
// subscriptions it could not price (OverageUnpricedSubscriptions; the
// template's OverageUnpriced alarm fires above 0), the items Stripe holds
// twice for one ledger row (OverageDuplicateItems), the rows that failed
// (OverageFailedRows) and the items the ledger had lost and adopted
// (OverageAdoptedItems). In Lambda the line becomes the metrics with no API
// call; it is written at error level when a subscription went unpriced or
// an item was found twice.
func reportMetrics(ctx context.Context, log *slog.Logger, rep *billing.RunReport, function string, now time.Time) {
	level := slog.LevelInfo
	if rep.Unpriced > 0 || rep.Duplicates > 0 {
		level = slog.LevelError
	}
	log.Log(ctx, level, "overage run metrics",
		"_aws", map[string]any{
			"Timestamp": now.UnixMilli(),
			"CloudWatchMetrics": []map[string]any{{
				"Namespace":  MetricsNamespace,
				"Dimensions": [][]string{{"FunctionName"}},
				"Metrics": []map[string]string{
					{"Name": "OverageUnpricedSubscriptions", "Unit": "Count"},
					{"Name": "OverageDuplicateItems", "Unit": "Count"},
					{"Name": "OverageFailedRows", "Unit": "Count"},
					{"Name": "OverageAdoptedItems", "Unit": "Count"},
				},
			}},
		},
		"FunctionName", function, "OverageUnpricedSubscriptions", rep.Unpriced, "OverageDuplicateItems", rep.Duplicates,
		"OverageFailedRows", rep.Failed, "OverageAdoptedItems", rep.Adopted)
}
