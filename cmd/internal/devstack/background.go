package devstack

import (
	"context"
	"time"

	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/cmd/internal/scheduler"
	"github.com/nexus/usage/cmd/internal/sqspoll"
)

// startPoller runs the usage queue's event source mapping into the record
// function (batches of up to 100 messages or BatchWindow, partial batch
// failures), when record is running, and the notify queue's into deliver.
func (s *Stack) startPoller(context.Context) error {
	if rec := s.lambdas["record"]; rec != nil {
		p := &sqspoll.Poller{Client: moto.SQS(s.state.SQSEndpoint, s.cfg.Region), QueueURL: s.state.QueueURL,
			Handler: sqspoll.LambdaHandler(rec), BatchSize: 100, Window: s.cfg.BatchWindow, VisibilityTimeout: s.cfg.VisibilityTimeout,
			WaitTime: time.Second, Region: s.cfg.Region, Logger: s.logger}
		s.background(func(ctx context.Context) { _ = p.Run(ctx) })
	}
	// The notify queue's event source mapping into deliver (batches of
	// 10, as deployed; a short window: an alert waits for nothing).
	if del := s.lambdas["deliver"]; del != nil {
		np := &sqspoll.Poller{Client: moto.SQS(s.state.SQSEndpoint, s.cfg.Region), QueueURL: s.state.NotifyQueueURL,
			Handler: sqspoll.LambdaHandler(del), BatchSize: 10, Window: 100 * time.Millisecond, VisibilityTimeout: s.cfg.VisibilityTimeout,
			WaitTime: time.Second, Region: s.cfg.Region, Logger: s.logger}
		s.background(func(ctx context.Context) { _ = np.Run(ctx) })
	}
	return nil
}

// startScheduler runs the schedules of the functions that are running.
func (s *Stack) startScheduler(context.Context) error {
	var jobs []scheduler.Job
	for _, j := range s.jobs {
		if s.lambdas[j.Function] == nil {
			s.logger.Warn("schedule not run: its function is not running", "function", j.Function, "schedule", j.Spec.Expression)
			continue
		}
		jobs = append(jobs, j)
	}
	s.background(func(ctx context.Context) { scheduler.Run(ctx, jobs, s.Invoke, s.logger) })
	return nil
}
