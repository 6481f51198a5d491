package samtemplate_test

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/samtemplate"
	"gopkg.in/yaml.v3"
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
	globals := map[string]samtemplate.Value{"DATABASE_URL": {}, "DATABASE_SECRET_ARN": {Deployed: true, Parameter: "SecretArn"},
		"DATABASE_PROXY": {Default: "true", Parameter: "Proxy"}}
	analytics := map[string]samtemplate.Value{"DATABASE_URL": {}, "DATABASE_SECRET_ARN": {Deployed: true, Parameter: "SecretArn"}, "DATABASE_PROXY": {Default: "false"},
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

// TestRepositorySecretGrants: each secret a function of template.yaml
// reads by ARN (a *_SECRET_ARN variable, !Ref of a parameter) it may read
// once deployed: its Policies grant GetSecretValue on that parameter's
// ARN, and kms:Decrypt on the customer managed key that encrypts the
// secrets when the stack is given one (SecretsKeyArn): without it,
// GetSecretValue of a secret under such a key is denied, and the function
// fails at every cold start. (moto and the local stack enforce neither.)
func TestRepositorySecretGrants(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Parameters map[string]yaml.Node `yaml:"Parameters"`
		Resources  map[string]struct {
			Properties struct {
				Policies []yaml.Node `yaml:"Policies"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	tmpl, err := samtemplate.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	const keyParam = "SecretsKeyArn"
	if _, ok := doc.Parameters[keyParam]; !ok {
		t.Errorf("template.yaml has no parameter %s: a stack whose secrets a customer managed KMS key encrypts cannot read them", keyParam)
	}
	secrets := 0
	for _, fn := range tmpl.Functions {
		policies := doc.Resources[fn.LogicalID].Properties.Policies
		reads := false
		for _, name := range slices.Sorted(maps.Keys(fn.Env)) {
			v := fn.Env[name]
			if !strings.HasSuffix(name, "_SECRET_ARN") {
				continue
			}
			secrets++
			reads = true
			param := v.Parameter
			if param == "" {
				param = conditionalRef(b, fn.LogicalID, name)
			}
			if !slices.ContainsFunc(policies, func(p yaml.Node) bool { return grantsSecret(&p, param) }) {
				t.Errorf("%s reads the secret %s (!Ref %s), but its Policies grant no AWSSecretsManagerGetSecretValuePolicy on it", fn.LogicalID, name, param)
			}
		}
		if reads && !slices.ContainsFunc(policies, func(p yaml.Node) bool { return decrypts(&p, keyParam) }) {
			t.Errorf("%s reads secrets, but its Policies grant no kms:Decrypt on !Ref %s", fn.LogicalID, keyParam)
		}
	}
	if secrets == 0 {
		t.Error("no function of template.yaml reads a secret by ARN")
	}
}

// conditionalRef returns P of a function's variable written
// !If [Condition, !Ref P, …], "" for anything else.
func conditionalRef(b []byte, function, variable string) string {
	var doc struct {
		Resources map[string]struct {
			Properties struct {
				Environment struct {
					Variables map[string]yaml.Node `yaml:"Variables"`
				} `yaml:"Environment"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if yaml.Unmarshal(b, &doc) != nil {
		return ""
	}
	n := doc.Resources[function].Properties.Environment.Variables[variable]
	if n.Tag == "!If" && len(n.Content) == 3 && n.Content[1].Tag == "!Ref" {
		return n.Content[1].Value
	}
	return ""
}

// grantsSecret reports whether a Policies entry (or a branch of its !If)
// is AWSSecretsManagerGetSecretValuePolicy on !Ref param.
func grantsSecret(p *yaml.Node, param string) bool {
	for _, n := range branches(p) {
		var pol struct {
			Policy struct {
				SecretArn yaml.Node `yaml:"SecretArn"`
			} `yaml:"AWSSecretsManagerGetSecretValuePolicy"`
		}
		if n.Decode(&pol) == nil {
			if arn := pol.Policy.SecretArn; arn.Tag == "!Ref" && arn.Value == param {
				return true
			}
		}
	}
	return false
}

// decrypts reports whether a Policies entry (or a branch of its !If) is a
// statement allowing kms:Decrypt on !Ref param.
func decrypts(p *yaml.Node, param string) bool {
	for _, n := range branches(p) {
		var pol struct {
			Statement []struct {
				Effect   string    `yaml:"Effect"`
				Action   yaml.Node `yaml:"Action"`
				Resource yaml.Node `yaml:"Resource"`
			} `yaml:"Statement"`
		}
		if n.Decode(&pol) != nil {
			continue
		}
		for _, s := range pol.Statement {
			if s.Effect == "Allow" && (s.Action.Value == "kms:Decrypt" || slices.ContainsFunc(s.Action.Content, func(a *yaml.Node) bool { return a.Value == "kms:Decrypt" })) &&
				s.Resource.Tag == "!Ref" && s.Resource.Value == param {
				return true
			}
		}
	}
	return false
}

// branches returns p, or both values of an !If [Condition, A, B].
func branches(p *yaml.Node) []*yaml.Node {
	if p.Tag == "!If" && p.Kind == yaml.SequenceNode && len(p.Content) == 3 {
		return p.Content[1:]
	}
	return []*yaml.Node{p}
}

// TestRepositoryParameterPatterns holds template.yaml's parameters'
// AllowedPattern (which CloudFormation matches against the whole value) to
// the values a deployer would give: a value the code cannot use is refused
// at deploy time with the parameter's ConstraintDescription, not at the
// first run.
func TestRepositoryParameterPatterns(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Parameters map[string]struct {
			AllowedPattern        string `yaml:"AllowedPattern"`
			ConstraintDescription string `yaml:"ConstraintDescription"`
		} `yaml:"Parameters"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		param     string
		good, bad []string
	}{
		// A bus name: PutEvents is granted on the bus of that name, so an
		// ARN would be denied on every alert.
		{"AlertBusName", []string{"", "default", "usage-alerts.prod_1", "aws.partner/example.com/123/alerts"},
			[]string{"arn:aws:events:eu-west-1:123456789012:event-bus/usage-alerts", "bus name", strings.Repeat("b", 257)}},
		{"BackfillWindow", []string{"1d", "35d", "45d"}, []string{"0d", "46d", "35", "35h"}},
		{"Stage", []string{"dev", "prod-2"}, []string{"", "Prod", "prod_2"}},
	} {
		p, ok := doc.Parameters[c.param]
		if !ok || p.AllowedPattern == "" {
			t.Errorf("%s has no AllowedPattern", c.param)
			continue
		}
		if p.ConstraintDescription == "" {
			t.Errorf("%s has no ConstraintDescription: a refused value would be reported as a pattern", c.param)
		}
		re, err := regexp.Compile(`^(?:` + p.AllowedPattern + `)$`)
		if err != nil {
			t.Errorf("%s: AllowedPattern: %v", c.param, err)
			continue
		}
		for _, v := range c.good {
			if !re.MatchString(v) {
				t.Errorf("%s refuses %q; want it taken", c.param, v)
			}
		}
		for _, v := range c.bad {
			if re.MatchString(v) {
				t.Errorf("%s takes %q; want it refused", c.param, v)
			}
		}
	}
}
