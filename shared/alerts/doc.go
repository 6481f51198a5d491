// Package alerts puts the notification workflow's events (notify.Event:
// thresholds reached, hard quotas, endpoints disabled) on an Amazon
// EventBridge bus with PutEvents (notify.Publisher), for AWS-side
// consumers; the deliver function publishes each event of the outbox once
// (or more: EventBridge consumers deduplicate on detail.event_id).
//
// Example picks the publisher that notify.Dispatcher's Bus is given.
//
// An event has source "nexus.usage", detail-type "Usage threshold crossed"
// (or "Webhook endpoint disabled") and the event's data as its JSON detail
// with event_id, type and at beside its fields, so a rule can match e.g.
// {"source": ["nexus.usage"], "detail": {"threshold_percent": [100]}}, as
// it did when limits.Limiter put the 80 % and 100 % alerts on the bus.
package alerts
