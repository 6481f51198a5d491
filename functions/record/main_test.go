package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
)

func testEnv(vars map[string]string) *env.Env {
	return env.New(context.Background(), func(k string) string { return vars[k] })
}

// TestSetup refuses bad configuration before anything connects.
func TestSetup(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, bad := range []map[string]string{
		{},
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "soon"},
		// Longer than the event key store remembers ids.
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "46d"},
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "0s"},
		{"DATABASE_URL": "::not a url::"},
		{"DATABASE_URL": "postgres://x", "REDELIVERY_BASE": "100ms"},
		{"DATABASE_URL": "postgres://x", "REDELIVERY_BASE": "10m", "REDELIVERY_MAX": "1m"},
		{"DATABASE_URL": "postgres://x", "REDELIVERY_MAX": "13h"},
	} {
		if _, err := setup(ctx, testEnv(bad), logger); err == nil {
			t.Errorf("setup(%v): no error", bad)
		}
	}
}

// TestSetupWithServices wires the handler from an environment to the
// services a deployed stack gives it (PostgreSQL as behind RDS Proxy, the
// usage and notify queues) and runs it: a batch is recorded and judged by
// BACKFILL_WINDOW, the step after the commit arms the new user's period
// and queues the threshold a later batch reaches on the notify queue, and
// a batch the database fails is hidden on the usage queue for the
// redelivery delay.
func TestSetupWithServices(t *testing.T) {
	url := pgtest.NewURL(t)
	endpoint := pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	ctx := context.Background()
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"} {
		t.Setenv(k, v)
	}
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	newQueue := func(name string) string {
		q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("%s-%x", name, rand.Uint64()))})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(q.QueueUrl)
	}
	usageQueue, notifyQueue := newQueue("usage"), newQueue("notify")
	var logs bytes.Buffer
	h, err := setup(ctx, testEnv(map[string]string{"DATABASE_URL": url, "DATABASE_PROXY": "true", "BACKFILL_WINDOW": "7d",
		"USAGE_QUEUE_URL": usageQueue, "NOTIFY_QUEUE_URL": notifyQueue}), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if c := h.Recorder.Config(); c.Backfill != 7*24*time.Hour || c.Store == nil || c.Now == nil {
		t.Errorf("recorder's configuration = %+v; want a store, a clock and BACKFILL_WINDOW", c)
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, ExecMode: pgtest.Proxy()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	user := uuid.NewString()
	call := func(id string, quantity int, at time.Time) events.SQSMessage {
		body := fmt.Sprintf(`{"event_id":%q,"user_id":%q,"endpoint":"GET /v1/games","method":"GET","status_code":200,"quantity":%d,"occurred_at":%q}`,
			uuid.Must(uuid.NewV7()).String(), user, quantity, at.UTC().Format(time.RFC3339Nano))
		return events.SQSMessage{MessageId: id, Body: body}
	}
	handle := func(records ...events.SQSMessage) events.SQSEventResponse {
		t.Helper()
		resp, err := h.Handle(ctx, events.SQSEvent{Records: records})
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		return resp
	}

	// 10 calls of a new free user now, and one older than the 7-day window.
	now := time.Now()
	if resp := handle(call("m1", 10, now), call("m2", 1, now.AddDate(0, 0, -8))); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v; want every message acknowledged", resp)
	}
	if got := pgtest.Count(t, db, `SELECT coalesce(sum(quantity), 0) FROM eco_api_usage WHERE user_id = $1`, user); got != 10 {
		t.Errorf("%d calls recorded; want 10", got)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events WHERE message_id = 'm2' AND field = 'occurred_at'`); got != 1 {
		t.Errorf("the event 8 days old quarantined %d times; want once, naming occurred_at", got)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_notify_pending WHERE user_id = $1`, user); got != 0 {
		t.Errorf("%d days of the user left pending; want its period armed after the commit", got)
	}

	// 800 more: 810 of the free plan's 1,000 calls reach its 80 % threshold.
	if resp := handle(call("m3", 800, now)); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v; want every message acknowledged", resp)
	}
	var fired string
	if err := db.Pool.QueryRow(ctx, `SELECT event_id::text FROM eco_notify_outbox WHERE user_id = $1`, user).Scan(&fired); err != nil {
		t.Fatalf("no notification event raised: %v", err)
	}
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(notifyQueue), MaxNumberOfMessages: 10, WaitTimeSeconds: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 || !strings.Contains(aws.ToString(out.Messages[0].Body), fired) {
		t.Errorf("the notify queue holds %d messages; want one naming the event %s", len(out.Messages), fired)
	}

	// A batch whose commit fails is reported failed and hidden for the
	// first receive's delay (REDELIVERY_BASE, 1 minute).
	fault := pgtest.NewCommitFault(t, db)
	fault.Arm(t, true)
	m := call("", 1, now)
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(usageQueue), MessageBody: aws.String(m.Body)}); err != nil {
		t.Fatal(err)
	}
	got, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(usageQueue), WaitTimeSeconds: 5,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("receive from the usage queue: %d messages, %v", len(got.Messages), err)
	}
	received := got.Messages[0]
	m.MessageId, m.ReceiptHandle, m.Attributes = aws.ToString(received.MessageId), aws.ToString(received.ReceiptHandle), received.Attributes
	logs.Reset()
	if resp := handle(m); len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != m.MessageId {
		t.Fatalf("Handle = %+v; want the message failed", resp)
	}
	delayed := false
	for line := range strings.Lines(logs.String()) {
		var rec struct {
			Msg      string
			Messages int
			FirstS   int `json:"first_delay_s"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "redelivery delayed" {
			delayed = rec.Messages == 1 && rec.FirstS == 60
		}
	}
	if !delayed {
		t.Errorf("the failed message's redelivery was not delayed 60 s; the log:\n%s", logs.String())
	}
}
