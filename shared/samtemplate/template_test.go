package samtemplate_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
      EventInvokeConfig:
        MaximumRetryAttempts: 0
        DestinationConfig: { OnFailure: { Type: SQS, Destination: !GetAtt UsageDLQ.Arn } }
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
      Dimensions: [{Name: QueueName, Value: !GetAtt UsageDLQ.QueueName}]
      Period: 300
      AlarmActions: [!If [HasAlarmTopic, !Ref AlarmTopicArn, !Ref AlarmTopic]]
  MaybeAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/SQS
      MetricName: ApproximateAgeOfOldestMessage
      AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]
  QuietAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties: { Namespace: NexusUsage, MetricName: OverageFailedRows, Dimensions: [{Name: FunctionName, Value: overage}, {Name: Kind, Value: {Ref: X}}] }
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
		}, OnFailure: "UsageDLQ"},
		{LogicalID: "AnalyticsFunction", Name: "analytics", Timeout: 10, Env: analytics, Routes: []samtemplate.Route{
			{Method: "GET", Path: "/v1/usage"},
			{Method: "GET", Path: "/v1/admin/users/{id}/usage", JWT: true},
		}},
		// An expression behind an intrinsic function is not read.
		{LogicalID: "OverageFunction", Name: "overage", Timeout: 900, Env: globals, Schedules: []samtemplate.Schedule{{Event: "Daily"}}},
	}, Queues: map[string]samtemplate.Queue{"UsageQueue": {VisibilityTimeout: 185, MaxReceiveCount: 30}, "UsageDLQ": {}},
		Alarms: map[string]samtemplate.Alarm{
			"DLQAlarm": {Namespace: "AWS/SQS", MetricName: "ApproximateNumberOfMessagesVisible",
				Dimensions: map[string]string{"QueueName": "!GetAtt UsageDLQ.QueueName"}, Period: 300, Actions: true},
			// Actions that a condition can leave out do not count.
			"MaybeAlarm": {Namespace: "AWS/SQS", MetricName: "ApproximateAgeOfOldestMessage"},
			// An intrinsic function in its long form is not read.
			"QuietAlarm": {Namespace: "NexusUsage", MetricName: "OverageFailedRows", Dimensions: map[string]string{"FunctionName": "overage", "Kind": ""}},
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

// TestRepositoryScheduledFailuresAlarm: EventBridge Scheduler invokes a
// function asynchronously, so a scheduled run that fails (an error, a
// timeout) is retried by Lambda and then dropped; the schedule's own
// dead-letter queue takes only the invocations Scheduler could not
// deliver. Each scheduled function of template.yaml therefore sends the
// runs that failed all their retries to a queue that an alarm watches
// (EventInvokeConfig's OnFailure), unless it runs at least once in every
// period of an alarm on its Errors, so that failed runs alone can make
// that alarm fire (an hourly or daily run never fails in 3 consecutive
// minutes).
func TestRepositoryScheduledFailuresAlarm(t *testing.T) {
	tmpl, err := samtemplate.Load(filepath.Join("..", "..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	scheduled := 0
	for _, fn := range tmpl.Functions {
		if len(fn.Schedules) == 0 {
			continue
		}
		scheduled++
		every := time.Duration(0) // how often its schedules run it; 0: not known to be every few minutes
		for _, s := range fn.Schedules {
			if d := rate(s.Expression); !s.Disabled && d > 0 && (every == 0 || d < every) {
				every = d
			}
		}
		if fn.OnFailure != "" && watched(tmpl, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "!GetAtt "+fn.OnFailure+".QueueName", 0) {
			continue
		}
		if every > 0 && watched(tmpl, "AWS/Lambda", "Errors", "FunctionName", "!Ref "+fn.LogicalID, every) {
			continue
		}
		if fn.OnFailure == "" {
			t.Errorf("%s runs on a schedule, but its failed runs go nowhere an alarm watches: give it an EventInvokeConfig OnFailure queue with an alarm", fn.LogicalID)
		} else {
			t.Errorf("%s sends its failed runs to %s, which no alarm on ApproximateNumberOfMessagesVisible watches", fn.LogicalID, fn.OnFailure)
		}
	}
	if scheduled == 0 {
		t.Error("template.yaml has no scheduled function")
	}
}

// watched reports whether an alarm of tmpl watches namespace/metric with
// the one dimension name=value, in periods of at least every (0: any).
func watched(tmpl *samtemplate.Template, namespace, metric, name, value string, every time.Duration) bool {
	for _, a := range tmpl.Alarms {
		if a.Namespace == namespace && a.MetricName == metric && len(a.Dimensions) == 1 && a.Dimensions[name] == value &&
			time.Duration(a.Period)*time.Second >= every {
			return true
		}
	}
	return false
}

// rate returns the interval of a rate(N unit) schedule expression, 0 for
// anything else.
func rate(expr string) time.Duration {
	inner, ok := strings.CutPrefix(expr, "rate(")
	if !ok {
		return 0
	}
	n, unit, _ := strings.Cut(strings.TrimSuffix(inner, ")"), " ")
	v, err := strconv.Atoi(n)
	if err != nil || v < 1 {
		return 0
	}
	d, ok := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(unit, "s")]
	if !ok {
		return 0
	}
	return time.Duration(v) * d
}
