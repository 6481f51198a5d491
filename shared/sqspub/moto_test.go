package sqspub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// TestPublishToMoto sends through a real SQS API (moto_server) and reads
// every event back.
func TestPublishToMoto(t *testing.T) {
	endpoint := pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	ctx := context.Background()
	client := sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("pub-%x", rand.Uint64()))})
	if err != nil {
		t.Fatal(err)
	}
	// The buffer holds every event: what is proven here is the round trip
	// through a real SQS API, not the refusal of a full buffer (tested on
	// its own), which a slow moto_server on a loaded machine would cause.
	p := New(client, *q.QueueUrl, Options{Logger: quiet, BufferSize: 2000})
	want := map[string]bool{}
	for range 1234 {
		e := event("GET /v1/games/{id}")
		if err := p.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if pub, drop := p.Stats(); pub != 1234 || drop != 0 {
		t.Fatalf("Stats() = %d, %d; want 1234, 0", pub, drop)
	}
	got := 0
	for empty := 0; empty < 2; {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 30})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			events, rejected := record.Decode([]byte(*m.Body), time.Now(), usage.DefaultBackfillWindow)
			if len(rejected) > 0 {
				t.Fatalf("message does not decode: %+v", rejected)
			}
			for _, e := range events {
				if want[e.EventID] {
					t.Errorf("event %s received twice", e.EventID)
				}
				want[e.EventID] = true
				got++
			}
		}
	}
	if got != 1234 {
		t.Errorf("received %d events; want 1234", got)
	}
}

// redriveQueues returns a client of moto_server and a dead-letter queue and
// a usage queue of their own there.
func redriveQueues(t *testing.T) (client *sqs.Client, dlq, queue *sqs.CreateQueueOutput) {
	t.Helper()
	endpoint := pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	client = sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	name := fmt.Sprintf("redrive-%x", rand.Uint64())
	var err error
	if dlq, err = client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")}); err != nil {
		t.Fatal(err)
	}
	if queue, err = client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	return client, dlq, queue
}

// TestRedriveMoto moves dead-lettered messages back through a real SQS API
// (moto_server, with the usage queue's redrive policy): every message
// comes back to the usage queue once, with its body, and carries its
// first acceptance (the DLQ copy's SentTimestamp, or the acceptance it
// already carried from an earlier move); the DLQ is left empty.
func TestRedriveMoto(t *testing.T) {
	ctx := context.Background()
	client, dlq, queue := redriveQueues(t)
	earlier := "1767225600000" // 2026-01-01, from an earlier move
	bodies := map[string]string{}
	for i := range 23 {
		in := &sqs.SendMessageInput{QueueUrl: dlq.QueueUrl, MessageBody: aws.String(fmt.Sprintf(`[{"n":%d}]`, i))}
		if i == 0 {
			in.MessageAttributes = map[string]types.MessageAttributeValue{record.AcceptedAtAttribute: {DataType: aws.String("Number"), StringValue: aws.String(earlier)}}
		}
		if _, err := client.SendMessage(ctx, in); err != nil {
			t.Fatal(err)
		}
		bodies[*in.MessageBody] = ""
	}
	// The DLQ copies' own acceptance, which the moved copies must carry.
	before := time.Now().Add(-time.Minute).UnixMilli()
	r := &Redriver{API: client, DLQURL: *dlq.QueueUrl, QueueURL: *queue.QueueUrl}
	res, err := r.Redrive(ctx)
	if err != nil || res.Moved != 23 || res.More {
		t.Fatalf("Redrive = %+v, %v; want 23 moved, no more", res, err)
	}
	for empty := 0; empty < 2; {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: queue.QueueUrl, MaxNumberOfMessages: 10,
			VisibilityTimeout: 60, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			at, ok := bodies[*m.Body]
			if !ok || at != "" {
				t.Errorf("message %s moved twice or never sent", *m.Body)
			}
			a := m.MessageAttributes[record.AcceptedAtAttribute]
			bodies[*m.Body] = aws.ToString(a.StringValue)
		}
	}
	for body, at := range bodies {
		ms, _ := strconv.ParseInt(at, 10, 64)
		switch {
		case body == `[{"n":0}]` && at != earlier:
			t.Errorf("a message moved before came back accepted at %q; want its first acceptance %s", at, earlier)
		case body != `[{"n":0}]` && ms < before:
			t.Errorf("message %s came back accepted at %q; want its DLQ copy's SentTimestamp", body, at)
		}
	}
	if out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: dlq.QueueUrl, WaitTimeSeconds: 1}); err != nil || len(out.Messages) != 0 {
		t.Errorf("the DLQ still holds %d messages (%v)", len(out.Messages), err)
	}
}

// TestRedriveLargeMessagesMoto moves dead-lettered messages whose sizes
// add up to more than one SendMessageBatch takes (10 of 200 KiB: 2 MB
// against SQS's 1 MiB, moto's too): the redrive sends them in batches
// that fit, and every one comes back once.
func TestRedriveLargeMessagesMoto(t *testing.T) {
	ctx := context.Background()
	client, dlq, queue := redriveQueues(t)
	sizes := map[int]bool{}
	for i := range 10 {
		body := fmt.Sprintf("%d:%s", i, strings.Repeat("x", 200*1024))
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: dlq.QueueUrl, MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
		sizes[i] = false
	}
	r := &Redriver{API: client, DLQURL: *dlq.QueueUrl, QueueURL: *queue.QueueUrl}
	res, err := r.Redrive(ctx)
	if err != nil || res.Moved != 10 || res.More {
		t.Fatalf("Redrive = %+v, %v; want 10 moved, no more", res, err)
	}
	for empty := 0; empty < 2; {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: queue.QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			i, err := strconv.Atoi(strings.SplitN(*m.Body, ":", 2)[0])
			if err != nil || sizes[i] || len(*m.Body) < 200*1024 {
				t.Errorf("message %.10s… moved twice, cut or never sent", *m.Body)
			}
			sizes[i] = true
		}
	}
	for i, moved := range sizes {
		if !moved {
			t.Errorf("message %d is not in the usage queue", i)
		}
	}
}
