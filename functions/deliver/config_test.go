package main

import (
	"context"
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
	fn := tmpl.Function("deliver")
	if fn == nil {
		t.Fatal("template.yaml has no function for functions/deliver")
	}
	vars := fn.Defaults()
	// What only a deployment knows.
	vars["DATABASE_SECRET_ARN"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
	vars["NOTIFY_QUEUE_URL"] = "https://sqs.us-east-1.amazonaws.com/123456789012/nexus-usage-notify-dev"
	vars["ALERT_BUS_NAME"] = "nexus-usage-alerts-dev"

	ctx := context.Background()
	e := env.New(ctx, func(k string) string { return vars[k] }).WithSecrets(func(_ context.Context, arn string) (string, error) {
		return `{"url": "postgres://db.invalid/nexus"}`, nil
	})
	if _, err := setup(ctx, e, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("configuration of a deployed stack: %v", err)
	}
	if err := fn.CheckEnv(e.Read(), map[string]string{
		"WEBHOOK_ALLOW_PRIVATE": "the local stack's receiver listens on the loopback; deliveries in AWS never go to private addresses",
	}); err != nil {
		t.Error(err)
	}
}
