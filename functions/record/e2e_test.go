package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/sqspoll"
	"github.com/nexus/usage/shared/sqspub"
	"github.com/nexus/usage/shared/usage"
)

// TestEndToEnd runs publisher → queue (moto_server, with a DLQ redrive
// policy of 5 receives) → poller → handler → PostgreSQL. One message
// always fails: it must end in the DLQ after 5 receives while every other
// event is recorded exactly once.
func TestEndToEnd(t *testing.T) {
	endpoint := pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	db := pgtest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	suffix := fmt.Sprintf("%x", rand.Uint64())
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("usage-dlq-" + suffix),
		Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}})
	if err != nil {
		t.Fatal(err)
	}
	dlqAttrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("usage-" + suffix),
		Attributes: map[string]string{
			"VisibilityTimeout": "1",
			"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, dlqAttrs.Attributes["QueueArn"]),
		}})
	if err != nil {
		t.Fatal(err)
	}

	// The producer: 600 events in messages of 20, a tenth of them sent twice.
	pub := sqspub.New(client, *q.QueueUrl, sqspub.Options{BatchSize: 20, MaxAge: time.Hour, Logger: quiet})
	now := time.Now().UTC()
	user := uuid.NewString()
	const n = 600
	for i := range n {
		id, _ := uuid.NewV7()
		e := usage.Event{EventID: id.String(), UserID: user, Endpoint: "GET /v1/games/{id}", Method: "GET",
			StatusCode: 200, OccurredAt: now.Add(-time.Duration(i) * time.Second)}
		for range 1 + btoi(i%10 == 0) {
			if err := pub.Publish(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if i%20 == 19 {
			if err := pub.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The poison: a valid message the handler below always fails.
	pid, _ := uuid.NewV7()
	poison, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(fmt.Sprintf(
		`{"v":1,"event_id":%q,"user_id":%q,"endpoint":"GET /poison","method":"GET","status_code":200,"occurred_at":%q}`,
		pid.String(), user, now.Format(time.RFC3339Nano)))})
	if err != nil {
		t.Fatal(err)
	}
	poisonID := *poison.MessageId

	h := &Handler{Events: postgres.NewEventStore(db), Logger: quiet, Now: time.Now}
	receives := 0
	handle := func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var rest []events.SQSMessage
		var fail []events.SQSBatchItemFailure
		for _, m := range ev.Records {
			if m.MessageId == poisonID {
				receives++
				if c, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"]); c != receives {
					t.Errorf("poison ApproximateReceiveCount = %q; want %d", m.Attributes["ApproximateReceiveCount"], receives)
				}
				fail = append(fail, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
				continue
			}
			rest = append(rest, m)
		}
		resp, err := h.Handle(ctx, events.SQSEvent{Records: rest})
		resp.BatchItemFailures = append(resp.BatchItemFailures, fail...)
		return resp, err
	}
	poller := &sqspoll.Poller{Client: client, QueueURL: *q.QueueUrl, Handler: handle, BatchSize: 100,
		Window: 200 * time.Millisecond, WaitTime: time.Second, Logger: quiet}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- poller.Run(runCtx) }()

	var dead []types.Message
	for len(dead) == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the poison message never reached the DLQ (%d receives)", receives)
		}
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: dlq.QueueUrl, WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		dead = out.Messages
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || *dead[0].MessageId != poisonID {
		t.Fatalf("DLQ holds %d messages; want only the poison %s", len(dead), poisonID)
	}
	if receives != 5 {
		t.Errorf("the poison was received %d times before the DLQ; want 5", receives)
	}
	var rows, calls int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_api_usage`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0) FROM eco_usage_counters`).Scan(&calls); err != nil {
		t.Fatal(err)
	}
	if rows != n || calls != n {
		t.Errorf("recorded %d rows, %d calls; want %d each", rows, calls, n)
	}
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range attrs.Attributes {
		if v != "0" {
			t.Errorf("usage queue %s = %s; want 0 (acknowledged messages deleted)", k, v)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
