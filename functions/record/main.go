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
//	                     remembers ids for no longer)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres"
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
	if err == nil {
		err = e.Err()
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
	rec := &usage.Recorder{Store: postgres.NewEventStore(db), Now: time.Now, Backfill: backfill}
	return &Handler{Recorder: rec, Logger: logger}, nil
}
