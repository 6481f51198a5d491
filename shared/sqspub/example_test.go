package sqspub_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/sqspub"
	"github.com/nexus/usage/shared/usage"
)

// Example publishes usage events from a service: one publisher per
// process, closed on shutdown, flushed by a Lambda handler before it
// returns (a frozen Lambda runs no timers). It needs a queue, so it is
// compiled, not run; the package's tests run it against moto_server.
func Example() {
	ctx := context.Background()
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	pub := sqspub.New(sqs.NewFromConfig(cfg), os.Getenv("USAGE_QUEUE_URL"), sqspub.Options{Logger: logger})
	defer pub.Close(ctx)

	err = pub.Publish(ctx, usage.Event{
		EventID: uuid.NewString(), UserID: "0b0e6f4e-3d0a-4b8c-9d51-6f1f3c1e2a10",
		Endpoint: "GET /v1/games/{id}", Method: "GET", StatusCode: 200, LatencyMS: 12,
		Quantity: 1, OccurredAt: time.Now().UTC(),
	})
	if err != nil { // CodeUnavailable: the buffer stayed full (counted and logged)
		fmt.Println(err)
	}
	// in a Lambda handler, before returning:
	if err := pub.Flush(ctx); err != nil {
		fmt.Println(err)
	}
}

// ExampleRedriver moves the dead-letter queue's messages back to the usage
// queue, each with its first acceptance. Compiled, not run (it needs the
// queues).
func ExampleRedriver() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	r := &sqspub.Redriver{API: sqs.NewFromConfig(cfg), DLQURL: os.Getenv("DLQ_URL"), QueueURL: os.Getenv("USAGE_QUEUE_URL")}
	res, err := r.Redrive(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Moved, "moved; run again:", res.More)
}
