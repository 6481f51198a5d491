// Package scheduler runs a SAM template's scheduled functions on this
// machine, as EventBridge Scheduler does in AWS: every enabled ScheduleV2
// (or Schedule) event becomes a Job that fires at the times of its cron(...)
// or rate(...) expression (package awscron), in its time zone, with its
// Input as the payload.
//
//	jobs, err := scheduler.Jobs(tmpl) // err names the schedules left out
//	if err != nil { logger.Warn("schedules left out", "error", err) }
//	go scheduler.Run(ctx, jobs, invoke, logger) // until ctx is done
package scheduler
