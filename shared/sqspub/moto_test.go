package sqspub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nexus/usage/shared/postgres/pgtest"
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
	p := New(client, *q.QueueUrl, Options{Logger: quiet})
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
			events, rejected := usage.Decode([]byte(*m.Body), time.Now(), usage.DefaultBackfillWindow)
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
