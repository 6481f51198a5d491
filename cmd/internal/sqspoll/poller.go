package sqspoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// API is the part of *sqs.Client the poller uses.
type API interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Handler is an SQS Lambda handler reporting partial batch failures.
type Handler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// Poller feeds Handler from the queue at QueueURL.
type Poller struct {
	Client   API
	QueueURL string
	Handler  Handler
	// BatchSize is the most messages per handler call, at most 100
	// (default 100).
	BatchSize int
	// Window is how long a batch may gather messages after its first one
	// (default 5s); keep it below the visibility timeout.
	Window time.Duration
	// VisibilityTimeout, when set, overrides the queue's for received
	// messages.
	VisibilityTimeout time.Duration
	// WaitTime is the long-poll wait of one ReceiveMessage while the batch
	// is empty (default 1s).
	WaitTime time.Duration
	// Region goes into the events' AWSRegion and EventSourceARN (default
	// us-east-1).
	Region string
	Logger *slog.Logger
}

// Run polls until ctx is done, then returns nil. Errors of single polls
// are logged and retried after a pause.
func (p *Poller) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if _, err := p.PollOnce(ctx); err != nil && ctx.Err() == nil {
			p.logger().ErrorContext(ctx, "poll usage queue", "error", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
	return nil
}

// PollOnce gathers one batch, hands it to the handler and deletes the
// acknowledged messages. It returns how many messages the batch held (0
// when the queue stayed empty for WaitTime).
func (p *Poller) PollOnce(ctx context.Context) (int, error) {
	msgs, err := p.gather(ctx)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(msgs))}
	for i, m := range msgs {
		ev.Records[i] = p.convert(m)
	}
	resp, herr := p.Handler(ctx, ev)
	failed := map[string]bool{}
	if herr != nil {
		p.logger().ErrorContext(ctx, "usage handler failed; the batch will be redelivered", "messages", len(msgs), "error", herr)
		return len(msgs), nil
	}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	var ack []types.Message
	for _, m := range msgs {
		if !failed[aws.ToString(m.MessageId)] {
			ack = append(ack, m)
		}
	}
	return len(msgs), p.delete(ctx, ack)
}

func (p *Poller) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

// gather receives until BatchSize messages or Window after the first.
func (p *Poller) gather(ctx context.Context) ([]types.Message, error) {
	size := p.BatchSize
	if size <= 0 || size > 100 {
		size = 100
	}
	window := p.Window
	if window <= 0 {
		window = 5 * time.Second
	}
	wait := p.WaitTime
	if wait <= 0 {
		wait = time.Second
	}
	var (
		msgs     []types.Message
		index    = map[string]int{}
		deadline time.Time
	)
	for len(msgs) < size {
		in := &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(p.QueueURL),
			MaxNumberOfMessages:         int32(min(10, size-len(msgs))),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		}
		if p.VisibilityTimeout > 0 {
			in.VisibilityTimeout = int32(p.VisibilityTimeout / time.Second)
		}
		if len(msgs) == 0 {
			in.WaitTimeSeconds = int32(max(wait/time.Second, 1))
		} else {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			in.WaitTimeSeconds = int32(min(left/time.Second, 1))
		}
		out, err := p.Client.ReceiveMessage(ctx, in)
		if err != nil {
			if ctx.Err() != nil {
				return msgs, nil
			}
			if len(msgs) > 0 {
				// Hand over what we have; the error comes back next time.
				break
			}
			return nil, fmt.Errorf("receive usage messages: %w", err)
		}
		for _, m := range out.Messages {
			id := aws.ToString(m.MessageId)
			if i, ok := index[id]; ok { // redelivered within the window
				msgs[i] = m
				continue
			}
			index[id] = len(msgs)
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			return nil, nil
		}
		if len(out.Messages) == 0 && in.WaitTimeSeconds == 0 {
			select { // a short poll came back empty: do not spin
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return msgs, nil
			}
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(window)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	return msgs, nil
}

// convert builds the Lambda event record of a message.
func (p *Poller) convert(m types.Message) events.SQSMessage {
	region := p.Region
	if region == "" {
		region = "us-east-1"
	}
	attrs := map[string]string{}
	for k, v := range m.Attributes {
		attrs[k] = v
	}
	mattrs := map[string]events.SQSMessageAttribute{}
	for k, v := range m.MessageAttributes {
		mattrs[k] = events.SQSMessageAttribute{
			StringValue: v.StringValue, BinaryValue: v.BinaryValue,
			StringListValues: v.StringListValues, BinaryListValues: v.BinaryListValues,
			DataType: aws.ToString(v.DataType),
		}
	}
	return events.SQSMessage{
		MessageId:         aws.ToString(m.MessageId),
		ReceiptHandle:     aws.ToString(m.ReceiptHandle),
		Body:              aws.ToString(m.Body),
		Md5OfBody:         aws.ToString(m.MD5OfBody),
		Attributes:        attrs,
		MessageAttributes: mattrs,
		EventSource:       "aws:sqs",
		EventSourceARN:    queueARN(region, p.QueueURL),
		AWSRegion:         region,
	}
}

// queueARN derives arn:aws:sqs:region:account:name from a queue URL
// (https://host/account/name).
func queueARN(region, url string) string {
	parts := strings.Split(strings.TrimRight(url, "/"), "/")
	if len(parts) < 2 {
		return ""
	}
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", region, parts[len(parts)-2], parts[len(parts)-1])
}

// delete deletes the messages in batches of 10. A message whose delete
// fails is redelivered later; the handler is idempotent.
func (p *Poller) delete(ctx context.Context, msgs []types.Message) error {
	var errs []error
	for start := 0; start < len(msgs); start += 10 {
		chunk := msgs[start:min(start+10, len(msgs))]
		in := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.QueueURL)}
		for i, m := range chunk {
			in.Entries = append(in.Entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
		}
		out, err := p.Client.DeleteMessageBatch(ctx, in)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete usage messages: %w", err))
			continue
		}
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("delete usage message: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
}
