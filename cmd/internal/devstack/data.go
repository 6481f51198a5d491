package devstack

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/postgres"
)

// openDatabase uses DATABASE_URL (migrated) or creates the dev database
// from the migrated template of the throwaway server.
func (s *Stack) openDatabase(ctx context.Context) error {
	url := s.cfg.Env("DATABASE_URL")
	if url != "" {
		if _, err := postgres.Migrate(ctx, url, s.logger); err != nil {
			return fmt.Errorf("migrate DATABASE_URL: %w", err)
		}
		s.logger.Info("using DATABASE_URL (migrated)")
	} else {
		admin, tmpl := s.cfg.Env("NEXUS_TEST_DATABASE_URL"), s.cfg.Env("NEXUS_TEST_TEMPLATE")
		if admin == "" || tmpl == "" {
			return errors.New("no database: run through scripts/with-services.sh (make dev does), or set DATABASE_URL")
		}
		var err error
		if url, err = createDatabase(ctx, admin, tmpl, s.cfg.DatabaseName); err != nil {
			return err
		}
		s.logger.Info("created database from the migrated template", "database", s.cfg.DatabaseName)
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 4})
	if err != nil {
		return err
	}
	s.db, s.state.DatabaseURL = db, url
	return nil
}

// createDatabase (re)creates name from the template and returns its URL.
func createDatabase(ctx context.Context, admin, tmpl, name string) (string, error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize())); err != nil {
		return "", fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, pgx.Identifier{name}.Sanitize(), pgx.Identifier{tmpl}.Sanitize())); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// createQueues creates the usage queue with its DLQ (redrive after the
// template's maxReceiveCount) and the alert bus in moto_server.
func (s *Stack) createQueues(ctx context.Context) error {
	endpoint := s.cfg.Env("NEXUS_TEST_SQS_ENDPOINT")
	if endpoint == "" {
		return errors.New("no SQS: moto_server is not running (pip install 'moto[server]'; make dev starts it)")
	}
	s.state.SQSEndpoint = endpoint
	q, nq, bus, err := s.makeQueues(ctx)
	if err != nil {
		return err
	}
	s.state.QueueURL, s.state.DLQURL, s.state.AlertBus = q.URL, q.DLQURL, bus
	s.state.NotifyQueueURL, s.state.NotifyDLQURL = nq.URL, nq.DLQURL
	return nil
}

// makeQueues creates the usage queue, the notify queue (each with its
// DLQ) and the bus in moto_server at the state's endpoint; the bus is ""
// when it could not be made.
func (s *Stack) makeQueues(ctx context.Context) (q, nq moto.Queues, bus string, err error) {
	// The template's maxReceiveCount, with the stack's (shorter) visibility
	// timeout: the record function's redelivery delays span as many
	// receives as deployed. The deliver function sets its messages'
	// visibility itself (its retry schedule).
	client := moto.SQS(s.state.SQSEndpoint, s.cfg.Region)
	q, err = moto.CreateQueues(ctx, client,
		moto.QueueOptions{Name: queueName(s.cfg.Stage), DLQName: dlqName(s.cfg.Stage), VisibilityTimeout: s.cfg.VisibilityTimeout,
			MaxReceiveCount: s.tmpl.Queues["UsageQueue"].MaxReceiveCount})
	if err != nil {
		return q, nq, "", err
	}
	nq, err = moto.CreateQueues(ctx, client,
		moto.QueueOptions{Name: notifyName(s.cfg.Stage), DLQName: notifyDLQName(s.cfg.Stage), VisibilityTimeout: s.cfg.VisibilityTimeout,
			MaxReceiveCount: s.tmpl.Queues["NotifyQueue"].MaxReceiveCount})
	if err != nil {
		return q, nq, "", fmt.Errorf("notify queue: %w", err)
	}
	if err := moto.CreateBus(ctx, moto.EventBridge(s.state.SQSEndpoint, s.cfg.Region), busName(s.cfg.Stage)); err != nil {
		s.logger.Warn("alert bus not created", "error", err)
		return q, nq, "", nil
	}
	return q, nq, busName(s.cfg.Stage), nil
}

// RestoreQueues creates the queues and the alert bus again after
// moto_server restarted at the same endpoint: it keeps them in memory, so
// a restart loses them with every message not yet consumed (real SQS does
// not; a producer that must lose nothing replays what is not recorded).
// Their URLs are the same as before, so the functions, the poller and the
// state need no change; until this runs they fail on a missing queue and
// retry.
func (s *Stack) RestoreQueues(ctx context.Context) error {
	q, nq, _, err := s.makeQueues(ctx)
	if err != nil {
		return fmt.Errorf("restore the queues: %w", err)
	}
	if q.URL != s.state.QueueURL || q.DLQURL != s.state.DLQURL || nq.URL != s.state.NotifyQueueURL {
		return fmt.Errorf("restore the queues: moto_server named them %s and %s, not %s and %s", q.URL, q.DLQURL, s.state.QueueURL, s.state.DLQURL)
	}
	return nil
}

// seedUsers creates the demo users with their API keys and tokens.
func (s *Stack) seedUsers(ctx context.Context) error {
	users, admin, err := seed.Users(ctx, s.db, time.Now().UTC())
	if err != nil {
		return err
	}
	s.state.Users, s.state.Admin = users, admin
	if len(users) > 0 {
		s.state.ClosedPeriod = users[0].PeriodStart.AddDate(0, -1, 0).Format("2006-01")
	}
	return nil
}
