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

// createQueues creates the usage queue with its DLQ (redrive after 5
// receives) and the alert bus in moto_server.
func (s *Stack) createQueues(ctx context.Context) error {
	endpoint := s.cfg.Env("NEXUS_TEST_SQS_ENDPOINT")
	if endpoint == "" {
		return errors.New("no SQS: moto_server is not running (pip install 'moto[server]'; make dev starts it)")
	}
	s.state.SQSEndpoint = endpoint
	q, err := moto.CreateQueues(ctx, moto.SQS(endpoint, s.cfg.Region),
		moto.QueueOptions{Name: queueName(s.cfg.Stage), DLQName: dlqName(s.cfg.Stage)})
	if err != nil {
		return err
	}
	s.state.QueueURL, s.state.DLQURL = q.URL, q.DLQURL
	if err := moto.CreateBus(ctx, moto.EventBridge(endpoint, s.cfg.Region), busName(s.cfg.Stage)); err != nil {
		s.logger.Warn("alert bus not created", "error", err)
	} else {
		s.state.AlertBus = busName(s.cfg.Stage)
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
