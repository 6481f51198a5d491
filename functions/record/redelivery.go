package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/nexus/usage/shared/record"
)

// VisibilityAPI is the part of *sqs.Client that delays redeliveries.
type VisibilityAPI interface {
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// deadlineMargin is how long before the invocation's deadline recording
// stops: a statement still running is cancelled on the server (and
// confirmed within postgres.CancelGrace), and the batch's messages still
// get their redelivery delay before Lambda stops the function.
const deadlineMargin = 3 * time.Second

// acceptedAt is when the queue accepted m: its SentTimestamp, or the
// earlier acceptance a redrive from the dead-letter queue carried over
// (record.AcceptedAtAttribute); zero when neither is there.
func acceptedAt(m events.SQSMessage) time.Time {
	var at time.Time
	consider := func(s string) {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms <= 0 {
			return
		}
		if t := time.UnixMilli(ms).UTC(); at.IsZero() || t.Before(at) {
			at = t
		}
	}
	consider(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)])
	if a, ok := m.MessageAttributes[record.AcceptedAtAttribute]; ok && a.StringValue != nil {
		consider(*a.StringValue)
	}
	return at
}

// delayRedelivery hides the messages of a failed batch for
// Redelivery.Delay of their receive count, ten per call, so that an
// outage costs a few receives per message and the queue's maxReceiveCount
// spans it. A failure to do so is logged: the messages then come back
// after the queue's own visibility timeout.
func (h *Handler) delayRedelivery(ctx context.Context, records []events.SQSMessage, log *slog.Logger) {
	if h.Visibility == nil || h.QueueURL == "" {
		return
	}
	r := h.Redelivery
	if r.Base <= 0 {
		r = record.DefaultRedelivery
	}
	for start := 0; start < len(records); start += 10 {
		in := &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(h.QueueURL)}
		for i, m := range records[start:min(start+10, len(records))] {
			receives, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
			in.Entries = append(in.Entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
				ReceiptHandle: aws.String(m.ReceiptHandle), VisibilityTimeout: int32(r.Delay(max(1, receives)) / time.Second)})
		}
		out, err := h.Visibility.ChangeMessageVisibilityBatch(ctx, in)
		if err == nil && len(out.Failed) > 0 {
			err = fmt.Errorf("%d entries failed, the first: %s: %s", len(out.Failed), aws.ToString(out.Failed[0].Code), aws.ToString(out.Failed[0].Message))
		}
		if err != nil {
			log.WarnContext(ctx, "redelivery not delayed; the messages come back after the queue's visibility timeout", "error", err)
			continue
		}
		log.InfoContext(ctx, "redelivery delayed", "messages", len(in.Entries), "first_delay_s", in.Entries[0].VisibilityTimeout)
	}
}
