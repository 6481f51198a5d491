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
	"github.com/nexus/usage/shared/alerts"
	"github.com/nexus/usage/shared/notify"
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

var event = notify.Event{ID: "0190a4c4-52a4-7000-8000-0000000000aa", Type: notify.EventThreshold,
	UserID: "0190a4c4-52a4-7000-8000-000000000001", At: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC),
	Data: json.RawMessage(`{"user_id":"0190a4c4-52a4-7000-8000-000000000001","plan_id":"free","threshold_percent":80,
		"period":{"start":"2026-03-01T00:00:00Z","end":"2026-04-01T00:00:00Z"},"included_calls":1000,"used_calls":801}`)}

// TestEventBridge: the detail keeps the fields limits.Limiter's alerts had
// (threshold_percent, user_id, plan_id, period, included_calls,
// used_calls), so that the bus's rules keep matching, with the event's id,
// type and time beside them.
func TestEventBridge(t *testing.T) {
	bus := &fakeBus{}
	if err := alerts.NewEventBridge(bus, "usage-alerts").Publish(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	if len(bus.in) != 1 || len(bus.in[0].Entries) != 1 {
		t.Fatalf("PutEvents calls %+v", bus.in)
	}
	e := bus.in[0].Entries[0]
	if aws.ToString(e.EventBusName) != "usage-alerts" || aws.ToString(e.Source) != alerts.Source || aws.ToString(e.DetailType) != alerts.DetailType ||
		!aws.ToTime(e.Time).Equal(event.At) {
		t.Errorf("entry %+v", e)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"event_id": event.ID, "type": notify.EventThreshold, "threshold_percent": 80.0,
		"user_id": event.UserID, "plan_id": "free", "included_calls": 1000.0, "used_calls": 801.0, "at": "2026-03-10T12:00:00Z"} {
		if got[k] != want {
			t.Errorf("detail[%s] = %v; want %v", k, got[k], want)
		}
	}
	disabled := notify.Event{ID: "x", Type: notify.EventEndpointDisabled, Data: json.RawMessage(`{}`)}
	if err := alerts.NewEventBridge(bus, "").Publish(context.Background(), disabled); err != nil || aws.ToString(bus.in[1].Entries[0].DetailType) != alerts.DetailTypeEndpointDisabled {
		t.Errorf("disabled endpoint: %v, %+v", err, bus.in[1].Entries[0])
	}
}

func TestEventBridgeFailures(t *testing.T) {
	for _, bus := range []*fakeBus{
		{err: errors.New("connection refused")},
		{out: &eventbridge.PutEventsOutput{FailedEntryCount: 1, Entries: []types.PutEventsResultEntry{{ErrorCode: aws.String("InternalFailure")}}}},
	} {
		if err := alerts.NewEventBridge(bus, "").Publish(context.Background(), event); usage.ErrorCode(err) != usage.CodeUnavailable {
			t.Errorf("Publish = %v; want unavailable", err)
		}
		if aws.ToString(bus.in[0].Entries[0].EventBusName) != "default" {
			t.Errorf("bus %q; want default", aws.ToString(bus.in[0].Entries[0].EventBusName))
		}
	}
}

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	if err := alerts.NewLog(slog.New(slog.NewJSONHandler(&buf, nil))).Publish(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); !strings.Contains(s, `"msg":"usage alert"`) || !strings.Contains(s, `"type":"usage.threshold.reached"`) {
		t.Errorf("log line %s", s)
	}
}
