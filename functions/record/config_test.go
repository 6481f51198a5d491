package main

import (
	"context"
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
	testkit.ConfigurationIsTheTemplates(t, testkit.Deployed{Function: "record", Vars: nil, LocalOnly: nil},
		func(ctx context.Context, e *env.Env) error {
			_, err := setup(ctx, e, slog.New(slog.NewTextHandler(io.Discard, nil)))
			return err
		})
}
