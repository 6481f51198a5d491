// Command overage is the overage billing Lambda function, run daily by an
// EventBridge Scheduler schedule: it closes the billing periods that ended
// more than a grace period ago, writes their ledger rows and bills the
// overage as Stripe invoice items, exactly once. Without a Stripe key it
// makes a dry run: it reports what a real run would bill and writes no
// ledger row. Every run is recorded in eco_job_runs.
//
// Environment:
//
//	DATABASE_URL or DATABASE_SECRET_ARN   PostgreSQL URL, or a Secrets Manager secret holding it (key "url" or the plain URL)
//	DATABASE_PROXY=true                   pgx without statement caches (RDS Proxy)
//	STRIPE_API_KEY or STRIPE_SECRET_ARN   Stripe secret key, or a secret holding it (key "api_key" or the plain key); neither: dry run
//	STRIPE_API_URL                        Stripe base URL (stripe-mock)
//	STRIPE_MAX_RPS (default 20)           client-side cap on Stripe requests per second; 0: none
//	STRIPE_MAX_NETWORK_RETRIES (default 2)
//	GRACE_PERIOD (default 24h)            how long after its end a period is closed (more than 0)
//	MAX_ATTEMPTS (default 10)             attempts per ledger row before it is failed (at least 1)
//	BILLING_WORKERS (default 4)           concurrent Stripe calls (1 to MaxBillingWorkers)
//	ALLOW_CLOCK_OVERRIDE=true             honour the payload's "now" (the local stack only; never set in AWS)
//
// Billed periods are reconsidered for late usage for billing.DefaultLookback
// (50 days) after they end: the longest backfill window plus its margin,
// whatever the record function's BACKFILL_WINDOW is now.
package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/stripebill"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := setup(context.Background(), env.New(context.Background(), os.Getenv), logger)
	if err != nil {
		logger.Error("overage: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

// MaxBillingWorkers is the most concurrent Stripe calls BILLING_WORKERS may
// ask for: each worker holds one of the pool's database connections.
const MaxBillingWorkers = 100

func setup(ctx context.Context, e *env.Env, logger *slog.Logger) (*Handler, error) {
	dbURL, proxy, err := e.Database()
	if err != nil {
		return nil, err
	}
	stripeKey, err := e.Secret("STRIPE_API_KEY", "STRIPE_SECRET_ARN", "api_key")
	if err != nil {
		return nil, err
	}
	grace := e.Duration("GRACE_PERIOD", billing.DefaultGrace)
	rps := e.Float("STRIPE_MAX_RPS", 20)
	retries := e.Int("STRIPE_MAX_NETWORK_RETRIES", 2)
	attempts := e.Int("MAX_ATTEMPTS", billing.DefaultMaxAttempts)
	workers := e.Int("BILLING_WORKERS", billing.DefaultWorkers)
	clockOverride := e.Bool("ALLOW_CLOCK_OVERRIDE")
	stripeURL := e.String("STRIPE_API_URL", "")
	if err := e.Err(); err != nil {
		return nil, err
	}
	// billing.New would take a 0 for its default: refused here instead, so
	// that a setting is what the function runs with.
	switch {
	case grace == 0:
		return nil, fmt.Errorf("GRACE_PERIOD: want more than 0, got %s", grace)
	case attempts < 1:
		return nil, fmt.Errorf("MAX_ATTEMPTS: want at least 1, got %d", attempts)
	case workers < 1 || workers > MaxBillingWorkers:
		return nil, fmt.Errorf("BILLING_WORKERS: want 1 to %d (each holds a database connection), got %d", MaxBillingWorkers, workers)
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxConns: int32(workers) + 1, ExecMode: proxy, NoJIT: true})
	if err != nil {
		return nil, err
	}
	cfg := billing.Config{Ledger: postgres.NewLedgerStore(db), Grace: grace,
		MaxAttempts: attempts, Workers: workers, Logger: logger, Clock: time.Now}
	if stripeKey != "" {
		cfg.Biller = stripebill.New(stripebill.Config{Key: stripeKey, URL: stripeURL,
			MaxNetworkRetries: int64(retries), RequestsPerSecond: rps})
	}
	b, err := billing.New(cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	if cfg.Biller == nil {
		logger.Warn("no Stripe key configured: dry runs, which report what they would bill and write no ledger row")
	}
	// Lambda names the function (AWS_LAMBDA_FUNCTION_NAME); a run outside
	// it is "overage".
	return &Handler{Billing: b, Logger: logger, Now: time.Now, AllowClockOverride: clockOverride,
		FunctionName: cmp.Or(lambdacontext.FunctionName, "overage")}, nil
}
