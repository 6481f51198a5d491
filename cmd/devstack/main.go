// Command devstack runs the whole system on this machine: the four Lambda
// functions' real bootstraps under the AWS Lambda Runtime Interface
// Emulator, a local API Gateway in front of analytics, the SQS poller
// feeding record from moto_server's usage queue, a scheduler running
// aggregate and overage on template.yaml's cron expressions, and demo data.
// It stays up until Ctrl-C, then stops everything it started.
//
// make dev runs it under scripts/with-services.sh, which provides
// PostgreSQL (NEXUS_TEST_DATABASE_URL, NEXUS_TEST_TEMPLATE), moto_server
// (NEXUS_TEST_SQS_ENDPOINT) and stripe-mock (NEXUS_TEST_STRIPE_URL).
//
//	devstack [flags]          run the stack
//	devstack demo [-admin URL] send demo traffic to a running stack
//
// With DATABASE_URL set, the stack migrates and uses that database instead
// of creating nexus_dev on the throwaway server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		err = demoMain(ctx, os.Args[2:], logger)
	} else {
		err = stackMain(ctx, os.Args[1:], logger)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func stackMain(ctx context.Context, args []string, logger *slog.Logger) error {
	start := time.Now()
	if v := os.Getenv("NEXUS_DEV_START"); v != "" { // set by make dev
		if s, err := strconv.ParseFloat(v, 64); err == nil {
			start = time.Unix(0, int64(s*1e9))
		}
	}
	fs := flag.NewFlagSet("devstack", flag.ExitOnError)
	cfg := Config{Start: start}
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "address of the local API Gateway")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:8081", "address of the admin endpoint (state, run now)")
	fs.StringVar(&cfg.Template, "template", "template.yaml", "the SAM template to read schedules, routes and timeouts from")
	fs.StringVar(&cfg.DatabaseName, "db", "nexus_dev", "database to create from the template on the throwaway server")
	fs.BoolVar(&cfg.Demo, "demo", false, "send demo traffic once the stack is up")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "do not echo the functions' output")
	_ = fs.Parse(args)
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cfg.Root = root
	cfg.Env = os.Getenv
	cfg.Bootstraps = os.Getenv("NEXUS_LAMBDA_DIR")
	if !cfg.Quiet {
		cfg.FunctionLog = os.Stderr
	}
	st, err := Start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Stop()
	st.PrintBanner(os.Stdout)
	if cfg.Demo {
		go func() {
			stats, err := SendDemo(ctx, st.State(), time.Now().UTC(), logger)
			if err != nil {
				logger.Error("demo traffic", "error", err)
				return
			}
			logger.Info("demo traffic sent", "events", stats.Events, "duplicates", stats.Duplicates, "late", stats.Late,
				"errors", stats.Errors, "invalid_messages", stats.Invalid)
		}()
	}
	<-ctx.Done()
	logger.Info("stopping")
	return nil
}

func demoMain(ctx context.Context, args []string, logger *slog.Logger) error {
	fs := flag.NewFlagSet("devstack demo", flag.ExitOnError)
	admin := fs.String("admin", "http://127.0.0.1:8081", "the running stack's admin endpoint")
	_ = fs.Parse(args)
	st, err := fetchState(ctx, *admin)
	if err != nil {
		return fmt.Errorf("%w (is make dev running?)", err)
	}
	stats, err := SendDemo(ctx, st, time.Now().UTC(), logger)
	if err != nil {
		return err
	}
	fmt.Printf("sent %d events (%d duplicated, %d late, %d with error statuses) and %d invalid messages to %s\n",
		stats.Events, stats.Duplicates, stats.Late, stats.Errors, stats.Invalid, st.QueueURL)
	fmt.Printf("the record function sees them within 5 s; then run make run-aggregate run-overage and read:\n")
	fmt.Printf("  curl -s -H 'Authorization: Bearer %s' %s/v1/admin/overage?period=%s\n", st.Admin.Token, st.GatewayURL, time.Now().UTC().AddDate(0, -1, 0).Format("2006-01"))
	return nil
}

// fetchState reads a running stack's State from its admin endpoint.
func fetchState(ctx context.Context, admin string) (*State, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/state", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the stack's state: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("read the stack's state: %s: %s", resp.Status, b)
	}
	var st State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("read the stack's state: %w", err)
	}
	return &st, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// moduleRoot finds the directory holding go.mod from the working directory
// up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			b, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
			if strings.Contains(string(b), "module github.com/nexus/usage") {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the nexus usage module (no go.mod found)")
		}
		dir = parent
	}
}
