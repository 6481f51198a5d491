package main

import (
	"os"
	"slices"
	"strings"
	"testing"

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
