package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// Handler records the usage events of SQS batches with a record.Recorder.
type Handler struct {
	Recorder *record.Recorder
	Logger   *slog.Logger
	// Visibility, on QueueURL, hides the messages of a batch that failed
	// for the infrastructure for Redelivery's delay (DefaultRedelivery
	// when zero); nil: they come back after the queue's visibility
	// timeout.
	Visibility VisibilityAPI
	QueueURL   string
	Redelivery record.Redelivery
}

// Handle records the batch: valid events are stored once, invalid input and
// events the database refuses are quarantined, and those messages are
// acknowledged (redelivery cannot fix them). When recording fails for a
// reason that is not the data's (the database is unreachable or busy),
// every message of the batch is reported as a batch item failure and SQS
// redelivers it, after a delay that grows with each receive
// (delayRedelivery); the event ids make the redelivery harmless. An event's
// age is judged at its message's acceptance by the queue (acceptedAt), so
// that a batch held up by an outage is recorded, not quarantined as too
// old. The error result is always nil: failures are reported per message.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	msgs := make([]record.Message, len(ev.Records))
	for i, m := range ev.Records {
		msgs[i] = record.Message{ID: m.MessageId, Body: []byte(m.Body), AcceptedAt: acceptedAt(m)}
	}
	log := h.Logger.With("messages", len(msgs))
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		log = log.With("request_id", lc.AwsRequestID)
	}
	work := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadline(ctx, deadline.Add(-deadlineMargin))
		defer cancel()
	}
	res, err := h.Recorder.Record(work, msgs)
	if err != nil {
		log.ErrorContext(ctx, "record usage batch failed; the batch will be redelivered", "code", usage.ErrorCode(err), "error", err)
		h.delayRedelivery(ctx, ev.Records, log)
		resp := events.SQSEventResponse{BatchItemFailures: make([]events.SQSBatchItemFailure, len(ev.Records))}
		for i, m := range ev.Records {
			resp.BatchItemFailures[i] = events.SQSBatchItemFailure{ItemIdentifier: m.MessageId}
		}
		return resp, nil
	}
	for _, r := range res.Rejected {
		log.WarnContext(ctx, "usage event quarantined", "message_id", r.MessageID, "position", r.Position,
			"event_id", r.EventID, "field", r.Field, "reason", r.Reason)
	}
	log.InfoContext(ctx, "usage batch recorded", "events", res.Events, "inserted", res.Inserted,
		"duplicates", res.Duplicates, "rejected", len(res.Rejected), "refused", res.Refused, "writes", res.Writes)
	return events.SQSEventResponse{}, nil
}
