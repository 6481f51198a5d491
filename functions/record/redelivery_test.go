package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// visibilityLog records ChangeMessageVisibilityBatch calls.
type visibilityLog struct {
	calls []*sqs.ChangeMessageVisibilityBatchInput
}

func (v *visibilityLog) ChangeMessageVisibilityBatch(_ context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	v.calls = append(v.calls, in)
	return &sqs.ChangeMessageVisibilityBatchOutput{}, nil
}

// sqsRecord is a message of one event occurred at occurred, sent (by the
// queue's clock) at sent and received receives times.
func sqsRecord(n int, occurred, sent time.Time, receives int) events.SQSMessage {
	body := fmt.Sprintf(`{"event_id":"0195f3a0-0000-7000-8000-%012d","user_id":"6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5","endpoint":"GET /x","method":"GET","status_code":200,"occurred_at":%q}`,
		n, occurred.Format(time.RFC3339Nano))
	return events.SQSMessage{MessageId: fmt.Sprintf("m%d", n), ReceiptHandle: fmt.Sprintf("r%d", n), Body: body,
		Attributes: map[string]string{"SentTimestamp": strconv.FormatInt(sent.UnixMilli(), 10), "ApproximateReceiveCount": strconv.Itoa(receives)}}
}

// TestHandleJudgesAgeAtAcceptance: events accepted by the queue inside the
// backfill window and recorded hours later, after an outage, are recorded;
// a message moved back from the dead-letter queue is judged at its first
// acceptance (AcceptedAtAttribute), not at its move.
func TestHandleJudgesAgeAtAcceptance(t *testing.T) {
	window := usage.DefaultBackfillWindow
	sent := fixtureNow
	edge := sent.Add(-window + time.Minute)
	redriven := sqsRecord(2, edge.Add(-2*time.Hour), sent.Add(5*time.Hour), 1)
	first := strconv.FormatInt(sent.Add(-2*time.Hour).UnixMilli(), 10)
	redriven.MessageAttributes = map[string]events.SQSMessageAttribute{record.AcceptedAtAttribute: {StringValue: &first, DataType: "Number"}}
	var stored []string
	var rejected []record.Rejection
	h := newHandler(t, &mock.EventStore{RecordBatchFn: func(_ context.Context, _ time.Time, evs []usage.Event, rej []record.Rejection) (int64, error) {
		for _, e := range evs {
			stored = append(stored, e.EventID)
		}
		rejected = append(rejected, rej...)
		return int64(len(evs)), nil
	}}, sent.Add(6*time.Hour), window)
	resp, err := h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{sqsRecord(1, edge, sent, 3), redriven}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v", resp, err)
	}
	if len(stored) != 2 || len(rejected) != 0 {
		t.Errorf("stored %v, quarantined %+v; want both events stored, none quarantined as too old", stored, rejected)
	}
}

// TestHandleDelaysRedelivery: when recording fails for the
// infrastructure, every message is reported failed and hidden for the
// redelivery delay of its receive count, ten per call.
func TestHandleDelaysRedelivery(t *testing.T) {
	vis := &visibilityLog{}
	h := newHandler(t, &mock.EventStore{RecordBatchFn: func(context.Context, time.Time, []usage.Event, []record.Rejection) (int64, error) {
		return 0, usage.Errorf(usage.CodeUnavailable, "database unavailable")
	}}, fixtureNow, 0)
	h.Visibility, h.QueueURL = vis, "http://sqs.test/000000000000/usage"
	var records []events.SQSMessage
	receives := []int{1, 3, 20, 1, 1, 1, 1, 1, 1, 1, 2, 5}
	for i, r := range receives {
		records = append(records, sqsRecord(i+1, fixtureNow, fixtureNow, r))
	}
	resp, err := h.Handle(context.Background(), events.SQSEvent{Records: records})
	if err != nil || len(resp.BatchItemFailures) != len(records) {
		t.Fatalf("Handle = %d failures, %v; want all %d", len(resp.BatchItemFailures), err, len(records))
	}
	if len(vis.calls) != 2 || len(vis.calls[0].Entries) != 10 || len(vis.calls[1].Entries) != 2 {
		t.Fatalf("%d ChangeMessageVisibilityBatch calls; want 2 (10 + 2 entries)", len(vis.calls))
	}
	var got []int32
	for _, c := range vis.calls {
		if aws.ToString(c.QueueUrl) != h.QueueURL {
			t.Errorf("queue %q", aws.ToString(c.QueueUrl))
		}
		for _, e := range c.Entries {
			got = append(got, e.VisibilityTimeout)
		}
	}
	want := []int32{60, 240, 900, 60, 60, 60, 60, 60, 60, 60, 120, 900}
	for i := range want {
		if got[i] != want[i] || aws.ToString(vis.calls[i/10].Entries[i%10].ReceiptHandle) != records[i].ReceiptHandle {
			t.Errorf("message %d (received %d times): hidden %d s; want %d", i, receives[i], got[i], want[i])
		}
	}

	// Acknowledged batches, and failures of the data, change nothing.
	vis.calls = nil
	h.Recorder = newRecorder(t, &mock.EventStore{RecordBatchFn: func(_ context.Context, _ time.Time, evs []usage.Event, _ []record.Rejection) (int64, error) {
		return int64(len(evs)), nil
	}}, fixtureNow, 0)
	if _, err := h.Handle(context.Background(), events.SQSEvent{Records: records}); err != nil || len(vis.calls) != 0 {
		t.Errorf("a recorded batch changed visibility %d times", len(vis.calls))
	}
}

// TestHandleStopsBeforeDeadline: recording ends deadlineMargin before the
// invocation's deadline, so that the failed batch's redelivery is still
// delayed.
func TestHandleStopsBeforeDeadline(t *testing.T) {
	deadline := time.Now().Add(30 * time.Second)
	var got time.Time
	h := newHandler(t, &mock.EventStore{RecordBatchFn: func(ctx context.Context, _ time.Time, evs []usage.Event, _ []record.Rejection) (int64, error) {
		got, _ = ctx.Deadline()
		return int64(len(evs)), nil
	}}, fixtureNow, 0)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, err := h.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{sqsRecord(1, fixtureNow, fixtureNow, 1)}}); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(deadline.Add(-deadlineMargin)) {
		t.Errorf("recording's deadline %s; want %s before the invocation's", got, deadlineMargin)
	}
}
