package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/nexus/usage/shared/usage"
)

// Handler records the usage events of SQS batches with a usage.Recorder.
type Handler struct {
	Recorder *usage.Recorder
	Logger   *slog.Logger
}

// Handle records the batch: valid events are stored once, invalid input and
// events the database refuses are quarantined, and those messages are
// acknowledged (redelivery cannot fix them). When recording fails for a
// reason that is not the data's (the database is unreachable or busy),
// every message of the batch is reported as a batch item failure and SQS
// redelivers it; the event ids make the redelivery harmless. The error
// result is always nil: failures are reported per message.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	msgs := make([]usage.Message, len(ev.Records))
	for i, m := range ev.Records {
		msgs[i] = usage.Message{ID: m.MessageId, Body: []byte(m.Body)}
	}
	log := h.Logger.With("messages", len(msgs))
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		log = log.With("request_id", lc.AwsRequestID)
	}
	res, err := h.Recorder.Record(ctx, msgs)
	if err != nil {
		log.ErrorContext(ctx, "record usage batch failed; the batch will be redelivered", "code", usage.ErrorCode(err), "error", err)
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
