package devstack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"
	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/cmd/internal/sqspoll"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/sqspub"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// TestRecordThroughQueue runs the path of the usage events end to end
// with the deployed binary: publisher → usage queue (moto_server, redrive
// to the DLQ after 5 receives) → the poller (the local event source
// mapping) → the record bootstrap under the emulator → PostgreSQL. One
// message always fails (the mapping's handler reports it failed without
// passing it on, as a record function failing on it would): it must reach
// the DLQ after exactly 5 receives, while every other event, duplicates
// included, is recorded exactly once and its message deleted.
func TestRecordThroughQueue(t *testing.T) {
	root := testRoot(t)
	emulator := requireRIE(t, root)
	endpoint := pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	db := pgtest.NewDB(t)
	bins := testBootstraps(t, root)
	ctx := testkit.Context(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	client := moto.SQS(endpoint, "us-east-1")
	suffix := fmt.Sprintf("%x", rand.Uint64())
	q, err := moto.CreateQueues(ctx, client, moto.QueueOptions{Name: "usage-" + suffix, DLQName: "usage-dlq-" + suffix,
		VisibilityTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st := &State{DatabaseURL: dbURL(t, db), SQSEndpoint: endpoint, QueueURL: q.URL}
	record, err := rie.Start(ctx, rie.Config{Name: "record", RIE: emulator, Bootstrap: bins["record"],
		Env: functionEnv(testTemplate(t, root).Function("record"), os.Getenv, "us-east-1", st), Timeout: 30 * time.Second, Log: rie.QuietLog(testLog{t})})
	if err != nil {
		t.Fatal(err)
	}
	defer record.Stop()

	// The producer: 600 events in messages of 20, a tenth of them sent twice.
	pub := sqspub.New(client, q.URL, sqspub.Options{BatchSize: 20, MaxAge: time.Hour, Logger: quiet})
	now := time.Now().UTC()
	user := uuid.NewString()
	const n = 600
	for i := range n {
		id, _ := uuid.NewV7()
		e := usage.Event{EventID: id.String(), UserID: user, Endpoint: "GET /v1/games/{id}", Method: "GET",
			StatusCode: 200, OccurredAt: now.Add(-time.Duration(i) * time.Second)}
		copies := 1
		if i%10 == 0 {
			copies = 2
		}
		for range copies {
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
	// The poison: a valid message the mapping's handler below always fails.
	pid, _ := uuid.NewV7()
	poison, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String(fmt.Sprintf(
		`{"v":1,"event_id":%q,"user_id":%q,"endpoint":"GET /poison","method":"GET","status_code":200,"occurred_at":%q}`,
		pid.String(), user, now.Format(time.RFC3339Nano)))})
	if err != nil {
		t.Fatal(err)
	}
	poisonID := aws.ToString(poison.MessageId)

	invoke := sqspoll.LambdaHandler(record)
	var receives atomic.Int64
	handle := func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var rest []events.SQSMessage
		var fail []events.SQSBatchItemFailure
		for _, m := range ev.Records {
			if m.MessageId == poisonID {
				r := receives.Add(1)
				if c, _ := strconv.ParseInt(m.Attributes["ApproximateReceiveCount"], 10, 64); c != r {
					t.Errorf("poison ApproximateReceiveCount = %q; want %d", m.Attributes["ApproximateReceiveCount"], r)
				}
				fail = append(fail, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
				continue
			}
			rest = append(rest, m)
		}
		var resp events.SQSEventResponse
		if len(rest) > 0 {
			var err error
			if resp, err = invoke(ctx, events.SQSEvent{Records: rest}); err != nil {
				return resp, err
			}
		}
		resp.BatchItemFailures = append(resp.BatchItemFailures, fail...)
		return resp, nil
	}
	poller := &sqspoll.Poller{Client: client, QueueURL: q.URL, Handler: handle, BatchSize: 100,
		Window: 200 * time.Millisecond, WaitTime: time.Second, Logger: quiet}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- poller.Run(runCtx) }()

	var dead []types.Message
	for len(dead) == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the poison message never reached the DLQ (%d receives)", receives.Load())
		}
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.DLQURL), WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		dead = out.Messages
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || aws.ToString(dead[0].MessageId) != poisonID {
		t.Fatalf("DLQ holds %d messages; want only the poison %s", len(dead), poisonID)
	}
	if r := receives.Load(); r != 5 {
		t.Errorf("the poison was received %d times before the DLQ; want 5", r)
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
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.URL),
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
