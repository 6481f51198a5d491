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
	"github.com/nexus/usage/shared/testkit"
)

// TestConfigurationIsTheTemplates holds the variables the function's
// configuration reads equal to those template.yaml gives it: a variable the
// template sets and the function ignores, or one it reads that a deployed
// stack can never set, fails. The configuration runs on the environment of
// a stack deployed with the template's defaults.
func TestConfigurationIsTheTemplates(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	testkit.ConfigurationIsTheTemplates(t, testkit.Deployed{Function: "analytics",
		Vars: map[string]string{
			"USAGE_QUEUE_URL":  "https://sqs.us-east-1.amazonaws.com/123456789012/nexus-usage-dev",
			"NOTIFY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/nexus-usage-notify-dev",
			"JWT_ISSUER":       "https://auth.example.com/",
			"JWT_AUDIENCE":     "nexus-usage",
			"JWT_PUBLIC_KEY":   string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		},
		LocalOnly: map[string]string{
			"JWT_HMAC_SECRET":       "HS256 tokens of the local stack, where AWS verifies RS256/ES256 ones with JWT_PUBLIC_KEY",
			"WEBHOOK_ALLOW_PRIVATE": "webhook endpoints at the local stack's receiver (http, loopback); never in AWS",
		}},
		func(ctx context.Context, e *env.Env) error {
			_, err := setup(ctx, e, slog.New(slog.NewTextHandler(io.Discard, nil)))
			return err
		})
}
