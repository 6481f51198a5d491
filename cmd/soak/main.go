// Command soak is the long fault soak of the metering pipeline (package
// soak): against the local stack with a database of its own, it sends
// events with duplicates, late, invalid and hostile ones through the usage
// queue and POST /v1/events, kills the record function in mid-batch,
// restarts moto_server once and stops PostgreSQL for an outage (a minute,
// standing for an hour at the soak's compressed redelivery schedule),
// redrives the DLQ through POST /v1/admin/redrive, then checks every event
// and every user's day and prints the figures. It exits 1 on any
// difference, 2 when the soak could not run.
//
// make soak runs it under scripts/with-services.sh, which provides the
// services and NEXUS_TEST_RESTART (scripts/restart-service.sh):
//
//	make soak                          # 200,000 events
//	make soak SOAK_FLAGS='-events 20000 -restamp -1'
//
// A negative share turns that part off (-restamp -1: duplicates keep their
// occurred_at; -http -1: the queue only; -kills -1: no kills).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/e2e/soak"
)

func main() {
	os.Exit(run())
}

func run() int {
	var cfg soak.Config
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	fs.IntVar(&cfg.Events, "events", 200_000, "events to send, every copy counted")
	fs.Float64Var(&cfg.Duplicates, "duplicates", 0.20, "share of sends repeating an earlier event id")
	fs.Float64Var(&cfg.Restamp, "restamp", 0.25, "share of duplicates re-stamped with another occurred_at (negative: none)")
	fs.Float64Var(&cfg.Late, "late", 0.10, "share of valid events 1-33 days old")
	fs.Float64Var(&cfg.Invalid, "invalid", 0.01, "share of invalid events (negative: none)")
	fs.Float64Var(&cfg.Hostile, "hostile", 0.005, "share of hostile values (negative: none)")
	fs.Float64Var(&cfg.HTTP, "http", 0.10, "share sent through POST /v1/events (negative: none)")
	fs.IntVar(&cfg.Users, "users", 50, "users of the queue path's events")
	fs.IntVar(&cfg.Kills, "kills", 10, "most kills of the record function in mid-batch (negative: none)")
	fs.BoolVar(&cfg.RestartPostgres, "restart-pg", true, "restart PostgreSQL once, at 40 % of the events")
	fs.BoolVar(&cfg.RestartMoto, "restart-moto", true, "restart moto_server once, at 70 % of the events (20 % with an outage)")
	fs.DurationVar(&cfg.Outage, "outage", time.Minute, "keep PostgreSQL down this long at 40 % of the events (0: a quick restart); the record path's redelivery schedule runs 60 times faster than deployed, so 1m stands for an hour")
	fs.IntVar(&cfg.DeadLetters, "dead-letters", 3, "messages of an earlier outage to put in the DLQ and redrive at the end (negative: none)")
	fs.IntVar(&cfg.Rate, "rate", 0, "events per second to aim at (0: as fast as the paths take them)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the events, their kinds and the faults")
	timeout := fs.Duration("timeout", 30*time.Minute, "bound of the whole run, drain included")
	visibility := fs.Duration("visibility", 5*time.Second, "the usage queue's visibility timeout")
	verbose := fs.Bool("v", false, "echo the stack's warnings and the functions' output")
	_ = fs.Parse(os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	root, err := devstack.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts := soak.StackOptions{Root: root, Bootstraps: os.Getenv("NEXUS_LAMBDA_DIR"), VisibilityTimeout: *visibility,
		Log: os.Stderr, Level: slog.LevelError, Tally: soak.NewTally()}
	if *verbose {
		opts.Level, opts.FunctionLog = slog.LevelWarn, io.Writer(os.Stderr)
	}
	st, stopStack, err := soak.StartStack(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	defer stopStack()
	cfg.Restart, cfg.Tally, cfg.Logger = soak.RestartCommand(os.Getenv), opts.Tally, logger
	rep, err := soak.Run(ctx, st, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	rep.Print(os.Stdout)
	if !rep.OK() {
		return 1
	}
	return 0
}
