package soak

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/shared/usage"
)

// drain waits until the usage queue is empty (no message visible or in
// flight), no batch is in flight and the recorded and quarantined rows
// have not moved for three checks a second apart. It has no deadline of
// its own: ctx bounds it.
func (r *runner) drain(ctx context.Context) error {
	client := moto.SQS(r.state.SQSEndpoint, r.state.Region)
	rec := r.st.Lambda("record")
	last, stable := int64(-1), 0
	for stable < 3 {
		if err := ctx.Err(); err != nil {
			return err
		}
		sleep(ctx, time.Second)
		queued, err := queueDepth(ctx, client, r.state.QueueURL)
		if err != nil {
			stable = 0
			continue
		}
		var rows int64
		if err := r.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM eco_api_usage) + (SELECT count(*) FROM eco_rejected_events)`).Scan(&rows); err != nil {
			stable = 0
			continue
		}
		if queued == 0 && !rec.InFlight() && rows == last {
			stable++
		} else {
			stable = 0
		}
		last = rows
	}
	return nil
}

// queueDepth is a queue's messages visible plus in flight.
func queueDepth(ctx context.Context, client *sqs.Client, url string) (int, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range out.Attributes {
		c, _ := strconv.Atoi(v)
		n += c
	}
	return n, nil
}

// deadLetter is one message of the DLQ, decoded.
type deadLetter struct {
	id       string
	receives int // on the usage queue, before it moved
	events   []usage.Event
	rejected []usage.Rejection
}

// deadLetters reads every message of the DLQ once.
func (r *runner) deadLetters(ctx context.Context) ([]deadLetter, error) {
	client := moto.SQS(r.state.SQSEndpoint, r.state.Region)
	var all []deadLetter
	for empty := 0; empty < 2; {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(r.state.DLQURL),
			MaxNumberOfMessages: 10, VisibilityTimeout: 600, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
		if err != nil {
			return nil, err
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			d := deadLetter{id: aws.ToString(m.MessageId)}
			// This receive, from the DLQ, is counted too.
			d.receives, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
			d.receives--
			d.events, d.rejected = usage.Decode([]byte(aws.ToString(m.Body)), time.Now(), usage.DefaultBackfillWindow)
			all = append(all, d)
		}
	}
	return all, nil
}
