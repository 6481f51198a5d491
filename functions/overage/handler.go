package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/nexus/usage/shared/usage"
)

// Input is what the EventBridge Scheduler target sends (the schedule's
// Input, "{}" by default). Now replays a run at a fixed instant (the local
// scheduler's "run now", or a catch-up run); DryRun forces a dry run.
type Input struct {
	Now    *time.Time `json:"now,omitempty"`
	DryRun bool       `json:"dry_run,omitempty"`
}

// Handler runs one billing pass per invocation.
type Handler struct {
	// Billing holds the ledger store and the run's settings; its Biller and
	// Logger are set from the fields below.
	Billing usage.Billing
	// Biller is nil when no Stripe key is configured: a dry run.
	Biller usage.Biller
	Logger *slog.Logger
	Now    func() time.Time
}

// Handle closes the periods due and bills them. It returns an error only
// when the invocation should be retried by the scheduler (database or
// Stripe unavailable, items left pending for retry, bad credentials).
func (h *Handler) Handle(ctx context.Context, in Input) (usage.RunReport, error) {
	now := h.Now()
	if in.Now != nil {
		now = *in.Now
	}
	log := h.Logger
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		log = log.With("request_id", lc.AwsRequestID)
	}
	b := h.Billing
	b.Biller = h.Biller
	if in.DryRun {
		b.Biller = nil
	}
	b.Logger = log
	rep, err := b.Run(ctx, now)
	attrs := []any{"run_id", rep.RunID, "now", now, "dry_run", rep.DryRun,
		"subscriptions", rep.Subscriptions, "periods", rep.Periods, "inserted", rep.Inserted,
		"billed", rep.Billed, "found", rep.Found, "retry", rep.Retry, "failed", rep.Failed,
		"stripe_calls", rep.StripeCalls, "plan_ms", rep.PlanTime.Milliseconds(), "bill_ms", rep.BillTime.Milliseconds()}
	if err != nil {
		// Returned, not logged as an error: the scheduler retries and the
		// failed invocation shows the error; the summary helps read it.
		log.WarnContext(ctx, "overage run incomplete", append(attrs, "error", err.Error())...)
		return rep, err
	}
	log.InfoContext(ctx, "overage run done", attrs...)
	return rep, nil
}
