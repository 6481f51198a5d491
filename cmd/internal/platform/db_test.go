package platform

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// TestNew runs the service as New wires it, over a database of its own and
// a queue in moto_server: a free user's API key gets its burst of 10, then
// 429 with the headers of the decision; its JWT is limited apart (per
// user); Close sends every served request's event to the queue, in
// SendMessageBatch calls the metrics count.
func TestNew(t *testing.T) {
	url := pgtest.NewURL(t)
	endpoint := pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	ctx := context.Background()
	client := moto.SQS(endpoint, "us-east-1")
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("platform-%x", rand.Uint64()))})
	if err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, k, err := auth.NewAPIKey(testUser, "platform test")
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewAPIKeyStore(db).CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	// A clock that stands still: the burst does not refill mid-test,
	// however slow the machine.
	now := time.Now().UTC()
	clock := func() time.Time { return now }
	jwt := auth.JWTConfig{Issuer: "nexus", Audience: "api", Algorithms: []string{"HS256"}, HMACSecret: []byte("0123456789abcdef0123456789abcdef"), Now: clock}
	api, err := New(ctx, Config{DatabaseURL: url, SQS: client, QueueURL: *q.QueueUrl, JWT: jwt, Logger: quiet, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()

	get := func(hdr, val string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/games/2", nil)
		req.Header.Set(hdr, val)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 10 {
		if resp := get("X-Api-Key", key); resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Remaining") != fmt.Sprint(9-i) {
			t.Fatalf("call %d: %d, remaining %q", i+1, resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
		}
	}
	resp := get("X-Api-Key", key)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Policy") == "" ||
		resp.Header.Get("RateLimit") == "" || resp.Header.Get("X-RateLimit-Limit") != "10" {
		t.Fatalf("call 11: %d %v; want 429 with the rate limit headers", resp.StatusCode, resp.Header)
	}
	tok, err := auth.Sign(jwt.HMACSecret, "nexus", "api", testUser, false, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if resp := get("Authorization", "Bearer "+tok); resp.StatusCode != 200 {
		t.Fatalf("JWT call: %d", resp.StatusCode)
	}
	srv.Close()
	if err := api.Close(ctx); err != nil {
		t.Fatal(err)
	}

	m := api.Metrics(time.Time{})
	if m.Served.Count != 11 || m.Refused.Count != 1 || m.Usage.Published != 11 || m.Usage.SendMessageBatchCalls < 1 {
		t.Errorf("metrics %+v; want 11 served and published, 1 refused, at least one SendMessageBatch", m)
	}
	var got []usage.Event
	for empty := 0; empty < 2; {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			empty++
		}
		for _, msg := range out.Messages {
			events, rejected := record.Decode([]byte(*msg.Body), now, usage.DefaultBackfillWindow)
			if len(rejected) > 0 {
				t.Fatalf("message does not decode: %+v", rejected)
			}
			got = append(got, events...)
		}
	}
	keyed := 0
	for _, e := range got {
		if e.UserID != testUser || e.Endpoint != "GET /v1/games/{id}" || e.StatusCode != 200 {
			t.Errorf("event %+v", e)
		}
		if e.APIKeyID == k.ID {
			keyed++
		}
	}
	if len(got) != 11 || keyed != 10 {
		t.Errorf("%d events in the queue, %d with the key; want 11 and 10", len(got), keyed)
	}
}
