package alerts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/alerts"
	"github.com/nexus/usage/shared/usage"
)

type fakeBus struct {
	in  []*eventbridge.PutEventsInput
	out *eventbridge.PutEventsOutput
	err error
}

func (f *fakeBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.in = append(f.in, in)
	if f.out == nil {
		return &eventbridge.PutEventsOutput{}, f.err
	}
	return f.out, f.err
}

var alert = usage.Alert{UserID: "0190a4c4-52a4-7000-8000-000000000001", PlanID: "free", Threshold: 80,
	Period:   usage.Period{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
	Included: 1000, Used: 801, At: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}

func TestEventBridge(t *testing.T) {
	bus := &fakeBus{}
	if err := alerts.NewEventBridge(bus, "usage-alerts").Alert(context.Background(), alert); err != nil {
		t.Fatal(err)
	}
	if len(bus.in) != 1 || len(bus.in[0].Entries) != 1 {
		t.Fatalf("PutEvents calls %+v", bus.in)
	}
	e := bus.in[0].Entries[0]
	if aws.ToString(e.EventBusName) != "usage-alerts" || aws.ToString(e.Source) != alerts.Source || aws.ToString(e.DetailType) != alerts.DetailType {
		t.Errorf("entry %+v", e)
	}
	var got usage.Alert
	if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(alert, got); diff != "" {
		t.Errorf("detail (-want +got):\n%s", diff)
	}
	if !strings.Contains(aws.ToString(e.Detail), `"threshold_percent":80`) {
		t.Errorf("detail %s", aws.ToString(e.Detail))
	}
}

func TestEventBridgeFailures(t *testing.T) {
	for _, bus := range []*fakeBus{
		{err: errors.New("connection refused")},
		{out: &eventbridge.PutEventsOutput{FailedEntryCount: 1, Entries: []types.PutEventsResultEntry{{ErrorCode: aws.String("InternalFailure")}}}},
	} {
		if err := alerts.NewEventBridge(bus, "").Alert(context.Background(), alert); usage.ErrorCode(err) != usage.CodeUnavailable {
			t.Errorf("Alert = %v; want unavailable", err)
		}
		if aws.ToString(bus.in[0].Entries[0].EventBusName) != "default" {
			t.Errorf("bus %q; want default", aws.ToString(bus.in[0].Entries[0].EventBusName))
		}
	}
}

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	if err := alerts.NewLog(slog.New(slog.NewJSONHandler(&buf, nil))).Alert(context.Background(), alert); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); !strings.Contains(s, `"msg":"usage alert"`) || !strings.Contains(s, `"threshold_percent":80`) {
		t.Errorf("log line %s", s)
	}
}
