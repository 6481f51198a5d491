// Command analytics is the analytics Lambda function: the HTTP API (API
// Gateway HTTP API, payload v2) of usage for users and admins, event
// ingestion and limit checks.
//
// Environment:
//
//	DATABASE_URL or DATABASE_SECRET_ARN  PostgreSQL (the secret's "url" key)
//	DATABASE_PROXY=true                  pgx without statement caches (RDS Proxy)
//	JWT_ISSUER, JWT_AUDIENCE             accepted bearer tokens
//	JWT_HMAC_SECRET or JWT_PUBLIC_KEY    HS256 secret, or an RSA/ECDSA public key (PEM)
//	QUEUE_URL                            the usage queue of POST /v1/events
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/postgres"
)

type env struct {
	DatabaseURL, DatabaseSecretARN string
	Proxy                          bool
	JWTIssuer, JWTAudience         string
	JWTHMACSecret, JWTPublicKey    string
	QueueURL                       string
}

func readEnv() env {
	return env{
		DatabaseURL:       os.Getenv("DATABASE_URL"),
		DatabaseSecretARN: os.Getenv("DATABASE_SECRET_ARN"),
		Proxy:             os.Getenv("DATABASE_PROXY") == "true",
		JWTIssuer:         os.Getenv("JWT_ISSUER"),
		JWTAudience:       os.Getenv("JWT_AUDIENCE"),
		JWTHMACSecret:     os.Getenv("JWT_HMAC_SECRET"),
		JWTPublicKey:      os.Getenv("JWT_PUBLIC_KEY"),
		QueueURL:          os.Getenv("QUEUE_URL"),
	}
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := build(context.Background(), readEnv(), logger)
	if err != nil {
		logger.Error("analytics: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

func build(ctx context.Context, e env, logger *slog.Logger) (*Handler, error) {
	url := e.DatabaseURL
	if url == "" {
		if e.DatabaseSecretARN == "" {
			return nil, errors.New("set DATABASE_URL or DATABASE_SECRET_ARN")
		}
		var err error
		if url, err = secretURL(ctx, e.DatabaseSecretARN); err != nil {
			return nil, err
		}
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2, ExecMode: e.Proxy})
	if err != nil {
		return nil, err
	}
	jwtCfg := auth.JWTConfig{Issuer: e.JWTIssuer, Audience: e.JWTAudience}
	switch {
	case e.JWTPublicKey != "":
		key, alg, err := parsePublicKey(e.JWTPublicKey)
		if err != nil {
			return nil, err
		}
		jwtCfg.PublicKey, jwtCfg.Algorithms = key, []string{alg}
	case e.JWTHMACSecret != "":
		jwtCfg.HMACSecret, jwtCfg.Algorithms = []byte(e.JWTHMACSecret), []string{"HS256"}
	default:
		return nil, errors.New("set JWT_HMAC_SECRET or JWT_PUBLIC_KEY")
	}
	verifier, err := auth.NewJWTVerifier(jwtCfg)
	if err != nil {
		return nil, err
	}
	return &Handler{
		Store:  postgres.NewAnalyticsStore(db),
		Auth:   &auth.Authenticator{Keys: postgres.NewAPIKeyStore(db), JWT: verifier},
		Logger: logger,
		Now:    time.Now,
		// Publisher (QUEUE_URL): wired when the publisher lands.
		// Limits: wired when the limit checker lands.
	}, nil
}

// parsePublicKey reads a PEM public key and the algorithm it verifies.
func parsePublicKey(s string) (any, string, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, "", errors.New("JWT_PUBLIC_KEY: no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("JWT_PUBLIC_KEY: %w", err)
	}
	switch k.(type) {
	case *rsa.PublicKey:
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		return k, "ES256", nil
	}
	return nil, "", errors.New("JWT_PUBLIC_KEY: not an RSA or ECDSA key")
}

// secretURL reads the database URL from a Secrets Manager secret: a JSON
// object with a "url" key, or the URL itself.
func secretURL(ctx context.Context, arn string) (string, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("aws config: %w", err)
	}
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("read database secret: %w", err)
	}
	s := aws.ToString(out.SecretString)
	var v struct {
		URL string `json:"url"`
	}
	if json.Unmarshal([]byte(s), &v) == nil && v.URL != "" {
		return v.URL, nil
	}
	return s, nil
}
