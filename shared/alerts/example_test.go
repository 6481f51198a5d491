package alerts_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/nexus/usage/shared/alerts"
	"github.com/nexus/usage/shared/notify"
)

// Example chooses where the notification workflow's events go besides the
// webhooks: the EventBridge bus in AWS, log lines locally. It publishes
// one event as a log line (the clock-free text handler keeps the output
// stable).
func Example() {
	ctx := context.Background()
	p, err := newPublisher(ctx, "") // os.Getenv("ALERT_BUS_NAME") in a function
	if err != nil {
		fmt.Println(err)
		return
	}
	// notify.Dispatcher{Bus: p} publishes each event of the outbox once.
	err = p.Publish(ctx, notify.Event{ID: "e1", Type: notify.EventThreshold, UserID: "u1",
		At: time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC), Data: []byte(`{"threshold_percent":80}`)})
	fmt.Println(err)
	// Output:
	// level=WARN msg="usage alert" event_id=e1 type=usage.threshold.reached user_id=u1 data="{\"threshold_percent\":80}"
	// <nil>
}

// newPublisher returns the publisher of a bus name: PutEvents to the bus,
// or log lines when there is none.
func newPublisher(ctx context.Context, bus string) (notify.Publisher, error) {
	if bus != "" {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		return alerts.NewEventBridge(eventbridge.NewFromConfig(cfg), bus), nil
	}
	return alerts.NewLog(slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: withoutTime}))), nil
}

func withoutTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Attr{}
	}
	return a
}
