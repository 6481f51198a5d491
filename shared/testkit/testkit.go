// Package testkit holds what the test suites share that is not about one
// service: the context a suite that drives processes runs under, the check
// that a function's configuration is what template.yaml gives it, what a
// test needs from the machine (Require, RequireTool: a skip, or a failure
// under CI=true), a fake clock, Midday (a clock that keeps a test's recent
// events on one day) and a logger for the services under test.
package testkit

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/samtemplate"
)

// cleanup is the time left, before go test's -timeout, for a suite to stop
// what it started (servers, containers) once its context is done.
const cleanup = 30 * time.Second

// Context is the context of a suite that drives processes and waits on
// them: it ends with the test, or shortly before go test's -timeout would
// end the whole binary, so that the suite fails with its own words and
// stops what it started. It is never a timed assertion: a suite on a
// loaded machine may take as long as the run allows.
func Context(tb testing.TB) context.Context {
	ctx := context.Background()
	if t, ok := tb.(interface{ Context() context.Context }); ok {
		ctx = t.Context()
	}
	type deadliner interface{ Deadline() (time.Time, bool) }
	if d, ok := tb.(deadliner); ok {
		if at, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, at.Add(-cleanup))
			tb.Cleanup(cancel)
		}
	}
	return ctx
}

// Deployed describes a function's configuration as a stack deployed with
// template.yaml's defaults gives it.
type Deployed struct {
	// Function is the function's directory under functions/.
	Function string
	// Vars are what only a deployment knows (queue URLs, a bus, keys),
	// set over the template's defaults; DATABASE_SECRET_ARN always is.
	Vars map[string]string
	// LocalOnly are variables the function reads that only the local
	// stack sets, each with the reason.
	LocalOnly map[string]string
}

// ConfigurationIsTheTemplates runs a function's configuration (setup) on
// the environment of a stack deployed with template.yaml's defaults, and
// fails the test when it refuses it, when the template gives the function
// a variable it ignores, or when it reads one a deployed stack can never
// set (but those of LocalOnly). It runs in the function's directory.
func ConfigurationIsTheTemplates(t *testing.T, d Deployed, setup func(context.Context, *env.Env) error) {
	t.Helper()
	tmpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fn := tmpl.Function(d.Function)
	if fn == nil {
		t.Fatalf("template.yaml has no function for functions/%s", d.Function)
	}
	vars := fn.Defaults()
	vars["DATABASE_SECRET_ARN"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
	maps.Copy(vars, d.Vars)
	ctx := context.Background()
	e := env.New(ctx, func(k string) string { return vars[k] }).WithSecrets(func(context.Context, string) (string, error) {
		return `{"url": "postgres://db.invalid/nexus", "api_key": "sk_test_123"}`, nil
	})
	if err := setup(ctx, e); err != nil {
		t.Fatalf("configuration of a deployed stack: %v", err)
	}
	if err := fn.CheckEnv(e.Read(), d.LocalOnly); err != nil {
		t.Error(err)
	}
}
