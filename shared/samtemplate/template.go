package samtemplate

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is what the local stack reads from template.yaml: the functions,
// their timeouts, environments, schedules and HTTP API routes, and the SQS
// queues.
type Template struct {
	Functions []Function
	// Queues are the AWS::SQS::Queue resources by logical id.
	Queues map[string]Queue
	// Alarms are the AWS::CloudWatch::Alarm resources by logical id.
	Alarms map[string]Alarm
}

// Alarm is one AWS::CloudWatch::Alarm: the metric it watches and whether
// it notifies anyone.
type Alarm struct {
	Namespace  string // AWS/SQS, NexusUsage
	MetricName string
	// Dimensions are the metric's dimensions by name, each value as the
	// template writes it: a literal, or an intrinsic function with its tag
	// ("!Ref OverageFunction", "!GetAtt UsageDLQ.QueueName"). An alarm
	// watches only the data points whose dimensions are exactly these.
	Dimensions map[string]string
	// Period is the seconds of each data point the alarm evaluates.
	Period int
	// Actions says the alarm notifies someone whatever the parameters:
	// its AlarmActions is a list of at least one action (an !If that can
	// leave them out does not count).
	Actions bool
}

// Queue is one AWS::SQS::Queue: the numbers a local queue copies.
type Queue struct {
	VisibilityTimeout int // seconds; 0 when not set
	// MaxReceiveCount is its redrive policy's (0: no dead-letter queue).
	MaxReceiveCount int
}

// Function is one AWS::Serverless::Function.
type Function struct {
	LogicalID string // RecordFunction
	Name      string // record: the directory under functions/
	// Timeout in seconds (the function's, else Globals', else 3).
	Timeout int
	// Env is the function's environment: Globals' variables and then its
	// own, by name.
	Env       map[string]Value
	Schedules []Schedule
	Routes    []Route
	// OnFailure is the logical id of the SQS queue its EventInvokeConfig
	// sends the asynchronous invocations (the schedules') that failed all
	// their retries to; "" when there is none, and Lambda drops them.
	OnFailure string
}

// Value is an environment variable's value in the template.
type Value struct {
	// Default is the value a stack deployed with the template's defaults
	// gives: the literal, or the default of the parameter a !Ref names.
	Default string
	// Deployed says the value is known only once the stack is deployed: a
	// resource's !Ref or !GetAtt, a condition's !If, a !Sub, a pseudo
	// parameter, or a parameter without a default. Default is then "".
	Deployed bool
	// Parameter names the template parameter the value is a !Ref of, if
	// it is one (with a default or not): functions given the same setting
	// name the same one.
	Parameter string
}

// Defaults returns the environment as deployed with the template's
// defaults: every variable whose value the template fixes, by name.
func (f *Function) Defaults() map[string]string {
	m := make(map[string]string, len(f.Env))
	for k, v := range f.Env {
		if !v.Deployed {
			m[k] = v.Default
		}
	}
	return m
}

// CheckEnv compares the variables a function's configuration read (read)
// with the environment the template gives it: it fails naming every
// variable the template sets that the configuration never read (a setting
// the deployed function ignores) and every variable the configuration read
// that the template does not declare (a setting that can never be made
// where it is deployed), except those of localOnly: the variables only
// local runs set, by name, each with the reason.
func (f *Function) CheckEnv(read []string, localOnly map[string]string) error {
	seen := map[string]bool{}
	var undeclared, unread []string
	for _, name := range read {
		seen[name] = true
		if _, ok := f.Env[name]; !ok && localOnly[name] == "" {
			undeclared = append(undeclared, name)
		}
	}
	for name := range f.Env {
		if !seen[name] {
			unread = append(unread, name)
		}
	}
	sort.Strings(undeclared)
	sort.Strings(unread)
	var msgs []string
	if len(undeclared) > 0 {
		msgs = append(msgs, fmt.Sprintf("%s reads %s, which template.yaml does not give it", f.LogicalID, strings.Join(undeclared, ", ")))
	}
	if len(unread) > 0 {
		msgs = append(msgs, fmt.Sprintf("template.yaml gives %s %s, which its configuration never reads", f.LogicalID, strings.Join(unread, ", ")))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

// Schedule is a ScheduleV2 (or Schedule) event.
type Schedule struct {
	Event      string // the event's name in the template
	Expression string // cron(...) or rate(...)
	Timezone   string // IANA name; "" is UTC
	Input      string // the JSON payload; "" is {}
	Disabled   bool
}

// Route is an HttpApi event.
type Route struct {
	Method string // GET, or ANY
	Path   string // /v1/admin/users/{id}/usage
	// JWT says the route is behind the API's JWT authorizer.
	JWT bool
}

// Key is the API Gateway route key, "GET /v1/usage".
func (r Route) Key() string { return r.Method + " " + r.Path }

// Function returns the function whose directory is name, or nil.
func (t *Template) Function(name string) *Function {
	for i := range t.Functions {
		if t.Functions[i].Name == name {
			return &t.Functions[i]
		}
	}
	return nil
}

// Load reads the SAM template at path.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse reads a SAM template. CloudFormation's short tags (!Ref,
// !GetAtt, !Sub …) are kept as the nodes' tags; where the local stack needs
// a plain value and finds one of them, it uses its default.
func Parse(b []byte) (*Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("parse template: empty document")
	}
	root := doc.Content[0]
	globalTimeout := intValue(get(root, "Globals", "Function", "Timeout"), 3)
	params := parameterDefaults(get(root, "Parameters"))
	globalEnv := get(root, "Globals", "Function", "Environment", "Variables")
	resources := get(root, "Resources")
	if resources == nil || resources.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("parse template: no Resources")
	}
	// APIs whose routes sit behind an authorizer unless they opt out.
	defaultAuth := map[string]bool{}
	for i := 0; i+1 < len(resources.Content); i += 2 {
		id, r := resources.Content[i].Value, resources.Content[i+1]
		if scalar(get(r, "Type")) == "AWS::Serverless::HttpApi" {
			defaultAuth[id] = scalar(get(r, "Properties", "Auth", "DefaultAuthorizer")) != ""
		}
	}
	s := &Template{Queues: map[string]Queue{}, Alarms: map[string]Alarm{}}
	for i := 0; i+1 < len(resources.Content); i += 2 {
		id, r := resources.Content[i].Value, resources.Content[i+1]
		if scalar(get(r, "Type")) == "AWS::CloudWatch::Alarm" {
			s.Alarms[id] = Alarm{Namespace: scalar(get(r, "Properties", "Namespace")),
				MetricName: scalar(get(r, "Properties", "MetricName")), Dimensions: dimensions(get(r, "Properties", "Dimensions")),
				Period: intValue(get(r, "Properties", "Period"), 0), Actions: listed(get(r, "Properties", "AlarmActions"))}
		}
		if scalar(get(r, "Type")) == "AWS::SQS::Queue" {
			s.Queues[id] = Queue{VisibilityTimeout: intValue(get(r, "Properties", "VisibilityTimeout"), 0),
				MaxReceiveCount: intValue(get(r, "Properties", "RedrivePolicy", "maxReceiveCount"), 0)}
		}
		if scalar(get(r, "Type")) != "AWS::Serverless::Function" {
			continue
		}
		props := get(r, "Properties")
		fn := Function{
			LogicalID: id,
			Name:      strings.ToLower(strings.TrimSuffix(id, "Function")),
			Timeout:   intValue(get(props, "Timeout"), globalTimeout),
			Env:       map[string]Value{},
		}
		if dest := get(props, "EventInvokeConfig", "DestinationConfig", "OnFailure"); scalar(get(dest, "Type")) == "SQS" {
			fn.OnFailure = getAttResource(get(dest, "Destination"))
		}
		for _, vars := range []*yaml.Node{globalEnv, get(props, "Environment", "Variables")} {
			if vars == nil || vars.Kind != yaml.MappingNode {
				continue
			}
			for j := 0; j+1 < len(vars.Content); j += 2 {
				fn.Env[vars.Content[j].Value] = envValue(vars.Content[j+1], params)
			}
		}
		evs := get(props, "Events")
		if evs != nil && evs.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(evs.Content); j += 2 {
				name, ev := evs.Content[j].Value, evs.Content[j+1]
				ep := get(ev, "Properties")
				switch scalar(get(ev, "Type")) {
				case "ScheduleV2", "Schedule":
					state := scalar(get(ep, "State"))
					enabled := get(ep, "Enabled")
					fn.Schedules = append(fn.Schedules, Schedule{
						Event:      name,
						Expression: scalar(get(ep, "ScheduleExpression")),
						Timezone:   scalar(get(ep, "ScheduleExpressionTimezone")),
						Input:      scalar(get(ep, "Input")),
						Disabled:   state == "DISABLED" || (enabled != nil && enabled.Tag == "!!bool" && enabled.Value == "false"),
					})
				case "HttpApi":
					method := strings.ToUpper(scalar(get(ep, "Method")))
					path := scalar(get(ep, "Path"))
					if method == "" || method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
						method = "ANY"
					}
					if path == "" {
						path = "/{proxy+}"
					}
					api := refName(get(ep, "ApiId"))
					authorizer := scalar(get(ep, "Auth", "Authorizer"))
					jwt := authorizer != "" && authorizer != "NONE"
					if authorizer == "" {
						jwt = defaultAuth[api]
					}
					fn.Routes = append(fn.Routes, Route{Method: method, Path: path, JWT: jwt})
				}
			}
		}
		s.Functions = append(s.Functions, fn)
	}
	sort.Slice(s.Functions, func(i, j int) bool { return s.Functions[i].Name < s.Functions[j].Name })
	return s, nil
}

// listed reports whether n is a list of at least one item (not an
// intrinsic function such as !If).
func listed(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.SequenceNode && n.ShortTag() == "!!seq" && len(n.Content) > 0
}

// dimensions returns an alarm's Dimensions list by name, each value a
// literal or an intrinsic function written with its tag.
func dimensions(n *yaml.Node) map[string]string {
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, d := range n.Content {
		v := get(d, "Value")
		switch {
		case v == nil:
		case v.Kind == yaml.ScalarNode && strings.HasPrefix(v.Tag, "!") && !strings.HasPrefix(v.Tag, "!!"):
			m[scalar(get(d, "Name"))] = v.Tag + " " + v.Value
		default:
			m[scalar(get(d, "Name"))] = scalar(v)
		}
	}
	return m
}

// getAttResource returns X of !GetAtt X.Arn (or {"Fn::GetAtt": [X, Arn]}).
func getAttResource(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!GetAtt" {
		id, _, _ := strings.Cut(n.Value, ".")
		return id
	}
	if a := get(n, "Fn::GetAtt"); a != nil && a.Kind == yaml.SequenceNode && len(a.Content) > 0 {
		return scalar(a.Content[0])
	}
	return ""
}

// parameter is a template parameter: its default, if it has one.
type parameter struct {
	Default    string
	HasDefault bool
}

// parameterDefaults returns the template's parameters by name, with their
// defaults.
func parameterDefaults(params *yaml.Node) map[string]parameter {
	m := map[string]parameter{}
	if params == nil || params.Kind != yaml.MappingNode {
		return m
	}
	for i := 0; i+1 < len(params.Content); i += 2 {
		var p parameter
		if d := get(params.Content[i+1], "Default"); d != nil && d.Kind == yaml.ScalarNode {
			p = parameter{Default: d.Value, HasDefault: true}
		}
		m[params.Content[i].Value] = p
	}
	return m
}

// envValue is an environment variable's value: a plain scalar, or a !Ref
// of a parameter with a default; anything else, a parameter without a
// default included, is known only once deployed.
func envValue(n *yaml.Node, params map[string]parameter) Value {
	if n.Kind == yaml.ScalarNode && (n.Tag == "" || strings.HasPrefix(n.Tag, "!!")) {
		return Value{Default: n.Value}
	}
	p, ok := params[refName(n)]
	switch {
	case ok && p.HasDefault:
		return Value{Default: p.Default, Parameter: refName(n)}
	case ok:
		return Value{Deployed: true, Parameter: refName(n)}
	}
	return Value{Deployed: true}
}

// get follows mapping keys from n; nil when one is missing.
func get(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n == nil {
			return nil
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			n = n.Content[0]
		}
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// scalar returns a plain scalar's value; "" for anything else, including
// intrinsic functions (!Ref X, {Ref: X}).
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || (n.Tag != "" && strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!")) {
		return ""
	}
	return n.Value
}

// refName returns X of !Ref X or {Ref: X}.
func refName(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!Ref" {
		return n.Value
	}
	return scalar(get(n, "Ref"))
}

func intValue(n *yaml.Node, def int) int {
	v, err := strconv.Atoi(scalar(n))
	if err != nil || v <= 0 {
		return def
	}
	return v
}
