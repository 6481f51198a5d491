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

// move sends msgs to the usage queue, in batches whose messages add up to
// at most MaxPayloadBytes (a larger one alone: its queue took it), then
// deletes from the dead-letter queue those the usage queue took. It
// returns how many moved.
func (r *Redriver) move(ctx context.Context, msgs []types.Message) (int, error) {
	moved := 0
	var errs []error
	for len(msgs) > 0 {
		n, size := 0, 0
		entries := make([]types.SendMessageBatchRequestEntry, 0, len(msgs))
		for _, m := range msgs {
			e := redriveEntry(m, len(entries))
			b := messageBytes(e)
			if n > 0 && size+b > MaxPayloadBytes {
				break
			}
			entries, n, size = append(entries, e), n+1, size+b
		}
		k, err := r.send(ctx, msgs[:n], entries)
		moved += k
		if err != nil {
			errs = append(errs, err)
		}
		msgs = msgs[n:]
	}
	if len(errs) > 0 {
		return moved, fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "some dead-lettered messages were not moved"), errors.Join(errs...))
	}
	return moved, nil
}

// redriveEntry is m's copy for the usage queue, entry i of its batch: its
// body and attributes, with its first acceptance (AcceptedAtAttribute,
// its DLQ copy's SentTimestamp when it carries none).
func redriveEntry(m types.Message, i int) types.SendMessageBatchRequestEntry {
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
	return types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: m.Body, MessageAttributes: attrs}
}

// messageBytes is what e counts against SQS's size limits: its body and
// each attribute's name, type and value.
func messageBytes(e types.SendMessageBatchRequestEntry) int {
	n := len(aws.ToString(e.MessageBody))
	for k, v := range e.MessageAttributes {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

// send sends entries (the copies of msgs, entry i of msgs[i]) to the usage
// queue and deletes from the dead-letter queue the messages it took. It
// returns how many moved.
func (r *Redriver) send(ctx context.Context, msgs []types.Message, entries []types.SendMessageBatchRequestEntry) (int, error) {
	out, err := r.API.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(r.QueueURL), Entries: entries})
	if err != nil {
		return 0, fmt.Errorf("send %d messages back: %w", len(entries), err)
	}
	del := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(r.DLQURL)}
	for _, s := range out.Successful {
		del.Entries = append(del.Entries, types.DeleteMessageBatchRequestEntry{Id: s.Id, ReceiptHandle: msgs[index(s.Id)].ReceiptHandle})
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
	return moved, errors.Join(errs...)
}

// index is the position a batch entry id stands for.
func index(id *string) int {
	i, _ := strconv.Atoi(aws.ToString(id))
	return i
}
