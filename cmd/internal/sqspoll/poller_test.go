package sqspoll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
)

// fakeQueue serves messages m0..m(n-1) once, 10 per receive, and records
// deletions.
type fakeQueue struct {
	next, n  int
	deleted  []string
	receives int
}

func (f *fakeQueue) ReceiveMessage(_ context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.receives++
	out := &sqs.ReceiveMessageOutput{}
	for i := 0; i < int(in.MaxNumberOfMessages) && f.next < f.n; i++ {
		id := fmt.Sprintf("m%d", f.next)
		out.Messages = append(out.Messages, types.Message{MessageId: aws.String(id), ReceiptHandle: aws.String("r-" + id),
			Body: aws.String("{}"), Attributes: map[string]string{"ApproximateReceiveCount": "1"}})
		f.next++
	}
	return out, nil
}

func (f *fakeQueue) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	if len(in.Entries) > 10 {
		return nil, errors.New("too many entries")
	}
	for _, e := range in.Entries {
		f.deleted = append(f.deleted, *e.ReceiptHandle)
	}
	return &sqs.DeleteMessageBatchOutput{}, nil
}

func TestPollOnceDeletesOnlyAcknowledged(t *testing.T) {
	f := &fakeQueue{n: 25}
	var got events.SQSEvent
	p := &Poller{Client: f, QueueURL: "http://localhost/123456789012/usage", BatchSize: 100, Window: 50 * time.Millisecond,
		Handler: func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			got = ev
			return events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: "m3"}, {ItemIdentifier: "m20"}}}, nil
		}}
	n, err := p.PollOnce(context.Background())
	if err != nil || n != 25 {
		t.Fatalf("PollOnce() = %d, %v; want 25", n, err)
	}
	if len(f.deleted) != 23 {
		t.Errorf("deleted %d; want 23", len(f.deleted))
	}
	for _, d := range f.deleted {
		if d == "r-m3" || d == "r-m20" {
			t.Errorf("deleted failed message %s", d)
		}
	}
	r := got.Records[0]
	want := events.SQSMessage{MessageId: "m0", ReceiptHandle: "r-m0", Body: "{}", Attributes: map[string]string{"ApproximateReceiveCount": "1"},
		MessageAttributes: map[string]events.SQSMessageAttribute{}, EventSource: "aws:sqs",
		EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:usage", AWSRegion: "us-east-1"}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}

func TestPollOnceHandlerErrorDeletesNothing(t *testing.T) {
	f := &fakeQueue{n: 5}
	p := &Poller{Client: f, QueueURL: "q", Window: 10 * time.Millisecond,
		Handler: func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
			return events.SQSEventResponse{}, errors.New("boom")
		}}
	if _, err := p.PollOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.deleted) != 0 {
		t.Errorf("deleted %v after a handler error; want nothing", f.deleted)
	}
}

// invoker answers out, err and keeps the payload.
type invoker struct {
	payload []byte
	out     string
	err     error
}

func (i *invoker) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	i.payload = payload
	return []byte(i.out), i.err
}

func TestLambdaHandler(t *testing.T) {
	fn := &invoker{out: `{"batchItemFailures":[{"itemIdentifier":"m1"}]}`}
	resp, err := LambdaHandler(fn)(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m0"}, {MessageId: "m1"}}})
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "m1" {
		t.Errorf("LambdaHandler = %+v, %v; want m1 failed", resp, err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(fn.payload, &ev); err != nil || len(ev.Records) != 2 || ev.Records[1].MessageId != "m1" {
		t.Errorf("payload %s: %v", fn.payload, err)
	}
	for _, fn := range []*invoker{{out: `not json`}, {err: errors.New("emulator gone")}} {
		if _, err := LambdaHandler(fn)(context.Background(), events.SQSEvent{}); err == nil {
			t.Errorf("LambdaHandler with %+v: nil error; want the batch failed", fn)
		}
	}
}
