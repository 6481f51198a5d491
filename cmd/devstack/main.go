// Command devstack runs the whole system on this machine (package
// devstack: the four functions under the Lambda emulator, the local API
// Gateway, the sample platform API, the SQS poller, the scheduler, demo
// users) until Ctrl-C, then stops everything it started.
//
// make dev runs it under scripts/with-services.sh, which provides
// PostgreSQL (NEXUS_TEST_DATABASE_URL, NEXUS_TEST_TEMPLATE), moto_server
// (NEXUS_TEST_SQS_ENDPOINT) and stripe-mock (NEXUS_TEST_STRIPE_URL).
//
//	devstack [flags]           run the stack
//	devstack demo [-admin URL]  send demo traffic to a running stack, print what it saw
//	devstack lag [-admin URL]   measure the lag from a metered request to GET /v1/usage
//	devstack redrive [-admin URL | -api URL -token JWT]
//	                            move the usage DLQ's messages back to the usage queue
//	                            (POST /v1/admin/redrive until it says no more)
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nexus/usage/cmd/internal/demo"
	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/platform"
	"github.com/nexus/usage/shared/record"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "demo":
		err = runDemo(ctx, os.Args[2:], logger)
	case len(os.Args) > 1 && os.Args[1] == "lag":
		err = runLag(ctx, os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "redrive":
		err = runRedrive(ctx, os.Args[2:])
	default:
		err = runStack(ctx, os.Args[1:], logger)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

// runStack runs the stack until ctx is done.
func runStack(ctx context.Context, args []string, logger *slog.Logger) error {
	fs := flag.NewFlagSet("devstack", flag.ExitOnError)
	cfg := devstack.Config{Start: startTime(), Bootstraps: os.Getenv("NEXUS_LAMBDA_DIR")}
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "address of the local API Gateway")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:8081", "address of the admin endpoint (state, run now)")
	fs.StringVar(&cfg.PlatformAddr, "platform-addr", "127.0.0.1:8090", "address of the sample platform API")
	fs.StringVar(&cfg.ReceiverAddr, "receiver-addr", "127.0.0.1:8091", "address of the webhook receiver")
	fs.DurationVar(&cfg.PlatformFlush, "platform-flush", platform.DefaultFlushInterval, "the sample platform API's usage publisher flush interval")
	fs.StringVar(&cfg.Template, "template", "template.yaml", "the SAM template to read schedules, routes and timeouts from")
	fs.StringVar(&cfg.DatabaseName, "db", "nexus_dev", "database to create from the template on the throwaway server")
	sendDemo := fs.Bool("demo", false, "send demo traffic once the stack is up")
	quiet := fs.Bool("quiet", false, "do not echo the functions' output")
	_ = fs.Parse(args)
	root, err := devstack.ModuleRoot()
	if err != nil {
		return err
	}
	cfg.Root = root
	if !*quiet {
		cfg.FunctionLog = os.Stderr
	}

	st, err := devstack.Start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Stop()
	st.PrintBanner(os.Stdout)
	if *sendDemo {
		go func() {
			res, err := demo.Run(ctx, st.State(), demo.Options{}, logger)
			if err != nil {
				logger.Error("demo traffic", "error", err)
				return
			}
			res.Print(os.Stdout)
		}()
	}
	<-ctx.Done()
	logger.Info("stopping")
	return nil
}

// startTime is when make dev started (NEXUS_DEV_START, its builds
// included), else now.
func startTime() time.Time {
	if s, err := strconv.ParseFloat(os.Getenv("NEXUS_DEV_START"), 64); err == nil {
		return time.Unix(0, int64(s*1e9))
	}
	return time.Now()
}

// runDemo sends demo traffic to the stack whose admin endpoint the flags
// name.
func runDemo(ctx context.Context, args []string, logger *slog.Logger) error {
	fs := flag.NewFlagSet("devstack demo", flag.ExitOnError)
	admin := fs.String("admin", "http://127.0.0.1:8081", "the running stack's admin endpoint")
	var o demo.Options
	fs.StringVar(&o.NextJS, "nextjs", "", "the Next.js example app's URL (examples/nextjs, started against this stack): part of the pro user's traffic goes through it")
	_ = fs.Parse(args)
	st, err := devstack.FetchState(ctx, *admin)
	if err != nil {
		return fmt.Errorf("%w (is make dev running?)", err)
	}
	res, err := demo.Run(ctx, st, o, logger)
	if err != nil {
		return err
	}
	res.Print(os.Stdout)
	return nil
}

// runLag measures the lag from a metered request to GET /v1/usage on the
// stack whose admin endpoint the flags name.
func runLag(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("devstack lag", flag.ExitOnError)
	admin := fs.String("admin", "http://127.0.0.1:8081", "the running stack's admin endpoint")
	var o demo.LagOptions
	fs.IntVar(&o.Requests, "n", 100, "metered requests to time")
	fs.DurationVar(&o.Every, "every", 200*time.Millisecond, "pace of the requests")
	_ = fs.Parse(args)
	st, err := devstack.FetchState(ctx, *admin)
	if err != nil {
		return fmt.Errorf("%w (is make dev running?)", err)
	}
	res, err := demo.MeasureLag(ctx, st, o)
	if err != nil {
		return err
	}
	res.Print(os.Stdout)
	if res.Max() > res.Goal {
		return fmt.Errorf("the longest lag, %s, is over the goal of %s", res.Max(), res.Goal)
	}
	return nil
}

// runRedrive calls POST /v1/admin/redrive until it says no more is left,
// on the running local stack (its gateway and admin token) or on the API
// the flags name (a deployed stack's ApiUrl and an admin's token).
func runRedrive(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("devstack redrive", flag.ExitOnError)
	admin := fs.String("admin", "http://127.0.0.1:8081", "the running local stack's admin endpoint")
	api := fs.String("api", os.Getenv("NEXUS_API_URL"), "a deployed stack's API URL (its ApiUrl output); empty: the local stack's")
	token := fs.String("token", os.Getenv("NEXUS_ADMIN_TOKEN"), "an admin's bearer token for -api")
	_ = fs.Parse(args)
	if *api == "" {
		st, err := devstack.FetchState(ctx, *admin)
		if err != nil {
			return fmt.Errorf("%w (is make dev running? for a deployed stack, set NEXUS_API_URL and NEXUS_ADMIN_TOKEN)", err)
		}
		*api, *token = st.GatewayURL, st.Admin.Token
	}
	if *token == "" {
		return errors.New("no admin token: set NEXUS_ADMIN_TOKEN (or -token)")
	}
	total, calls := 0, 0
	for {
		res, err := redriveOnce(ctx, strings.TrimRight(*api, "/")+"/v1/admin/redrive", *token)
		if err != nil {
			return fmt.Errorf("after %d messages moved: %w", total, err)
		}
		total += res.Moved
		calls++
		if !res.More {
			break
		}
	}
	fmt.Printf("redrive: %d messages moved from the usage DLQ back to the usage queue (%d calls)\n", total, calls)
	return nil
}

// redriveOnce makes one call of POST /v1/admin/redrive; a 429 is waited
// out as its Retry-After says.
func redriveOnce(ctx context.Context, url, token string) (record.RedriveResult, error) {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if err != nil {
			return record.RedriveResult{}, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return record.RedriveResult{}, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			select {
			case <-time.After(time.Duration(max(1, wait)) * time.Second):
				continue
			case <-ctx.Done():
				return record.RedriveResult{}, ctx.Err()
			}
		}
		var res record.RedriveResult
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &res) != nil {
			return res, fmt.Errorf("POST /v1/admin/redrive answered %s: %s", resp.Status, body)
		}
		return res, nil
	}
}
