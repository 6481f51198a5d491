package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testTemplate = `
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 30
Resources:
  HttpApi:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: JwtAuthorizer
        Authorizers:
          JwtAuthorizer:
            JwtConfiguration: { issuer: !Ref JwtIssuer, audience: [!Ref JwtAudience] }
  AnalyticsFunction:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 10
      Environment: { Variables: { QUEUE_URL: !Ref UsageQueue } }
      Events:
        GetUsage:
          Type: HttpApi
          Properties: { ApiId: !Ref HttpApi, Method: GET, Path: /v1/usage, Auth: { Authorizer: NONE } }
        AdminUser:
          Type: HttpApi
          Properties: { ApiId: !Ref HttpApi, Method: get, Path: "/v1/admin/users/{id}/usage" }
  AggregateFunction:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: !Ref AggregateTimeout
      Events:
        Nightly:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: cron(15 0 * * ? *)
            ScheduleExpressionTimezone: UTC
            Input: '{"from":"2026-01-01"}'
        Off:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 hour)
            State: DISABLED
  OverageFunction:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 900
      Events:
        Daily:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: !Sub "cron(30 0 * * ? *)"
  UsageQueue:
    Type: AWS::SQS::Queue
`

func TestParseTemplate(t *testing.T) {
	tmpl, err := ParseTemplate([]byte(testTemplate))
	if err != nil {
		t.Fatal(err)
	}
	want := &Template{Functions: []FunctionSpec{
		{LogicalID: "AggregateFunction", Name: "aggregate", Timeout: 30, Schedules: []ScheduleSpec{
			{Event: "Nightly", Expression: "cron(15 0 * * ? *)", Timezone: "UTC", Input: `{"from":"2026-01-01"}`},
			{Event: "Off", Expression: "rate(1 hour)", Disabled: true},
		}},
		{LogicalID: "AnalyticsFunction", Name: "analytics", Timeout: 10, Routes: []RouteSpec{
			{Method: "GET", Path: "/v1/usage"},
			{Method: "GET", Path: "/v1/admin/users/{id}/usage", JWT: true},
		}},
		// An expression behind an intrinsic function is not read.
		{LogicalID: "OverageFunction", Name: "overage", Timeout: 900, Schedules: []ScheduleSpec{{Event: "Daily"}}},
	}}
	if diff := cmp.Diff(want, tmpl); diff != "" {
		t.Errorf("ParseTemplate (-want +got):\n%s", diff)
	}
	if _, err := Jobs(tmpl); err == nil {
		t.Error("Jobs accepted an empty schedule expression")
	}
	tmpl.Functions[2].Schedules = nil
	jobs, err := Jobs(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Function != "aggregate" || string(jobs[0].Input()) != `{"from":"2026-01-01"}` {
		t.Fatalf("jobs = %+v", jobs)
	}
	from := time.Date(2026, 3, 10, 0, 20, 0, 0, time.UTC)
	if got := jobs[0].Schedule.Next(from); !got.Equal(time.Date(2026, 3, 11, 0, 15, 0, 0, time.UTC)) {
		t.Errorf("next run after %s = %s", from, got)
	}
}

// TestRepositoryTemplate reads the real template.yaml: every schedule in it
// must parse.
func TestRepositoryTemplate(t *testing.T) {
	tmpl, err := LoadTemplate(filepath.Join(testRoot(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Function("record") == nil {
		t.Error("template.yaml has no RecordFunction")
	}
	jobs, err := Jobs(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		t.Logf("schedule: %s %s (next %s)", j.Function, j.Spec.Expression, j.Schedule.Next(time.Now().In(j.Location)).Format(time.RFC3339))
	}
}

func TestFunctionDirs(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{"b": `lambda.Start(h.Handle)`, "a": `lambda.Start(h.Handle)`} {
		if err := os.MkdirAll(filepath.Join(dir, "functions", name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "functions", name, "main.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if build := functionDirs(dir); !cmp.Equal(build, []string{"a", "b"}) {
		t.Errorf("functionDirs = %v; want [a b]", build)
	}
}
