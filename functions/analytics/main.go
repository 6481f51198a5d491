// Command analytics is the analytics Lambda function: the HTTP API (API
// Gateway HTTP API, payload v2) of usage for users and admins, event
// ingestion and limit checks.
//
// Environment:
//
//	DATABASE_URL or DATABASE_SECRET_ARN  PostgreSQL (the secret's "url" key)
//	DATABASE_PROXY=true                  pgx without statement caches (RDS Proxy)
//	JWT_ISSUER, JWT_AUDIENCE             accepted bearer tokens
//	JWT_HMAC_SECRET or JWT_PUBLIC_KEY    HS256 secret, or an RSA (RS256) or ECDSA (ES256/384/512 by curve) public key (PEM)
//	USAGE_QUEUE_URL                      the usage queue of POST /v1/events
//	DLQ_URL                              its dead-letter queue, for POST /v1/admin/redrive
//	NOTIFY_QUEUE_URL                     the notify queue: replayed webhook deliveries go there at once
//	                                     (unset: the deliver function's sweep finds them within a minute)
//	WEBHOOK_ALLOW_PRIVATE=true           webhook endpoints may be http and private addresses (the local
//	                                     stack's receiver); never set in AWS
//	GRACE_PERIOD (default 24h)           the overage job's, for the overage preview
//	MAX_EVENT_QUANTITY                   largest quantity of one event of POST /v1/events (default 10,000)
//	BACKFILL_WINDOW                      how old an event of POST /v1/events may be: the record
//	                                     function's (default 35 days, at most 45)
//	READ_RATE_PER_SECOND, READ_BURST     each caller's read budget (default 2 a second, 60 at once;
//	                                     a read costs a unit per started 31 days of its range)
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/sqspub"
	"github.com/nexus/usage/shared/usage"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := setup(context.Background(), env.New(context.Background(), os.Getenv), logger)
	if err != nil {
		logger.Error("analytics: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

func setup(ctx context.Context, e *env.Env, logger *slog.Logger) (*Handler, error) {
	url, proxy, err := e.Database()
	if err != nil {
		return nil, err
	}
	queueURL := e.String("USAGE_QUEUE_URL", "")
	dlqURL := e.String("DLQ_URL", "")
	notifyURL := e.String("NOTIFY_QUEUE_URL", "")
	allowPrivate := e.Bool("WEBHOOK_ALLOW_PRIVATE")
	grace := e.Duration("GRACE_PERIOD", billing.DefaultGrace)
	maxQuantity := e.Int("MAX_EVENT_QUANTITY", DefaultMaxEventQuantity)
	backfill := e.Duration("BACKFILL_WINDOW", usage.DefaultBackfillWindow)
	readRate := e.Float("READ_RATE_PER_SECOND", limits.DefaultReadRatePerSecond)
	readBurst := e.Int("READ_BURST", limits.DefaultReadBurst)
	jwtCfg := auth.JWTConfig{Issuer: e.String("JWT_ISSUER", ""), Audience: e.String("JWT_AUDIENCE", "")}
	publicKey, hmacSecret := e.String("JWT_PUBLIC_KEY", ""), e.String("JWT_HMAC_SECRET", "")
	if err := e.Err(); err != nil {
		return nil, err
	}
	if grace == 0 {
		return nil, fmt.Errorf("GRACE_PERIOD: want more than 0 (the overage function's), got %s", grace)
	}
	if maxQuantity < 1 || maxQuantity > usage.MaxQuantity {
		return nil, fmt.Errorf("MAX_EVENT_QUANTITY: want 1 to %d, got %d", usage.MaxQuantity, maxQuantity)
	}
	if err := usage.CheckBackfillWindow(backfill); err != nil {
		return nil, fmt.Errorf("BACKFILL_WINDOW: %s", usage.ErrorMessage(err))
	}
	if !(readRate > 0) || readRate > 1000 {
		return nil, fmt.Errorf("READ_RATE_PER_SECOND: want more than 0 and at most 1000, got %v", readRate)
	}
	if readBurst < limits.MaxReadCost || readBurst > 100_000 {
		return nil, fmt.Errorf("READ_BURST: want at least %d (what the longest read costs) and at most 100000, got %d", limits.MaxReadCost, readBurst)
	}
	switch {
	case publicKey != "":
		key, alg, err := parsePublicKey(publicKey)
		if err != nil {
			return nil, err
		}
		jwtCfg.PublicKey, jwtCfg.Algorithms = key, []string{alg}
	case hmacSecret != "":
		jwtCfg.HMACSecret, jwtCfg.Algorithms = []byte(hmacSecret), []string{"HS256"}
	default:
		return nil, errors.New("set JWT_HMAC_SECRET or JWT_PUBLIC_KEY")
	}
	verifier, err := auth.NewJWTVerifier(jwtCfg)
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2, ExecMode: proxy})
	if err != nil {
		return nil, err
	}
	overage, err := billing.New(billing.Config{Ledger: postgres.NewLedgerStore(db), Grace: grace, Logger: logger})
	if err != nil {
		db.Close()
		return nil, err
	}
	store := postgres.NewAnalyticsStore(db)
	h := &Handler{
		Usage:   store,
		Admin:   store,
		Overage: overage,
		Auth:    &auth.Authenticator{Keys: auth.NewKeyCache(postgres.NewAPIKeyStore(db), auth.DefaultKeyCacheTTL, nil), JWT: verifier},
		Logger:  logger,
		Now:     time.Now,

		MaxEventQuantity: int64(maxQuantity),
		BackfillWindow:   backfill,
	}
	notifications := &notify.Service{Store: postgres.NewNotifyStore(db), AllowPrivate: allowPrivate, Now: time.Now}
	if queueURL != "" || notifyURL != "" {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("load AWS config: %w", err)
		}
		if queueURL != "" {
			// The handler sends each request's events before it answers
			// (Send, not the buffer), so nothing is left buffered when the
			// Lambda environment freezes, and it answers for each event.
			client := sqs.NewFromConfig(awsCfg)
			h.Publisher = sqspub.New(client, queueURL, sqspub.Options{Logger: logger, BackfillWindow: backfill})
			if dlqURL != "" {
				h.Redrive = &sqspub.Redriver{API: client, DLQURL: dlqURL, QueueURL: queueURL}
			}
		}
		if notifyURL != "" {
			notifications.Queue = sqspub.NewNotifyQueue(sqs.NewFromConfig(awsCfg), notifyURL)
		}
	}
	h.Notify = notifications
	if queueURL == "" {
		logger.Warn("USAGE_QUEUE_URL is not set: POST /v1/events answers 503")
	}
	h.Limits = limits.NewLimiter(postgres.NewRateStore(db), limits.LimiterOptions{Logger: logger, Now: time.Now})
	h.Reads = limits.NewBudget(postgres.NewRateStore(db), limits.BudgetOptions{Name: "read", RatePerSecond: readRate, Burst: readBurst, Now: time.Now})
	return h, nil
}

// parsePublicKey reads a PEM public key and the algorithm it verifies:
// RS256 for an RSA key, ES256, ES384 or ES512 by an ECDSA key's curve.
func parsePublicKey(s string) (any, string, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, "", errors.New("JWT_PUBLIC_KEY: no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("JWT_PUBLIC_KEY: %w", err)
	}
	switch key := k.(type) {
	case *rsa.PublicKey:
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		// The curve names the algorithm (RFC 7518 3.4).
		switch key.Curve {
		case elliptic.P256():
			return k, "ES256", nil
		case elliptic.P384():
			return k, "ES384", nil
		case elliptic.P521():
			return k, "ES512", nil
		}
		return nil, "", errors.New("JWT_PUBLIC_KEY: an ECDSA key must be on P-256, P-384 or P-521")
	}
	return nil, "", errors.New("JWT_PUBLIC_KEY: not an RSA or ECDSA key")
}
