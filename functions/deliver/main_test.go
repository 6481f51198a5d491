package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
	"github.com/nexus/usage/shared/webhook"
)

func testEnv(vars map[string]string) *env.Env {
	return env.New(context.Background(), func(k string) string { return vars[k] })
}

// TestSetupWithServices wires the handler from an environment to the
// services a deployed stack gives it (PostgreSQL, the notify queue; the
// local stack's WEBHOOK_ALLOW_PRIVATE for the receiver on the loopback)
// and runs it: a user's 80 % event, handled from its queue message, is
// attempted at an endpoint that answers 503; the retry goes to the notify
// queue with its delay, and handled from there it is delivered, signed
// with the endpoint's secret. The schedule's invocation then sweeps and
// finds nothing left.
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
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("notify-%x", rand.Uint64()))})
	if err != nil {
		t.Fatal(err)
	}
	queueURL := aws.ToString(q.QueueUrl)
	h, err := setup(ctx, testEnv(map[string]string{"DATABASE_URL": url, "NOTIFY_QUEUE_URL": queueURL,
		"WEBHOOK_ALLOW_PRIVATE": "true"}), quiet)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if c := h.Dispatcher.Config(); h.Visibility == nil || c.Queue == nil || h.QueueURL != queueURL || c.DisableAfter != notify.DefaultDisableAfter {
		t.Errorf("handler %+v, dispatcher %+v; want the notify queue and the default ENDPOINT_DISABLE_AFTER", h, c)
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, ExecMode: pgtest.Proxy()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)

	// The platform's endpoint: 503 once, then 200.
	var (
		mu     sync.Mutex
		secret string
		got    []int
		status = []int{http.StatusServiceUnavailable}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 0); err != nil {
			t.Errorf("a webhook whose signature does not verify: %v", err)
		}
		code := http.StatusOK
		if len(status) > 0 {
			code, status = status[0], status[1:]
		}
		got = append(got, code)
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	service := &notify.Service{Store: postgres.NewNotifyStore(db), AllowPrivate: true, Now: time.Now}
	e, err := service.CreateEndpoint(ctx, notify.Owner{Admin: true}, "", notify.EndpointInput{URL: &srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = e.Secret
	mu.Unlock()

	// 10 calls of a new free user, its period armed, then 800 more: 810 of
	// the free plan's 1,000 calls reach its 80 % threshold.
	store, user := postgres.NewEventStore(db), uuid.NewString()
	record := func(n int) {
		t.Helper()
		evs := make([]usage.Event, n)
		for i := range evs {
			evs[i] = usage.Event{Version: 1, EventID: uuid.Must(uuid.NewV7()).String(), UserID: user, Endpoint: "GET /v1/games",
				Method: "GET", StatusCode: 200, Quantity: 1, OccurredAt: time.Now().UTC()}
		}
		if _, err := store.RecordBatch(ctx, time.Now(), evs, nil); err != nil {
			t.Fatal(err)
		}
	}
	record(10)
	if _, _, err := h.Armer.ArmPending(ctx, 0); err != nil {
		t.Fatal(err)
	}
	record(800)
	var eventID string
	if err := db.Pool.QueryRow(ctx, `SELECT event_id::text FROM eco_notify_outbox WHERE user_id = $1::uuid`, user).Scan(&eventID); err != nil {
		t.Fatalf("no event raised: %v", err)
	}

	handle := func(m events.SQSMessage) events.SQSEventResponse {
		t.Helper()
		m.EventSource = "aws:sqs"
		raw, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{m}})
		out, err := h.Handle(ctx, raw)
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		return out.(events.SQSEventResponse)
	}
	if resp := handle(events.SQSMessage{MessageId: "m1", Body: fmt.Sprintf(`{"event_id":%q}`, eventID)}); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("the event's message: %+v; want it acknowledged, its retry queued", resp)
	}
	// The retry is delayed 5 s: long polls until it is visible, however
	// slow the machine (a poll that finds nothing is not a failure).
	var out *sqs.ReceiveMessageOutput
	for range 8 {
		out, err = client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), WaitTimeSeconds: 15,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
		if err != nil || len(out.Messages) > 0 {
			break
		}
	}
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive the retry from the notify queue: %d messages, %v", len(out.Messages), err)
	}
	m := out.Messages[0]
	if resp := handle(events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
		Body: aws.ToString(m.Body), Attributes: m.Attributes}); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("the retry's message: %+v; want it delivered", resp)
	}
	mu.Lock()
	if fmt.Sprint(got) != "[503 200]" {
		t.Errorf("the endpoint answered %v; want 503, then 200 to the retry", got)
	}
	mu.Unlock()
	ds, err := service.Deliveries(ctx, notify.Owner{Admin: true}, notify.DeliveryFilter{})
	if err != nil || len(ds) != 1 || ds[0].Status != notify.StatusDelivered || ds[0].Attempts != 2 {
		t.Errorf("deliveries %+v, %v; want one, delivered at its second attempt", ds, err)
	}
	rep, err := h.Handle(ctx, json.RawMessage(`{"sweep":true}`))
	if err != nil || *rep.(*SweepReport) != (SweepReport{}) {
		t.Errorf("sweep: %+v, %v; want nothing left to do", rep, err)
	}
}
