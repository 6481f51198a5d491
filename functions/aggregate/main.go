// Command aggregate is the aggregate Lambda function: an EventBridge
// Scheduler target that recomputes the daily rollups of the days whose raw
// usage changed, keeps raw partitions ahead of time, and drops raw
// partitions past retention once every day in them is aggregated.
//
// Environment: DATABASE_URL, or DATABASE_SECRET_ARN (a Secrets Manager
// secret holding the URL or {"url": ...}); DATABASE_PROXY=true when the URL
// points at RDS Proxy; RETENTION_DAYS (default 90).
package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/nexus/usage/shared/awsconfig"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/usage"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	ctx := context.Background()

	retention := usage.DefaultRetentionDays
	if v := os.Getenv("RETENTION_DAYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			logger.Error("aggregate: RETENTION_DAYS must be a positive number of days", "value", v)
			os.Exit(1)
		}
		retention = n
	}
	url, err := awsconfig.DatabaseURL(ctx, os.Getenv)
	if err != nil {
		logger.Error("aggregate: database configuration", "error", err.Error())
		os.Exit(1)
	}
	db, err := postgres.Open(ctx, postgres.Config{
		URL:      url,
		MaxConns: 3, // two day workers and the run's own statements
		ExecMode: os.Getenv("DATABASE_PROXY") == "true",
	})
	if err != nil {
		logger.Error("aggregate: open database", "error", err.Error())
		os.Exit(1)
	}
	h := &Handler{
		Rollup:        postgres.NewRollupStore(db),
		Logger:        logger,
		Now:           time.Now,
		RetentionDays: retention,
		Workers:       2,
	}
	lambda.Start(h.Handle)
}
