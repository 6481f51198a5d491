package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"testing"

	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/samtemplate"
)

// TestConfigurationIsTheTemplates holds the variables the function's
// configuration reads equal to those template.yaml gives it: a variable the
// template sets and the function ignores, or one it reads that a deployed
// stack can never set, fails. The configuration runs on the environment of
// a stack deployed with the template's defaults.
func TestConfigurationIsTheTemplates(t *testing.T) {
	tmpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fn := tmpl.Function("analytics")
	if fn == nil {
		t.Fatal("template.yaml has no function for functions/analytics")
	}
	vars := fn.Defaults()
	// What only a deployment knows.
	vars["DATABASE_SECRET_ARN"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
	vars["QUEUE_URL"] = "https://sqs.us-east-1.amazonaws.com/123456789012/nexus-usage-dev"
	vars["NOTIFY_QUEUE_URL"] = "https://sqs.us-east-1.amazonaws.com/123456789012/nexus-usage-notify-dev"
	vars["JWT_ISSUER"], vars["JWT_AUDIENCE"] = "https://auth.example.com/", "nexus-usage"
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	vars["JWT_PUBLIC_KEY"] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	ctx := context.Background()
	e := env.New(ctx, func(k string) string { return vars[k] }).WithSecrets(func(_ context.Context, arn string) (string, error) {
		return `{"url": "postgres://db.invalid/nexus", "api_key": "sk_test_123"}`, nil
	})
	if _, err := build(ctx, e, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("configuration of a deployed stack: %v", err)
	}
	if err := fn.CheckEnv(e.Read(), map[string]string{
		"JWT_HMAC_SECRET":       "HS256 tokens of the local stack, where AWS verifies RS256/ES256 ones with JWT_PUBLIC_KEY",
		"WEBHOOK_ALLOW_PRIVATE": "webhook endpoints at the local stack's receiver (http, loopback); never in AWS",
	}); err != nil {
		t.Error(err)
	}
}
