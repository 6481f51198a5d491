package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/samtemplate"
	"github.com/nexus/usage/shared/testkit"
)

// TestConfigurationIsTheTemplates holds the variables the function's
// configuration reads equal to those template.yaml gives it: a variable the
// template sets and the function ignores, or one it reads that a deployed
// stack can never set, fails. The configuration runs on the environment of
// a stack deployed with the template's defaults.
func TestConfigurationIsTheTemplates(t *testing.T) {
	testkit.ConfigurationIsTheTemplates(t, testkit.Deployed{Function: "overage", Vars: map[string]string{
		"STRIPE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:stripe",
	}, LocalOnly: map[string]string{
		"ALLOW_CLOCK_OVERRIDE": "the local stack's billing runs at an instant of its choosing; never in AWS",
	}},
		func(ctx context.Context, e *env.Env) error {
			_, err := setup(ctx, e, slog.New(slog.NewTextHandler(io.Discard, nil)))
			return err
		})
}

// TestTemplateGivesTheBackfillWindowToBilling: the overage function reads
// the record function's backfill window from the template.
func TestTemplateGivesTheBackfillWindowToBilling(t *testing.T) {
	tmpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"record", "analytics", "overage"} {
		f := tmpl.Function(fn)
		if f == nil {
			t.Fatalf("no %s in the template", fn)
		}
		if v := f.Env["BACKFILL_WINDOW"]; v.Parameter != "BackfillWindow" {
			t.Errorf("%s: BACKFILL_WINDOW = %+v; want !Ref BackfillWindow", fn, v)
		}
	}
}

// TestFaultMetricsHaveAlarms: each metric of the run's metrics line that
// says money was left unbilled or charged twice has an alarm in
// template.yaml that notifies the alarm topic, so that an operator hears
// of it; OverageAdoptedItems alone is information.
func TestFaultMetricsHaveAlarms(t *testing.T) {
	tmpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, metric := range []string{"OverageUnpricedSubscriptions", "OverageDuplicateItems", "OverageFailedRows"} {
		found := false
		for id, a := range tmpl.Alarms {
			if a.Namespace == MetricsNamespace && a.MetricName == metric {
				found = true
				if !a.Actions {
					t.Errorf("%s (on %s) has no AlarmActions", id, metric)
				}
			}
		}
		if !found {
			t.Errorf("template.yaml has no alarm on %s/%s", MetricsNamespace, metric)
		}
	}
}
