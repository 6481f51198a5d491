// Package awscron parses the schedule expressions of Amazon EventBridge
// (and EventBridge Scheduler): cron(...) with its six fields, and
// rate(...). The local stack uses it to run the scheduled functions at the
// times template.yaml gives them.
//
// An AWS cron expression has six fields, all required:
//
//	minutes  hours  day-of-month  month  day-of-week  year
//	0-59     0-23   1-31          1-12   1-7 (SUN=1)  1970-2199
//
// Each field takes *, single values, ranges (a-b), lists (a,b) and steps
// (*/n, a/n, a-b/n); months and weekdays also take their three-letter
// names. One of day-of-month and day-of-week must be ?. Day-of-month also
// takes L (the last day of the month); day-of-week takes nL (the last
// weekday n of the month) and n#k (the k-th weekday n). W is not supported.
//
// Example:
//
//	s, err := awscron.Parse("cron(30 0 * * ? *)") // daily at 00:30
//	if err != nil { ... }
//	next := s.Next(time.Now().UTC()) // the next 00:30 after now
package awscron
