package sqspub

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// RedriveAPI is the part of *sqs.Client a Redriver uses.
type RedriveAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Redriver moves the messages of the usage dead-letter queue (DLQURL) back
// to the usage queue (QueueURL). It implements record.Redriver.
//
// It moves them itself, ten at a time (receive, send, delete), rather than
// with SQS's StartMessageMoveTask, so that each copy carries the message's
// first acceptance in record.AcceptedAtAttribute: the copy's own
// SentTimestamp is the move's, and the record path judges an event's age
// at its acceptance. A message is deleted from the dead-letter queue only
// once the usage queue has its copy; a failure in between leaves it in
// both, which the event ids make harmless.
//
// See the example.
type Redriver struct {
	API      RedriveAPI
	DLQURL   string
	QueueURL string
}

var _ record.Redriver = (*Redriver)(nil)

// redriveVisibility hides the messages being moved from other receivers of
// the dead-letter queue; one not deleted comes back after it.
const redriveVisibility = 60

// Redrive implements record.Redriver. It stops when two receives in a row
// (a second's long poll each) find the dead-letter queue empty, or when
// ctx ends (More is then true).
func (r *Redriver) Redrive(ctx context.Context) (record.RedriveResult, error) {
	var res record.RedriveResult
	for empty := 0; empty < 2; {
		if ctx.Err() != nil {
			res.More = true
			return res, nil
		}
		out, err := r.API.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(r.DLQURL), MaxNumberOfMessages: 10,
			VisibilityTimeout: redriveVisibility, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameSentTimestamp},
			MessageAttributeNames:       []string{"All"}})
		if err != nil {
			if ctx.Err() != nil {
				res.More = true
				return res, nil
			}
			return res, fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "the dead-letter queue cannot be read"), err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		n, err := r.move(ctx, out.Messages)
		res.Moved += n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// move sends msgs to the usage queue, then deletes from the dead-letter
// queue those the usage queue took. It returns how many moved.
func (r *Redriver) move(ctx context.Context, msgs []types.Message) (int, error) {
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(r.QueueURL)}
	for i, m := range msgs {
		attrs := map[string]types.MessageAttributeValue{}
		for k, v := range m.MessageAttributes {
			attrs[k] = v
		}
		if _, ok := attrs[record.AcceptedAtAttribute]; !ok {
			if sent, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
				attrs[record.AcceptedAtAttribute] = types.MessageAttributeValue{DataType: aws.String("Number"),
					StringValue: aws.String(strconv.FormatInt(sent, 10))}
			}
		}
		in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
			MessageBody: m.Body, MessageAttributes: attrs})
	}
	out, err := r.API.SendMessageBatch(ctx, in)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "the usage queue cannot be reached"), err)
	}
	del := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(r.DLQURL)}
	for _, s := range out.Successful {
		i, _ := strconv.Atoi(aws.ToString(s.Id))
		del.Entries = append(del.Entries, types.DeleteMessageBatchRequestEntry{Id: s.Id, ReceiptHandle: msgs[i].ReceiptHandle})
	}
	var errs []error
	for _, f := range out.Failed {
		errs = append(errs, fmt.Errorf("send %s back: %s: %s", aws.ToString(msgs[index(f.Id)].MessageId), aws.ToString(f.Code), aws.ToString(f.Message)))
	}
	moved := len(del.Entries)
	if moved > 0 {
		dout, err := r.API.DeleteMessageBatch(ctx, del)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("delete moved messages from the dead-letter queue (they will be moved again, harmlessly): %w", err))
		case len(dout.Failed) > 0:
			errs = append(errs, fmt.Errorf("delete %d moved messages from the dead-letter queue (they will be moved again, harmlessly)", len(dout.Failed)))
		}
	}
	if len(errs) > 0 {
		return moved, fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "some dead-lettered messages were not moved"), errors.Join(errs...))
	}
	return moved, nil
}

// index is the position a batch entry id stands for.
func index(id *string) int {
	i, _ := strconv.Atoi(aws.ToString(id))
	return i
}
