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
	"github.com/nexus/usage/shared/usage"
)

// Example chooses where the limiter's usage alerts go: the EventBridge bus
// in AWS, log lines locally. It delivers one alert as a log line (the
// clock-free text handler keeps the output stable).
func Example() {
	ctx := context.Background()
	a, err := newAlerter(ctx, "") // os.Getenv("ALERT_BUS_NAME") in a function
	if err != nil {
		fmt.Println(err)
		return
	}
	// usage.LimiterOptions{Alerter: a} hands it to the limiter, which
	// sends an alert when a user crosses a threshold of the included calls.
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	err = a.Alert(ctx, usage.Alert{UserID: "u1", PlanID: "pro", Threshold: 80, Included: 1000, Used: 800,
		Period: usage.Period{Start: start, End: start.AddDate(0, 1, 0)}})
	fmt.Println(err)
	// Output:
	// level=WARN msg="usage alert" user_id=u1 plan_id=pro threshold_percent=80 included_calls=1000 used_calls=800 period_start=2026-03-01T00:00:00.000Z period_end=2026-04-01T00:00:00.000Z
	// <nil>
}

// newAlerter returns the alerter of a bus name: PutEvents to the bus, or
// log lines when there is none.
func newAlerter(ctx context.Context, bus string) (usage.Alerter, error) {
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
