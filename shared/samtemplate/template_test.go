package samtemplate_test

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/samtemplate"
)

const testTemplate = `
Transform: AWS::Serverless-2016-10-31
Parameters:
  Proxy: { Type: String, Default: "true" }
  SecretArn: { Type: String }
Globals:
  Function:
    Timeout: 30
    Environment:
      Variables:
        DATABASE_URL: ""
        DATABASE_SECRET_ARN: !Ref SecretArn
        DATABASE_PROXY: !Ref Proxy
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
      Environment: { Variables: { QUEUE_URL: !Ref UsageQueue, MAX: 10, DATABASE_PROXY: "false", BUS: !If [A, B, C] } }
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
  DLQAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/SQS
      MetricName: ApproximateNumberOfMessagesVisible
      AlarmActions: [!If [HasAlarmTopic, !Ref AlarmTopicArn, !Ref AlarmTopic]]
  MaybeAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/SQS
      MetricName: ApproximateAgeOfOldestMessage
      AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]
  QuietAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties: { Namespace: NexusUsage, MetricName: OverageFailedRows }
`

func TestParse(t *testing.T) {
	tmpl, err := samtemplate.Parse([]byte(testTemplate))
	if err != nil {
		t.Fatal(err)
	}
	// Globals' variables, then the function's own over them; a parameter's
	// default stands for its !Ref; resources, conditions and parameters
	// without a default are known once deployed.
	globals := map[string]samtemplate.Value{"DATABASE_URL": {}, "DATABASE_SECRET_ARN": {Deployed: true}, "DATABASE_PROXY": {Default: "true", Parameter: "Proxy"}}
	analytics := map[string]samtemplate.Value{"DATABASE_URL": {}, "DATABASE_SECRET_ARN": {Deployed: true}, "DATABASE_PROXY": {Default: "false"},
		"QUEUE_URL": {Deployed: true}, "MAX": {Default: "10"}, "BUS": {Deployed: true}}
	want := &samtemplate.Template{Functions: []samtemplate.Function{
		{LogicalID: "AggregateFunction", Name: "aggregate", Timeout: 30, Env: globals, Schedules: []samtemplate.Schedule{
			{Event: "Nightly", Expression: "cron(15 0 * * ? *)", Timezone: "UTC", Input: `{"from":"2026-01-01"}`},
			{Event: "Off", Expression: "rate(1 hour)", Disabled: true},
		}},
		{LogicalID: "AnalyticsFunction", Name: "analytics", Timeout: 10, Env: analytics, Routes: []samtemplate.Route{
			{Method: "GET", Path: "/v1/usage"},
			{Method: "GET", Path: "/v1/admin/users/{id}/usage", JWT: true},
		}},
		// An expression behind an intrinsic function is not read.
		{LogicalID: "OverageFunction", Name: "overage", Timeout: 900, Env: globals, Schedules: []samtemplate.Schedule{{Event: "Daily"}}},
	}, Queues: map[string]samtemplate.Queue{"UsageQueue": {VisibilityTimeout: 185, MaxReceiveCount: 30}, "UsageDLQ": {}},
		Alarms: map[string]samtemplate.Alarm{
			"DLQAlarm": {Namespace: "AWS/SQS", MetricName: "ApproximateNumberOfMessagesVisible", Actions: true},
			// Actions that a condition can leave out do not count.
			"MaybeAlarm": {Namespace: "AWS/SQS", MetricName: "ApproximateAgeOfOldestMessage"},
			"QuietAlarm": {Namespace: "NexusUsage", MetricName: "OverageFailedRows"},
		}}
	if diff := cmp.Diff(want, tmpl); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if fn := tmpl.Function("analytics"); fn == nil || fn.LogicalID != "AnalyticsFunction" || fn.Routes[1].Key() != "GET /v1/admin/users/{id}/usage" {
		t.Errorf("Function(analytics) = %+v", fn)
	}
	if got, want := tmpl.Function("analytics").Defaults(), map[string]string{"DATABASE_URL": "", "DATABASE_PROXY": "false", "MAX": "10"}; !cmp.Equal(got, want) {
		t.Errorf("Defaults() = %v; want %v", got, want)
	}
	fn := tmpl.Function("aggregate")
	if err := fn.CheckEnv([]string{"DATABASE_URL", "DATABASE_SECRET_ARN", "DATABASE_PROXY"}, nil); err != nil {
		t.Errorf("CheckEnv of the same variables: %v", err)
	}
	if err := fn.CheckEnv([]string{"DATABASE_URL", "DATABASE_SECRET_ARN", "LOCAL"}, map[string]string{"LOCAL": "only local runs set it"}); err == nil ||
		err.Error() != "template.yaml gives AggregateFunction DATABASE_PROXY, which its configuration never reads" {
		t.Errorf("CheckEnv with one variable unread = %v", err)
	}
	if err := fn.CheckEnv([]string{"DATABASE_URL", "DATABASE_SECRET_ARN", "DATABASE_PROXY", "OTHER"}, nil); err == nil ||
		err.Error() != "AggregateFunction reads OTHER, which template.yaml does not give it" {
		t.Errorf("CheckEnv with one variable undeclared = %v", err)
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
	tmpl, err := samtemplate.Load(filepath.Join("..", "..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"record", "aggregate", "analytics", "overage", "deliver"} {
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
