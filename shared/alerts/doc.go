// Package alerts delivers usage alerts (usage.Alerter): to an Amazon
// EventBridge bus with PutEvents in AWS, or as a log line locally.
//
// Example picks the alerter and hands it to the limiter
// (usage.LimiterOptions.Alerter).
//
// An event has source "nexus.usage", detail-type "Usage threshold crossed"
// and the usage.Alert as its JSON detail, so a rule can match e.g.
// {"source": ["nexus.usage"], "detail": {"threshold_percent": [100]}}.
package alerts
