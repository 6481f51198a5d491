// Command aggregate is the aggregate Lambda function: an EventBridge
// Scheduler target that recomputes the daily rollups of the days whose raw
// usage changed, keeps raw partitions ahead of time, and drops raw
// partitions past retention once every day in them is aggregated.
//
// Environment: DATABASE_URL, or DATABASE_SECRET_ARN (a Secrets Manager
// secret holding the URL or {"url": ...}); DATABASE_PROXY=true when the URL
// points at RDS Proxy; RETENTION_DAYS (default 90); BACKFILL_WINDOW, the
// record function's (default 35d); MAX_ENDPOINTS_PER_DAY, the endpoints
// of one user and day the rollup keeps by name, the rest under "(other)"
// (default 1,000, rollup.DefaultMaxEndpointsPerDay; 1 to 100,000). Retention
// shorter than the backfill window plus usage.BackfillMargin is refused: a
// late event would land in a month already dropped.
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
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := setup(context.Background(), env.New(context.Background(), os.Getenv), logger)
	if err != nil {
		logger.Error("aggregate: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

// setup builds the handler from the environment, outside the handler so
// that the pool is made once per Lambda instance.
func setup(ctx context.Context, e *env.Env, logger *slog.Logger) (*Handler, error) {
	url, proxy, err := e.Database()
	retention := e.Int("RETENTION_DAYS", rollup.DefaultRetentionDays)
	backfill := e.Duration("BACKFILL_WINDOW", usage.DefaultBackfillWindow)
	maxEndpoints := e.Int("MAX_ENDPOINTS_PER_DAY", rollup.DefaultMaxEndpointsPerDay)
	if err == nil {
		err = e.Err()
	}
	if err == nil {
		if werr := usage.CheckBackfillWindow(backfill); werr != nil {
			err = fmt.Errorf("BACKFILL_WINDOW: %s", usage.ErrorMessage(werr))
		} else if rerr := usage.CheckRetention(retention, backfill); rerr != nil {
			err = fmt.Errorf("RETENTION_DAYS: %s", usage.ErrorMessage(rerr))
		} else if cerr := rollup.CheckMaxEndpointsPerDay(maxEndpoints); cerr != nil {
			err = fmt.Errorf("MAX_ENDPOINTS_PER_DAY: %s", usage.ErrorMessage(cerr))
		}
	}
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, postgres.Config{
		URL:      url,
		MaxConns: 3, // two day workers and the run's own statements
		ExecMode: proxy,
	})
	if err != nil {
		return nil, err
	}
	now := time.Now
	job, err := rollup.New(rollup.Config{
		Store:              postgres.NewRollupStore(db),
		Now:                now,
		Logger:             logger,
		RetentionDays:      retention,
		MaxEndpointsPerDay: maxEndpoints,
		Workers:            2,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Handler{Rollup: job, Logger: logger, Now: now}, nil
}
