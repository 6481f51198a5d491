package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/samtemplate"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
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

// TestBillingLookbackIsNotTheWindows: the record function and POST
// /v1/events take the template's backfill window; the overage function is
// not given it, because its lookback is the longest window's
// (billing.DefaultLookback): calls recorded under a window since lowered
// are billed all the same.
func TestBillingLookbackIsNotTheWindows(t *testing.T) {
	tmpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"record", "analytics", "overage"} {
		f := tmpl.Function(fn)
		if f == nil {
			t.Fatalf("no %s in the template", fn)
		}
		v, given := f.Env["BACKFILL_WINDOW"]
		switch {
		case fn == "overage" && given:
			t.Errorf("overage: BACKFILL_WINDOW = %+v; want none (the billing lookback is the longest window's)", v)
		case fn != "overage" && v.Parameter != "BackfillWindow":
			t.Errorf("%s: BACKFILL_WINDOW = %+v; want !Ref BackfillWindow", fn, v)
		}
	}
	if billing.DefaultLookback < usage.MaxBackfillWindow+usage.BackfillMargin {
		t.Errorf("billing.DefaultLookback = %v; want at least the longest window plus the margin", billing.DefaultLookback)
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

// TestFaultMetricAlarmsWatchTheMetricsLine: each alarm on the run's fault
// metrics watches the data points the metrics line makes: its dimensions
// are the line's dimension set, and they name this stack's function (!Ref
// OverageFunction, the name Lambda runs it under), so that another stack
// in the account (another Stage) billing its own test customers neither
// fires this stack's alarms nor hides behind them. An alarm whose
// dimensions the line never sets never fires.
func TestFaultMetricAlarmsWatchTheMetricsLine(t *testing.T) {
	tmpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const function = "nexus-usage-prod-OverageFunction-1A2B3C"
	var logs bytes.Buffer
	h := &Handler{Billing: runner{rep: billing.RunReport{Failed: 1}}, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Now: func() time.Time { return runAt }, FunctionName: function}
	if _, err := h.Handle(context.Background(), Input{}); err != nil {
		t.Fatal(err)
	}
	var line struct {
		AWS struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name string }
			}
		} `json:"_aws"`
	}
	var fields map[string]any
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, `"msg":"overage run metrics"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(l), &fields); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(line.AWS.CloudWatchMetrics) != 1 || len(line.AWS.CloudWatchMetrics[0].Dimensions) != 1 {
		t.Fatalf("metrics line %s; want one directive with one dimension set", logs.String())
	}
	directive := line.AWS.CloudWatchMetrics[0]
	emitted := directive.Dimensions[0]
	for _, name := range emitted {
		if _, ok := fields[name].(string); !ok {
			t.Errorf("the metrics line names dimension %s but gives it no string value", name)
		}
	}
	if fields["FunctionName"] != function {
		t.Errorf("the metrics line's FunctionName is %v; want the function's name %q", fields["FunctionName"], function)
	}
	alarms := 0
	for _, id := range slices.Sorted(maps.Keys(tmpl.Alarms)) {
		a := tmpl.Alarms[id]
		if a.Namespace != directive.Namespace || !slices.ContainsFunc(directive.Metrics, func(m struct{ Name string }) bool { return m.Name == a.MetricName }) {
			continue
		}
		alarms++
		if got := slices.Sorted(maps.Keys(a.Dimensions)); !slices.Equal(got, slices.Sorted(slices.Values(emitted))) {
			t.Errorf("%s watches %s with dimensions %q; the metrics line sets %q", id, a.MetricName, got, emitted)
		}
		if a.Dimensions["FunctionName"] != "!Ref OverageFunction" {
			t.Errorf("%s watches %s of every stack in the account: want dimension FunctionName !Ref OverageFunction, got %q", id, a.MetricName, a.Dimensions["FunctionName"])
		}
	}
	if alarms == 0 {
		t.Error("template.yaml has no alarm on the run's metrics")
	}
}
