// Command record is the record Lambda function: it records the usage events
// of the usage queue's batches exactly once (see Handler).
//
// Configuration (environment):
//
//	DATABASE_URL         PostgreSQL URL (local runs), or
//	DATABASE_SECRET_ARN  Secrets Manager secret holding it: a JSON object
//	                     with key "url", or the URL itself
//	DATABASE_PROXY       "true" when the URL points at RDS Proxy: pgx runs
//	                     without statement caches (no session state)
//	BACKFILL_WINDOW      how old an event may be: a Go duration ("840h") or
//	                     days ("35d"); default 35 days, at most 45 days
//	                     (usage.MaxBackfillWindow: the event key store
//	                     remembers ids for no longer), judged at the
//	                     message's acceptance by the queue
//	USAGE_QUEUE_URL      the usage queue, whose failed batches' messages
//	                     the function hides for REDELIVERY_BASE (default
//	                     1m) doubled on each receive up to REDELIVERY_MAX
//	                     (default 15m); unset: the queue's visibility
//	                     timeout
//	NOTIFY_QUEUE_URL     the notify queue: after a batch's commit the
//	                     function queues the notification events its
//	                     counters raised (thresholds reached) and arms the
//	                     periods the batch found unarmed; unset: the deliver
//	                     function's sweep finds both within a minute
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/sqspub"
	"github.com/nexus/usage/shared/usage"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := setup(context.Background(), env.New(context.Background(), os.Getenv), logger)
	if err != nil {
		logger.Error("record: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

// setup builds the handler from the environment, outside the handler so
// that the pool is made once per Lambda instance.
func setup(ctx context.Context, e *env.Env, logger *slog.Logger) (*Handler, error) {
	url, proxy, err := e.Database()
	backfill := e.Duration("BACKFILL_WINDOW", usage.DefaultBackfillWindow)
	queueURL := e.String("USAGE_QUEUE_URL", "")
	notifyURL := e.String("NOTIFY_QUEUE_URL", "")
	redelivery := record.Redelivery{Base: e.Duration("REDELIVERY_BASE", record.DefaultRedelivery.Base),
		Max: e.Duration("REDELIVERY_MAX", record.DefaultRedelivery.Max)}
	if err == nil {
		err = e.Err()
	}
	if err == nil && (redelivery.Base < time.Second || redelivery.Max < redelivery.Base || redelivery.Max > record.MaxVisibilityTimeout) {
		err = fmt.Errorf("REDELIVERY_BASE, REDELIVERY_MAX: want 1s ≤ base ≤ max ≤ %s, got %s and %s", record.MaxVisibilityTimeout, redelivery.Base, redelivery.Max)
	}
	if err == nil {
		if werr := usage.CheckBackfillWindow(backfill); werr != nil {
			err = fmt.Errorf("BACKFILL_WINDOW: %s", usage.ErrorMessage(werr))
		}
	}
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2, ExecMode: proxy})
	if err != nil {
		return nil, err
	}
	// One clock for the record path: the Recorder judges and records each
	// batch at it, and the arming after the commit reads it.
	clock := time.Now
	// After each commit that raised notification events or left periods
	// unarmed: queue the events, arm the periods (the deliver function's
	// sweep does both when this cannot).
	after := &notify.Recorded{Armer: &notify.Armer{Store: postgres.NewNotifyStore(db), Now: clock}, Logger: logger}
	store := postgres.NewEventStore(db).AfterCommit(after.After)
	rec, err := record.New(record.Config{Store: store, Now: clock, Backfill: backfill})
	if err != nil {
		db.Close()
		return nil, err
	}
	h := &Handler{Recorder: rec, Logger: logger, QueueURL: queueURL, Redelivery: redelivery}
	if queueURL != "" || notifyURL != "" {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("load AWS config: %w", err)
		}
		client := sqs.NewFromConfig(awsCfg)
		if queueURL != "" {
			h.Visibility = client
		}
		if notifyURL != "" {
			after.Queue = sqspub.NewNotifyQueue(client, notifyURL)
		}
	}
	if queueURL == "" {
		logger.Warn("USAGE_QUEUE_URL is not set: failed batches come back after the queue's visibility timeout, without backoff")
	}
	if notifyURL == "" {
		logger.Warn("NOTIFY_QUEUE_URL is not set: notification events wait for the deliver function's sweep")
	}
	return h, nil
}
