package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nexus/usage/shared/awscron"
)

// Job is one schedule of one function.
type Job struct {
	Function string
	Spec     ScheduleSpec
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
func Jobs(t *Template) ([]Job, error) {
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

// Scheduler runs jobs at their times, like EventBridge Scheduler.
type Scheduler struct {
	Jobs   []Job
	Invoke func(ctx context.Context, function string, input []byte) ([]byte, error)
	Logger *slog.Logger
}

// Run runs the jobs until ctx is done.
func (s *Scheduler) Run(ctx context.Context) {
	done := make(chan struct{})
	for _, j := range s.Jobs {
		go func() {
			defer func() { done <- struct{}{} }()
			s.run(ctx, j)
		}()
	}
	for range s.Jobs {
		<-done
	}
}

func (s *Scheduler) run(ctx context.Context, j Job) {
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
		out, err := s.Invoke(ctx, j.Function, j.Input())
		if err != nil {
			s.Logger.ErrorContext(ctx, "scheduled run failed", "function", j.Function, "schedule", j.Spec.Expression, "error", err)
			continue
		}
		s.Logger.InfoContext(ctx, "scheduled run", "function", j.Function, "schedule", j.Spec.Expression,
			"ms", time.Since(start).Milliseconds(), "result", truncate(string(out), 300))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
