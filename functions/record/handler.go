package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/nexus/usage/shared/usage"
)

// Handler records the usage events of SQS batches.
type Handler struct {
	Events usage.EventStore
	Logger *slog.Logger
	// Now is the clock events are validated against.
	Now func() time.Time
	// Backfill is how old an event may be (usage.DefaultBackfillWindow
	// when zero).
	Backfill time.Duration
}

// Handle decodes and validates every message of the batch, quarantines the
// invalid ones (they are acknowledged: redelivery cannot fix them) and
// writes all valid events with the quarantine in one transaction. When that
// write fails nothing was written, so every message of the batch is
// reported as a batch item failure and SQS redelivers it; the event ids
// make the redelivery harmless. The error result is always nil: failures
// are reported per message.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	now := h.Now()
	backfill := h.Backfill
	if backfill <= 0 {
		backfill = usage.DefaultBackfillWindow
	}
	var (
		all      []usage.Event
		rejected []usage.Rejection
	)
	for _, m := range ev.Records {
		events, rej := usage.Decode([]byte(m.Body), now, backfill)
		for i := range rej {
			rej[i].MessageID = m.MessageId
		}
		all = append(all, events...)
		rejected = append(rejected, rej...)
	}
	log := h.Logger.With("messages", len(ev.Records), "events", len(all), "rejected", len(rejected))
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		log = log.With("request_id", lc.AwsRequestID)
	}
	for _, r := range rejected {
		log.WarnContext(ctx, "usage event quarantined", "message_id", r.MessageID, "event_id", r.EventID, "field", r.Field, "reason", r.Reason)
	}
	inserted, err := h.Events.RecordBatch(ctx, all, rejected)
	if err != nil {
		log.ErrorContext(ctx, "record usage batch failed; the batch will be redelivered", "code", usage.ErrorCode(err), "error", err)
		resp := events.SQSEventResponse{BatchItemFailures: make([]events.SQSBatchItemFailure, len(ev.Records))}
		for i, m := range ev.Records {
			resp.BatchItemFailures[i] = events.SQSBatchItemFailure{ItemIdentifier: m.MessageId}
		}
		return resp, nil
	}
	log.InfoContext(ctx, "usage batch recorded", "inserted", inserted, "duplicates", int64(len(all))-inserted)
	return events.SQSEventResponse{}, nil
}
