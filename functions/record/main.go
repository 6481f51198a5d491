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
//	                     days ("35d"); default 35 days
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
	"github.com/nexus/usage/shared/usage"
)

// Config is the function's configuration.
type Config struct {
	DatabaseURL       string
	DatabaseSecretARN string
	DatabaseProxy     bool
	Backfill          time.Duration
}

// configFromEnv reads the configuration from getenv.
func configFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		DatabaseURL:       getenv("DATABASE_URL"),
		DatabaseSecretARN: getenv("DATABASE_SECRET_ARN"),
		DatabaseProxy:     getenv("DATABASE_PROXY") == "true",
		Backfill:          usage.DefaultBackfillWindow,
	}
	if c.DatabaseURL == "" && c.DatabaseSecretARN == "" {
		return c, fmt.Errorf("set DATABASE_URL or DATABASE_SECRET_ARN")
	}
	if v := getenv("BACKFILL_WINDOW"); v != "" {
		d, err := parseWindow(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("BACKFILL_WINDOW %q: want a positive duration such as 840h or 35d", v)
		}
		c.Backfill = d
	}
	return c, nil
}

// parseWindow parses a Go duration or a whole number of days ("35d").
func parseWindow(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

// secretURL reads the database URL from a Secrets Manager secret: a JSON
// object with key "url", or the URL as plain text.
func secretURL(ctx context.Context, arn string) (string, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("load aws config: %w", err)
	}
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("read database secret: %w", err)
	}
	return urlFromSecret(aws.ToString(out.SecretString))
}

func urlFromSecret(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		var v struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal([]byte(s), &v); err != nil || v.URL == "" {
			return "", fmt.Errorf("database secret: want a JSON object with key \"url\"")
		}
		return v.URL, nil
	}
	if s == "" {
		return "", fmt.Errorf("database secret is empty")
	}
	return s, nil
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	ctx := context.Background()
	cfg, err := configFromEnv(os.Getenv)
	if err != nil {
		logger.Error("configuration", "error", err)
		os.Exit(1)
	}
	url := cfg.DatabaseURL
	if url == "" {
		if url, err = secretURL(ctx, cfg.DatabaseSecretARN); err != nil {
			logger.Error("configuration", "error", err)
			os.Exit(1)
		}
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2, ExecMode: cfg.DatabaseProxy})
	if err != nil {
		logger.Error("open database", "error", err)
		os.Exit(1)
	}
	h := &Handler{Events: postgres.NewEventStore(db), Logger: logger, Now: time.Now, Backfill: cfg.Backfill}
	lambda.Start(h.Handle)
}
