package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nexus/usage/shared/limits"
	"gopkg.in/yaml.v3"
)

// TestTemplateRoutes checks template.yaml against the route table: the
// analytics function's HttpApi events are exactly the handler's routes,
// and each is behind API Gateway's JWT authorizer (the API's default) only
// where the handler wants a JWT alone: the admin routes. The dashboard's
// files, the user routes (JWT or API key) and POST /v1/events (API key)
// say Authorizer: NONE.
func TestTemplateRoutes(t *testing.T) {
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type       string `yaml:"Type"`
			Properties struct {
				Auth struct {
					DefaultAuthorizer string `yaml:"DefaultAuthorizer"`
				} `yaml:"Auth"`
				Events map[string]struct {
					Type       string `yaml:"Type"`
					Properties struct {
						Method string `yaml:"Method"`
						Path   string `yaml:"Path"`
						Auth   struct {
							Authorizer string `yaml:"Authorizer"`
						} `yaml:"Auth"`
					} `yaml:"Properties"`
				} `yaml:"Events"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &tmpl); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	api := tmpl.Resources["HttpApi"]
	if api.Type != "AWS::Serverless::HttpApi" || api.Properties.Auth.DefaultAuthorizer == "" {
		t.Fatalf("HttpApi is %q with default authorizer %q; want an HTTP API behind a JWT authorizer by default",
			api.Type, api.Properties.Auth.DefaultAuthorizer)
	}
	var inTemplate []string
	for name, ev := range tmpl.Resources["AnalyticsFunction"].Properties.Events {
		if ev.Type != "HttpApi" {
			continue
		}
		key := strings.ToUpper(ev.Properties.Method) + " " + ev.Properties.Path
		inTemplate = append(inTemplate, key)
		open := ev.Properties.Auth.Authorizer == "NONE"
		if admin := strings.HasPrefix(ev.Properties.Path, "/v1/admin/"); open == admin {
			t.Errorf("event %s (%s) has Authorizer %q; want the JWT authorizer on admin routes only", name, key, ev.Properties.Auth.Authorizer)
		}
	}
	slices.Sort(inTemplate)
	if routes := (&Handler{}).Routes(); !slices.Equal(inTemplate, routes) {
		t.Errorf("template.yaml routes the analytics function\n  %q\nthe handler serves\n  %q", inTemplate, routes)
	}
}

// TestTemplateReadBudgetAndThrottling: template.yaml sizes the read budget
// with the code's defaults and passes it to the function, bounds the
// burst below by the longest read's cost, throttles the HTTP API's
// default route and reserves (and caps) the function's concurrency.
func TestTemplateReadBudgetAndThrottling(t *testing.T) {
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Parameters map[string]struct {
			Default  any `yaml:"Default"`
			MinValue any `yaml:"MinValue"`
		} `yaml:"Parameters"`
		Resources map[string]struct {
			Properties struct {
				DefaultRouteSettings struct {
					ThrottlingRateLimit  yaml.Node `yaml:"ThrottlingRateLimit"`
					ThrottlingBurstLimit yaml.Node `yaml:"ThrottlingBurstLimit"`
				} `yaml:"DefaultRouteSettings"`
				ReservedConcurrentExecutions yaml.Node `yaml:"ReservedConcurrentExecutions"`
				Environment                  struct {
					Variables map[string]yaml.Node `yaml:"Variables"`
				} `yaml:"Environment"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	str := func(v any) string { return fmt.Sprint(v) }
	p := tmpl.Parameters
	if str(p["ReadRatePerSecond"].Default) != fmt.Sprint(limits.DefaultReadRatePerSecond) || str(p["ReadBurst"].Default) != fmt.Sprint(limits.DefaultReadBurst) {
		t.Errorf("template read budget %v/s, burst %v; the code's defaults are %v/s, %v", p["ReadRatePerSecond"].Default,
			p["ReadBurst"].Default, limits.DefaultReadRatePerSecond, limits.DefaultReadBurst)
	}
	if str(p["ReadBurst"].MinValue) != fmt.Sprint(limits.MaxReadCost) {
		t.Errorf("ReadBurst's MinValue is %v; want %d, what the longest read costs", p["ReadBurst"].MinValue, limits.MaxReadCost)
	}
	fn := tmpl.Resources["AnalyticsFunction"].Properties
	for name, param := range map[string]string{"READ_RATE_PER_SECOND": "ReadRatePerSecond", "READ_BURST": "ReadBurst"} {
		if v := fn.Environment.Variables[name]; v.Tag != "!Ref" || v.Value != param {
			t.Errorf("AnalyticsFunction's %s is %s %q; want !Ref %s", name, v.Tag, v.Value, param)
		}
	}
	if v := fn.ReservedConcurrentExecutions; v.Tag != "!Ref" || v.Value != "AnalyticsReservedConcurrency" {
		t.Errorf("AnalyticsFunction's ReservedConcurrentExecutions is %s %q; want !Ref AnalyticsReservedConcurrency", v.Tag, v.Value)
	}
	rs := tmpl.Resources["HttpApi"].Properties.DefaultRouteSettings
	if rs.ThrottlingRateLimit.Value != "ApiThrottlingRateLimit" || rs.ThrottlingBurstLimit.Value != "ApiThrottlingBurstLimit" {
		t.Errorf("HttpApi's default route throttling is %q/%q; want the ApiThrottling parameters", rs.ThrottlingRateLimit.Value, rs.ThrottlingBurstLimit.Value)
	}
}
