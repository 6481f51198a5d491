package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/shared/record"
)

// StackOptions configure the stack a soak runs against.
type StackOptions struct {
	Root       string // the module's root
	Bootstraps string // prebuilt functions ($NEXUS_LAMBDA_DIR), or "" to build them
	// VisibilityTimeout is the usage queue's (default 5s): short, so that
	// the batches the faults fail come back within the run.
	VisibilityTimeout time.Duration
	// BatchWindow is the poller's batching window (default 500ms).
	BatchWindow time.Duration
	// Redelivery is the record function's delay before a failed batch's
	// messages come back (default SoakRedelivery: the deployed schedule
	// compressed 60 times, so that an outage of minutes stands for hours).
	Redelivery record.Redelivery
	// Log receives the stack's log at Level and above (nil: none), and
	// FunctionLog the functions' output (nil: none). Tally counts the
	// failures of both.
	Log         io.Writer
	Level       slog.Level
	FunctionLog io.Writer
	Tally       *Tally
	// Getenv reads the services' variables (default os.Getenv;
	// Services.Getenv for services of the soak's own).
	Getenv func(string) string
}

// SoakRedelivery is the record function's redelivery schedule in a soak:
// record.DefaultRedelivery (1 minute doubling to 15) compressed 60 times,
// 1 second doubling to 15. With the template's maxReceiveCount it spans
// 6.5 minutes, standing for 6.5 hours.
var SoakRedelivery = record.Redelivery{Base: record.DefaultRedelivery.Base / 60, Max: record.DefaultRedelivery.Max / 60}

// StartStack starts the local stack for a soak on free ports, with a
// database of its own on the throwaway server of scripts/with-services.sh
// (DATABASE_URL is not used: the soak's checks read the whole database).
// stop stops the stack and drops the database.
func StartStack(ctx context.Context, o StackOptions) (st *devstack.Stack, stop func(), err error) {
	if o.VisibilityTimeout <= 0 {
		o.VisibilityTimeout = 5 * time.Second
	}
	if o.BatchWindow <= 0 {
		o.BatchWindow = 500 * time.Millisecond
	}
	if o.Redelivery.Base <= 0 {
		o.Redelivery = SoakRedelivery
	}
	if o.Tally == nil {
		o.Tally = NewTally()
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	admin := o.Getenv("NEXUS_TEST_DATABASE_URL")
	if admin == "" {
		return nil, nil, errNoServices
	}
	name := fmt.Sprintf("soak_%d_%x", os.Getpid(), rand.Uint32())
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize()))
			conn.Close(ctx)
		}
	}
	var next slog.Handler
	if o.Log != nil {
		next = slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: o.Level})
	}
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return ""
		}
		return o.Getenv(k)
	}
	st, err = devstack.Start(ctx, devstack.Config{Root: o.Root, Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", PlatformAddr: "127.0.0.1:0", ReceiverAddr: "127.0.0.1:0",
		DatabaseName: name, Bootstraps: o.Bootstraps, Stage: fmt.Sprintf("soak%d", os.Getpid()),
		BatchWindow: o.BatchWindow, VisibilityTimeout: o.VisibilityTimeout, Env: env,
		FunctionEnv: []string{"REDELIVERY_BASE=" + o.Redelivery.Base.String(), "REDELIVERY_MAX=" + o.Redelivery.Max.String()},
		FunctionLog: o.Tally.FunctionLog(o.FunctionLog)}, slog.New(o.Tally.Handler(next)))
	if err != nil {
		drop()
		return nil, nil, err
	}
	for fn, status := range st.State().Functions {
		if status != "running" {
			st.Stop()
			drop()
			return nil, nil, fmt.Errorf("soak: functions/%s is %s, not running", fn, status)
		}
	}
	return st, func() { st.Stop(); drop() }, nil
}

// RestartCommand is a Config.Restart that runs command (scripts/
// restart-service.sh: getenv("NEXUS_TEST_RESTART")) with the service's
// name and the services' work directory; its exit status 3, or no
// command, is ErrNotRestartable.
func RestartCommand(getenv func(string) string) func(ctx context.Context, service string) error {
	command := getenv("NEXUS_TEST_RESTART")
	return func(ctx context.Context, service string) error {
		if command == "" {
			return fmt.Errorf("%w: NEXUS_TEST_RESTART is not set (run under scripts/with-services.sh)", ErrNotRestartable)
		}
		cmd := exec.CommandContext(ctx, command, service)
		cmd.Env = append(os.Environ(), "NEXUS_TEST_WORKDIR="+getenv("NEXUS_TEST_WORKDIR"))
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 3 {
			return fmt.Errorf("%w: %s", ErrNotRestartable, bytes.TrimSpace(out))
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w: %s", command, service, err, bytes.TrimSpace(out))
		}
		return nil
	}
}
