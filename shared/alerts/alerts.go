package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

// Event source and detail types of the events put on the bus.
const (
	Source = "nexus.usage"
	// DetailType is the detail-type of the usage events (thresholds,
	// overage, hard quota).
	DetailType = "Usage threshold crossed"
	// DetailTypeEndpointDisabled is the detail-type of
	// notify.EventEndpointDisabled.
	DetailTypeEndpointDisabled = "Webhook endpoint disabled"
)

// PutEventsAPI is the part of the EventBridge client the publisher uses.
type PutEventsAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// EventBridge puts the notification workflow's events on an event bus
// (notify.Publisher).
type EventBridge struct {
	client PutEventsAPI
	bus    string
}

var _ notify.Publisher = (*EventBridge)(nil)

// NewEventBridge returns a publisher putting events on the bus (name or
// ARN; "" means the account's default bus).
func NewEventBridge(client PutEventsAPI, bus string) *EventBridge {
	if bus == "" {
		bus = "default"
	}
	return &EventBridge{client: client, bus: bus}
}

// Detail is an event's detail on the bus: its data's fields (a
// notify.Crossing: user_id, plan_id, threshold_percent, period,
// included_calls, used_calls, …) with its id, type and time beside them.
func Detail(e notify.Event) (string, error) {
	fields := map[string]json.RawMessage{}
	if len(e.Data) > 0 {
		if err := json.Unmarshal(e.Data, &fields); err != nil {
			return "", fmt.Errorf("decode event %s: %w", e.ID, err)
		}
	}
	for k, v := range map[string]any{"event_id": e.ID, "type": e.Type, "at": e.At.UTC()} {
		b, err := json.Marshal(v)
		if err != nil {
			return "", err
		}
		fields[k] = b
	}
	b, err := json.Marshal(fields)
	return string(b), err
}

// Publish implements notify.Publisher: one PutEvents entry. A failed
// request or entry is CodeUnavailable.
func (e *EventBridge) Publish(ctx context.Context, ev notify.Event) error {
	detail, err := Detail(ev)
	if err != nil {
		return err
	}
	dt := DetailType
	if !strings.HasPrefix(ev.Type, "usage.") {
		dt = DetailTypeEndpointDisabled
	}
	out, err := e.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: aws.String(e.bus),
		Source:       aws.String(Source),
		DetailType:   aws.String(dt),
		Detail:       aws.String(detail),
		Time:         aws.Time(ev.At),
		Resources:    []string{},
	}}})
	if err != nil {
		return fmt.Errorf("%w: %v", usage.Errorf(usage.CodeUnavailable, "alert bus unavailable"), err)
	}
	if out.FailedEntryCount > 0 {
		msg := "entry failed"
		if len(out.Entries) > 0 && out.Entries[0].ErrorCode != nil {
			msg = aws.ToString(out.Entries[0].ErrorCode) + ": " + aws.ToString(out.Entries[0].ErrorMessage)
		}
		return usage.Errorf(usage.CodeUnavailable, "put alert event: %s", msg)
	}
	return nil
}

// Log writes events as log lines, for a stack without a bus.
type Log struct{ logger *slog.Logger }

var _ notify.Publisher = (*Log)(nil)

// NewLog returns a publisher logging to logger (nil: slog.Default()).
func NewLog(logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{logger: logger}
}

// Publish logs ev at warning level; it never fails.
func (l *Log) Publish(ctx context.Context, ev notify.Event) error {
	l.logger.WarnContext(ctx, "usage alert", "event_id", ev.ID, "type", ev.Type, "user_id", ev.UserID, "data", string(ev.Data))
	return nil
}
