package main

import (
	"os"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nexus/usage/shared/record"
)

// statedOutage is the database outage the record path rides out with
// nothing in the dead-letter queue (docs/architecture.md, template.yaml).
const statedOutage = 6 * time.Hour

// TestTemplateOutlastsOutage: with the usage queue's maxReceiveCount and
// the record function's redelivery schedule as template.yaml deploys them,
// a message first received when an outage starts is received again after
// statedOutage; even a function that dies on every receive (the queue's
// own visibility timeout each time) spans an hour; the schedule is the
// code's default; the queue keeps messages as long as the record path
// credits their wait (record.MaxQueueDelay).
func TestTemplateOutlastsOutage(t *testing.T) {
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Resources struct {
			RecordFunction struct {
				Properties struct {
					Environment struct {
						Variables map[string]yaml.Node `yaml:"Variables"`
					} `yaml:"Environment"`
				} `yaml:"Properties"`
			} `yaml:"RecordFunction"`
			UsageQueue struct {
				Properties struct {
					VisibilityTimeout      int `yaml:"VisibilityTimeout"`
					MessageRetentionPeriod int `yaml:"MessageRetentionPeriod"`
					RedrivePolicy          struct {
						MaxReceiveCount int `yaml:"maxReceiveCount"`
					} `yaml:"RedrivePolicy"`
				} `yaml:"Properties"`
			} `yaml:"UsageQueue"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	q := tmpl.Resources.UsageQueue.Properties
	vars := tmpl.Resources.RecordFunction.Properties.Environment.Variables
	base, err1 := time.ParseDuration(vars["REDELIVERY_BASE"].Value)
	maxd, err2 := time.ParseDuration(vars["REDELIVERY_MAX"].Value)
	if err1 != nil || err2 != nil || vars["USAGE_QUEUE_URL"].Value != "UsageQueue" {
		t.Fatalf("RecordFunction's USAGE_QUEUE_URL %q, REDELIVERY_BASE %q, REDELIVERY_MAX %q; want !Ref UsageQueue and durations",
			vars["USAGE_QUEUE_URL"].Value, vars["REDELIVERY_BASE"].Value, vars["REDELIVERY_MAX"].Value)
	}
	r := record.Redelivery{Base: base, Max: maxd}
	if r != record.DefaultRedelivery {
		t.Errorf("template's redelivery %+v; the code's default is %+v", r, record.DefaultRedelivery)
	}
	if got := r.Outlasts(q.RedrivePolicy.MaxReceiveCount); got < statedOutage {
		t.Errorf("maxReceiveCount %d with delays from %s to %s spans %s; want at least %s", q.RedrivePolicy.MaxReceiveCount, base, maxd, got, statedOutage)
	}
	if crashes := time.Duration(q.RedrivePolicy.MaxReceiveCount*q.VisibilityTimeout) * time.Second; crashes < time.Hour {
		t.Errorf("%d receives of %d s each span %s; want at least an hour when the function dies every time",
			q.RedrivePolicy.MaxReceiveCount, q.VisibilityTimeout, crashes)
	}
	if kept := time.Duration(q.MessageRetentionPeriod) * time.Second; kept != record.MaxQueueDelay {
		t.Errorf("the queue keeps messages %s; the record path credits a wait of %s (record.MaxQueueDelay)", kept, record.MaxQueueDelay)
	}

}
