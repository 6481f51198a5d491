package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nexus/usage/cmd/internal/awscron"
	"github.com/nexus/usage/shared/samtemplate"
)

// Job is one schedule of one function.
type Job struct {
	Function string // functions/<Function>
	Spec     samtemplate.Schedule
	Schedule awscron.Schedule
	Location *time.Location
}

// Input is the job's payload: the schedule's Input, else {}.
func (j Job) Input() []byte {
	if j.Spec.Input == "" {
		return []byte("{}")
	}
	return []byte(j.Spec.Input)
}

// Jobs returns the enabled schedules of the template's functions, and an
// error naming those it cannot read (they are left out).
func Jobs(t *samtemplate.Template) ([]Job, error) {
	var jobs []Job
	var errs []error
	for _, fn := range t.Functions {
		for _, s := range fn.Schedules {
			if s.Disabled {
				continue
			}
			sched, err := awscron.Parse(s.Expression)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s schedule %s: %w", fn.LogicalID, s.Event, err))
				continue
			}
			loc := time.UTC
			if s.Timezone != "" {
				if loc, err = time.LoadLocation(s.Timezone); err != nil {
					errs = append(errs, fmt.Errorf("%s schedule %s: time zone %q: %w", fn.LogicalID, s.Event, s.Timezone, err))
					continue
				}
			}
			jobs = append(jobs, Job{Function: fn.Name, Spec: s, Schedule: sched, Location: loc})
		}
	}
	return jobs, errors.Join(errs...)
}

// InvokeFunc invokes the function named function with input and returns
// its answer.
type InvokeFunc func(ctx context.Context, function string, input []byte) ([]byte, error)

// Run runs the jobs at their times with invoke until ctx is done, logging
// each run and its result.
func Run(ctx context.Context, jobs []Job, invoke InvokeFunc, logger *slog.Logger) {
	done := make(chan struct{})
	for _, j := range jobs {
		go func() {
			defer func() { done <- struct{}{} }()
			run(ctx, j, invoke, logger)
		}()
	}
	for range jobs {
		<-done
	}
}

func run(ctx context.Context, j Job, invoke InvokeFunc, logger *slog.Logger) {
	for {
		next := j.Schedule.Next(time.Now().In(j.Location))
		if next.IsZero() {
			return
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		start := time.Now()
		out, err := invoke(ctx, j.Function, j.Input())
		if err != nil {
			logger.ErrorContext(ctx, "scheduled run failed", "function", j.Function, "schedule", j.Spec.Expression, "error", err)
			continue
		}
		logger.InfoContext(ctx, "scheduled run", "function", j.Function, "schedule", j.Spec.Expression,
			"ms", time.Since(start).Milliseconds(), "result", truncate(string(out), 300))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
