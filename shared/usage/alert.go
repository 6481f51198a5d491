package usage

import (
	"context"
	"time"
)

// DefaultAlertThresholds are the percentages of a period's included calls
// whose first crossing raises a usage alert.
var DefaultAlertThresholds = []int{80, 100}

// Alert says that a user's usage in a billing period has crossed Threshold
// percent of the included calls. Each (user, period, threshold) is alerted
// once.
type Alert struct {
	UserID    string    `json:"user_id"`
	PlanID    string    `json:"plan_id"`
	Threshold int       `json:"threshold_percent"`
	Period    Period    `json:"period"`
	Included  int64     `json:"included_calls"`
	Used      int64     `json:"used_calls"`
	At        time.Time `json:"at"`
}

// Alerter delivers usage alerts (an EventBridge bus in AWS, a log line
// locally).
type Alerter interface {
	// Alert delivers a. It returns CodeUnavailable when the destination
	// cannot be reached; the alert is then not retried by the caller.
	Alert(ctx context.Context, a Alert) error
}
