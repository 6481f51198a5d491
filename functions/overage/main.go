// Command overage is the overage billing Lambda function, run daily by an
// EventBridge Scheduler schedule: it closes the billing periods that ended
// more than a grace period ago, writes their ledger rows and bills the
// overage as Stripe invoice items, exactly once. Without a Stripe key it
// makes a dry run (ledger rows with status dry_run, no Stripe call).
//
// Environment:
//
//	DATABASE_URL or DATABASE_SECRET_ARN   PostgreSQL URL, or a Secrets Manager secret holding it (key "url" or the plain URL)
//	DATABASE_PROXY=true                   pgx without statement caches (RDS Proxy)
//	STRIPE_API_KEY or STRIPE_SECRET_ARN   Stripe secret key, or a secret holding it (key "api_key" or the plain key); neither: dry run
//	STRIPE_API_URL                        Stripe base URL (stripe-mock)
//	STRIPE_MAX_RPS (default 20)           client-side cap on Stripe requests per second; 0: none
//	STRIPE_MAX_NETWORK_RETRIES (default 2)
//	GRACE_PERIOD (default 24h)            how long after its end a period is closed
//	MAX_ATTEMPTS (default 10)             attempts per ledger row before it is failed
//	BILLING_WORKERS (default 4)           concurrent Stripe calls
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/stripebill"
	"github.com/nexus/usage/shared/usage"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := setup(context.Background(), log)
	if err != nil {
		log.Error("overage: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

func setup(ctx context.Context, log *slog.Logger) (*Handler, error) {
	dbURL := os.Getenv("DATABASE_URL")
	stripeKey := os.Getenv("STRIPE_API_KEY")
	var sm *secretsmanager.Client
	secret := func(arn, key string) (string, error) {
		if sm == nil {
			cfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				return "", fmt.Errorf("load AWS config: %w", err)
			}
			sm = secretsmanager.NewFromConfig(cfg)
		}
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		if err != nil {
			return "", fmt.Errorf("read secret %s: %w", arn, err)
		}
		v := strings.TrimSpace(aws.ToString(out.SecretString))
		var m map[string]string
		if strings.HasPrefix(v, "{") && json.Unmarshal([]byte(v), &m) == nil {
			return m[key], nil
		}
		return v, nil
	}
	var err error
	if dbURL == "" {
		arn := os.Getenv("DATABASE_SECRET_ARN")
		if arn == "" {
			return nil, fmt.Errorf("set DATABASE_URL or DATABASE_SECRET_ARN")
		}
		if dbURL, err = secret(arn, "url"); err != nil {
			return nil, err
		}
	}
	if stripeKey == "" {
		if arn := os.Getenv("STRIPE_SECRET_ARN"); arn != "" {
			if stripeKey, err = secret(arn, "api_key"); err != nil {
				return nil, err
			}
		}
	}
	grace, err := envDuration("GRACE_PERIOD", usage.DefaultGrace)
	if err != nil {
		return nil, err
	}
	rps, err := envFloat("STRIPE_MAX_RPS", 20)
	if err != nil {
		return nil, err
	}
	retries, err := envInt("STRIPE_MAX_NETWORK_RETRIES", 2)
	if err != nil {
		return nil, err
	}
	attempts, err := envInt("MAX_ATTEMPTS", usage.DefaultMaxAttempts)
	if err != nil {
		return nil, err
	}
	workers, err := envInt("BILLING_WORKERS", usage.DefaultWorkers)
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxConns: int32(workers) + 1, ExecMode: os.Getenv("DATABASE_PROXY") == "true"})
	if err != nil {
		return nil, err
	}
	h := &Handler{
		Billing: usage.Billing{Ledger: postgres.NewLedgerStore(db), Grace: grace, MaxAttempts: attempts, Workers: workers},
		Logger:  log,
		Now:     time.Now,
	}
	if stripeKey != "" {
		h.Biller = stripebill.New(stripebill.Config{Key: stripeKey, URL: os.Getenv("STRIPE_API_URL"),
			MaxNetworkRetries: int64(retries), RequestsPerSecond: rps})
	} else {
		log.Warn("no Stripe key configured: dry run, ledger rows are written as dry_run")
	}
	return h, nil
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: want a duration like 24h, got %q", name, v)
	}
	return d, nil
}

func envFloat(name string, def float64) (float64, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%s: want a non-negative number, got %q", name, v)
	}
	return f, nil
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: want a non-negative integer, got %q", name, v)
	}
	return n, nil
}
