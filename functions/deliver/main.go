// Command deliver is the deliver Lambda function: it delivers the
// notification workflow's outbox (thresholds reached, hard quotas,
// endpoints disabled) as signed webhooks (Standard Webhooks) to the users'
// and the platform's endpoints and onto the EventBridge bus, retrying
// failed deliveries through the notify queue's delay and visibility, and
// sweeps every minute for what the queue did not carry (see Handler).
//
// Configuration (environment):
//
//	DATABASE_URL         PostgreSQL URL (local runs), or
//	DATABASE_SECRET_ARN  Secrets Manager secret holding it: a JSON object
//	                     with key "url", or the URL itself
//	DATABASE_PROXY       "true" when the URL points at RDS Proxy
//	NOTIFY_QUEUE_URL     the notify queue: retries and raised events go
//	                     there, and its messages are hidden until due
//	ALERT_BUS_NAME       the EventBridge bus that receives every event too
//	                     (unset: none)
//	ENDPOINT_DISABLE_AFTER  how long an endpoint may fail every attempt
//	                     before it is disabled (default 5d, at least 1h)
//	WEBHOOK_ALLOW_PRIVATE   "true" lets deliveries go to private and
//	                     loopback addresses: the local stack's receiver;
//	                     never set in AWS
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nexus/usage/shared/alerts"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/sqspub"
	"github.com/nexus/usage/shared/webhook"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := setup(context.Background(), env.New(context.Background(), os.Getenv), logger)
	if err != nil {
		logger.Error("deliver: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

// setup builds the handler from the environment, outside the handler so
// that the pool is made once per Lambda instance.
func setup(ctx context.Context, e *env.Env, logger *slog.Logger) (*Handler, error) {
	url, proxy, err := e.Database()
	queueURL := e.String("NOTIFY_QUEUE_URL", "")
	bus := e.String("ALERT_BUS_NAME", "")
	disableAfter := e.Duration("ENDPOINT_DISABLE_AFTER", notify.DefaultDisableAfter)
	allowPrivate := e.Bool("WEBHOOK_ALLOW_PRIVATE")
	if err == nil {
		err = e.Err()
	}
	if err == nil && disableAfter < time.Hour {
		err = fmt.Errorf("ENDPOINT_DISABLE_AFTER: want at least 1h, got %s", disableAfter)
	}
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 4, ExecMode: proxy})
	if err != nil {
		return nil, err
	}
	store := postgres.NewNotifyStore(db)
	c := notify.DispatcherConfig{Store: store, Sender: webhook.New(webhook.Options{AllowPrivate: allowPrivate}),
		DisableAfter: disableAfter, Now: time.Now, Logger: logger}
	h := &Handler{Armer: &notify.Armer{Store: store, Now: time.Now}, QueueURL: queueURL, Logger: logger}
	if queueURL != "" || bus != "" {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("load AWS config: %w", err)
		}
		if queueURL != "" {
			client := sqs.NewFromConfig(awsCfg)
			h.Visibility, c.Queue = client, sqspub.NewNotifyQueue(client, queueURL)
		}
		if bus != "" {
			c.Bus = alerts.NewEventBridge(eventbridge.NewFromConfig(awsCfg), bus)
		}
	}
	if h.Dispatcher, err = notify.NewDispatcher(c); err != nil {
		db.Close()
		return nil, err
	}
	if queueURL == "" {
		logger.Warn("NOTIFY_QUEUE_URL is not set: retries wait for the sweep")
	}
	if allowPrivate {
		logger.Warn("WEBHOOK_ALLOW_PRIVATE is set: deliveries may go to private and loopback addresses (local stack only)")
	}
	return h, nil
}
