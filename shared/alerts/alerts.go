package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/nexus/usage/shared/usage"
)

// Event source and detail type of usage alerts.
const (
	Source     = "nexus.usage"
	DetailType = "Usage threshold crossed"
)

// PutEventsAPI is the part of the EventBridge client the alerter uses.
type PutEventsAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// EventBridge puts alerts on an event bus.
type EventBridge struct {
	client PutEventsAPI
	bus    string
}

var _ usage.Alerter = (*EventBridge)(nil)

// NewEventBridge returns an alerter putting events on the bus (name or
// ARN; "" means the account's default bus).
func NewEventBridge(client PutEventsAPI, bus string) *EventBridge {
	if bus == "" {
		bus = "default"
	}
	return &EventBridge{client: client, bus: bus}
}

// Alert puts one event. A failed request or a failed entry is
// CodeUnavailable.
func (e *EventBridge) Alert(ctx context.Context, a usage.Alert) error {
	detail, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	out, err := e.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: aws.String(e.bus),
		Source:       aws.String(Source),
		DetailType:   aws.String(DetailType),
		Detail:       aws.String(string(detail)),
		Time:         aws.Time(a.At),
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

// Log writes alerts as log lines, for local use.
type Log struct{ logger *slog.Logger }

var _ usage.Alerter = (*Log)(nil)

// NewLog returns an alerter logging to logger (nil: slog.Default()).
func NewLog(logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{logger: logger}
}

// Alert logs a at warning level; it never fails.
func (l *Log) Alert(ctx context.Context, a usage.Alert) error {
	l.logger.WarnContext(ctx, "usage alert", "user_id", a.UserID, "plan_id", a.PlanID,
		"threshold_percent", a.Threshold, "included_calls", a.Included, "used_calls", a.Used,
		"period_start", a.Period.Start, "period_end", a.Period.End)
	return nil
}
