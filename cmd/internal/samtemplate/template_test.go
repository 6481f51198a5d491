package samtemplate_test

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/cmd/internal/samtemplate"
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
    Properties:
      VisibilityTimeout: 185
      RedrivePolicy: { deadLetterTargetArn: !GetAtt UsageDLQ.Arn, maxReceiveCount: 30 }
  UsageDLQ:
    Type: AWS::SQS::Queue
`

func TestParse(t *testing.T) {
	tmpl, err := samtemplate.Parse([]byte(testTemplate))
	if err != nil {
		t.Fatal(err)
	}
	want := &samtemplate.Template{Functions: []samtemplate.Function{
		{LogicalID: "AggregateFunction", Name: "aggregate", Timeout: 30, Schedules: []samtemplate.Schedule{
			{Event: "Nightly", Expression: "cron(15 0 * * ? *)", Timezone: "UTC", Input: `{"from":"2026-01-01"}`},
			{Event: "Off", Expression: "rate(1 hour)", Disabled: true},
		}},
		{LogicalID: "AnalyticsFunction", Name: "analytics", Timeout: 10, Routes: []samtemplate.Route{
			{Method: "GET", Path: "/v1/usage"},
			{Method: "GET", Path: "/v1/admin/users/{id}/usage", JWT: true},
		}},
		// An expression behind an intrinsic function is not read.
		{LogicalID: "OverageFunction", Name: "overage", Timeout: 900, Schedules: []samtemplate.Schedule{{Event: "Daily"}}},
	}, Queues: map[string]samtemplate.Queue{"UsageQueue": {VisibilityTimeout: 185, MaxReceiveCount: 30}, "UsageDLQ": {}}}
	if diff := cmp.Diff(want, tmpl); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if fn := tmpl.Function("analytics"); fn == nil || fn.LogicalID != "AnalyticsFunction" || fn.Routes[1].Key() != "GET /v1/admin/users/{id}/usage" {
		t.Errorf("Function(analytics) = %+v", fn)
	}
	if fn := tmpl.Function("nothing"); fn != nil {
		t.Errorf("Function(nothing) = %+v; want nil", fn)
	}
}

func TestParseErrors(t *testing.T) {
	for _, doc := range []string{"", "Resources: [1, 2]", "Transform: x", ":"} {
		if _, err := samtemplate.Parse([]byte(doc)); err == nil {
			t.Errorf("Parse(%q) = nil error; want an error", doc)
		}
	}
}

// TestRepositoryTemplate reads the real template.yaml.
func TestRepositoryTemplate(t *testing.T) {
	tmpl, err := samtemplate.Load(filepath.Join("..", "..", "..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"record", "aggregate", "analytics", "overage"} {
		if tmpl.Function(name) == nil {
			t.Errorf("template.yaml has no function for functions/%s", name)
		}
	}
	if fn := tmpl.Function("analytics"); fn == nil || len(fn.Routes) == 0 {
		t.Error("template.yaml gives the analytics function no HTTP API routes")
	}
	if q := tmpl.Queues["UsageQueue"]; q.MaxReceiveCount == 0 || q.VisibilityTimeout == 0 {
		t.Errorf("template.yaml's UsageQueue reads as %+v; want its visibility timeout and maxReceiveCount", q)
	}
}
