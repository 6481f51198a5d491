package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/cmd/internal/gateway"
	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/cmd/internal/samtemplate"
	"github.com/nexus/usage/cmd/internal/scheduler"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/auth"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/sqspoll"
)

// Config configures the local stack.
type Config struct {
	Root         string // the module's root directory
	Template     string // template.yaml, relative to Root
	Addr         string // local API Gateway
	AdminAddr    string // state and run-now endpoint
	DatabaseName string // created on the throwaway server
	Stage        string // default dev
	Region       string // default us-east-1
	// BatchWindow is the SQS batching window (default 5s, as deployed).
	BatchWindow time.Duration
	Demo        bool
	Quiet       bool
	// FunctionLog receives the functions' output; nil discards it.
	FunctionLog io.Writer
	// Env reads the environment (os.Getenv).
	Env func(string) string
	// Start is when the user started the stack, for the ready time.
	Start time.Time
	// Bootstraps is a directory holding the functions' binaries, built
	// before the stack starts (make dev and make test: $NEXUS_LAMBDA_DIR);
	// empty, or a binary missing there, means the stack builds them.
	Bootstraps string
}

// State is what a running stack tells its users (GET /state on the admin
// endpoint): endpoints, demo users and their credentials.
type State struct {
	GatewayURL  string            `json:"gateway_url"`
	AdminURL    string            `json:"admin_url"`
	DatabaseURL string            `json:"database_url"`
	SQSEndpoint string            `json:"sqs_endpoint"`
	Region      string            `json:"region"`
	QueueURL    string            `json:"queue_url"`
	DLQURL      string            `json:"dlq_url"`
	AlertBus    string            `json:"alert_bus,omitempty"`
	StripeURL   string            `json:"stripe_url,omitempty"`
	JWTIssuer   string            `json:"jwt_issuer"`
	JWTAudience string            `json:"jwt_audience"`
	Functions   map[string]string `json:"functions"` // name → running, build failed: …
	Users       []seed.User       `json:"users"`
	Admin       seed.User         `json:"admin"`
	// ClosedPeriod is the month (YYYY-MM) in which the demo users' last
	// closed billing period starts: the period overage bills.
	ClosedPeriod string `json:"closed_period"`
}

// Devstack is a running local stack.
type Devstack struct {
	cfg     Config
	logger  *slog.Logger
	db      *postgres.DB
	lambdas map[string]*rie.Lambda
	state   State
	jobs    []scheduler.Job
	servers []*http.Server
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ready   time.Duration
	workDir string
}

// The names of the local queues and bus, as the template names them for
// stage dev.
func queueName(stage string) string { return "nexus-usage-" + stage }
func dlqName(stage string) string   { return "nexus-usage-dlq-" + stage }
func busName(stage string) string   { return "nexus-alerts-" + stage }

// Start brings the stack up. On error it stops whatever it had started.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Devstack, err error) {
	if cfg.Stage == "" {
		cfg.Stage = "dev"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.BatchWindow <= 0 {
		cfg.BatchWindow = 5 * time.Second
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	if cfg.Env == nil {
		cfg.Env = os.Getenv
	}
	d := &Devstack{cfg: cfg, logger: logger, lambdas: map[string]*rie.Lambda{}}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.state = State{Region: cfg.Region, JWTIssuer: seed.JWTIssuer, JWTAudience: seed.JWTAudience, Functions: map[string]string{},
		StripeURL: cfg.Env("NEXUS_TEST_STRIPE_URL")}

	tmpl, err := samtemplate.Load(filepath.Join(cfg.Root, cfg.Template))
	if err != nil {
		return nil, err
	}
	if d.jobs, err = scheduler.Jobs(tmpl); err != nil {
		logger.Warn("schedules left out", "error", err)
	}
	emulator, err := rie.Find(cfg.Root, cfg.Env)
	if err != nil {
		return nil, err
	}
	if d.workDir, err = os.MkdirTemp("", "nexus-devstack-"); err != nil {
		return nil, err
	}

	// A build (when nothing was built beforehand) takes longest: run it
	// while the database and queues are prepared.
	type built struct {
		bins map[string]string
		errs map[string]error
	}
	buildDone := make(chan built, 1)
	names := rie.FunctionDirs(cfg.Root)
	go func() {
		bins, errs := bootstraps(ctx, cfg.Root, cfg.Bootstraps, names, d.workDir)
		buildDone <- built{bins, errs}
	}()

	if err := d.openDatabase(ctx); err != nil {
		<-buildDone
		return nil, err
	}
	if err := d.createQueues(ctx); err != nil {
		<-buildDone
		return nil, err
	}
	now := time.Now().UTC()
	if d.state.Users, d.state.Admin, err = seed.Users(ctx, d.db, now); err != nil {
		<-buildDone
		return nil, err
	}
	if len(d.state.Users) > 0 {
		d.state.ClosedPeriod = d.state.Users[0].PeriodStart.AddDate(0, -1, 0).Format("2006-01")
	}

	b := <-buildDone
	env := functionEnv(cfg.Stage, cfg.Region, &d.state)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range names {
		if berr := b.errs[n]; berr != nil {
			d.state.Functions[n] = "build failed"
			logger.Error("function does not build; not starting it", "function", n, "error", berr)
			continue
		}
		timeout := 30 * time.Second
		if fn := tmpl.Function(n); fn != nil {
			timeout = time.Duration(fn.Timeout) * time.Second
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := rie.Start(ctx, rie.Config{Name: n, RIE: emulator, Bootstrap: b.bins[n], Env: env, Timeout: timeout, Log: rie.QuietLog(cfg.FunctionLog)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				d.state.Functions[n] = "failed to start"
				logger.Error("start function", "function", n, "error", err)
				return
			}
			d.lambdas[n] = l
			d.state.Functions[n] = "running"
		}()
	}
	wg.Wait()

	// The local API Gateway in front of the function with HTTP routes.
	verifier, err := auth.NewJWTVerifier(seed.JWTConfig())
	if err != nil {
		return nil, err
	}
	apiFn := "analytics"
	var routes []samtemplate.Route
	for _, fn := range tmpl.Functions {
		if len(fn.Routes) > 0 {
			apiFn, routes = fn.Name, append(routes, fn.Routes...)
		}
	}
	gw := &gateway.Gateway{Routes: routes, Verifier: verifier, Logger: logger}
	if l := d.lambdas[apiFn]; l != nil {
		gw.Function = l
	}
	gwURL, err := d.serve(cfg.Addr, gw)
	if err != nil {
		return nil, fmt.Errorf("local API Gateway: %w", err)
	}
	d.state.GatewayURL = gwURL
	adminURL, err := d.serve(cfg.AdminAddr, d.adminHandler())
	if err != nil {
		return nil, fmt.Errorf("admin endpoint: %w", err)
	}
	d.state.AdminURL = adminURL

	// The usage queue's event source mapping.
	if rec := d.lambdas["record"]; rec != nil {
		p := &sqspoll.Poller{Client: newSQSClient(d.state.SQSEndpoint, cfg.Region), QueueURL: d.state.QueueURL,
			Handler: sqsHandler(rec), BatchSize: 100, Window: cfg.BatchWindow, VisibilityTimeout: 60 * time.Second,
			WaitTime: time.Second, Region: cfg.Region, Logger: logger}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			_ = p.Run(runCtx)
		}()
	}
	// The schedules.
	var jobs []scheduler.Job
	for _, j := range d.jobs {
		if d.lambdas[j.Function] == nil {
			logger.Warn("schedule not run: its function is not running", "function", j.Function, "schedule", j.Spec.Expression)
			continue
		}
		jobs = append(jobs, j)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		scheduler.Run(runCtx, jobs, d.invoke, logger)
	}()
	d.ready = time.Since(cfg.Start)
	logger.Info(fmt.Sprintf("ready in %.1fs", d.ready.Seconds()), "gateway", gwURL, "admin", adminURL)
	return d, nil
}

// bootstraps returns the functions' binaries: those of dir (make dev and
// make test build them before anything starts), or, without dir or when one
// is missing there, a build into out.
func bootstraps(ctx context.Context, root, dir string, names []string, out string) (map[string]string, map[string]error) {
	if bins, ok := rie.PrebuiltBootstraps(dir, names); ok {
		return bins, map[string]error{}
	}
	return rie.BuildBootstraps(ctx, root, names, out)
}

// openDatabase uses DATABASE_URL (migrated) or creates the dev database
// from the migrated template of the throwaway server.
func (d *Devstack) openDatabase(ctx context.Context) error {
	url := d.cfg.Env("DATABASE_URL")
	if url != "" {
		if _, err := postgres.Migrate(ctx, url, d.logger); err != nil {
			return fmt.Errorf("migrate DATABASE_URL: %w", err)
		}
		d.logger.Info("using DATABASE_URL (migrated)")
	} else {
		admin, tmpl := d.cfg.Env("NEXUS_TEST_DATABASE_URL"), d.cfg.Env("NEXUS_TEST_TEMPLATE")
		if admin == "" || tmpl == "" {
			return errors.New("no database: run through scripts/with-services.sh (make dev does), or set DATABASE_URL")
		}
		var err error
		if url, err = createDatabase(ctx, admin, tmpl, d.cfg.DatabaseName); err != nil {
			return err
		}
		d.logger.Info("created database from the migrated template", "database", d.cfg.DatabaseName)
	}
	db, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 4})
	if err != nil {
		return err
	}
	d.db, d.state.DatabaseURL = db, url
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
func (d *Devstack) createQueues(ctx context.Context) error {
	endpoint := d.cfg.Env("NEXUS_TEST_SQS_ENDPOINT")
	if endpoint == "" {
		return errors.New("no SQS: moto_server is not running (pip install 'moto[server]'; make dev starts it)")
	}
	d.state.SQSEndpoint = endpoint
	client := newSQSClient(endpoint, d.cfg.Region)
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(dlqName(d.cfg.Stage)),
		Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}})
	if err != nil {
		return fmt.Errorf("create the DLQ: %w", err)
	}
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		return fmt.Errorf("read the DLQ's ARN: %w", err)
	}
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queueName(d.cfg.Stage)),
		Attributes: map[string]string{
			"VisibilityTimeout": "60",
			"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, attrs.Attributes["QueueArn"]),
		}})
	if err != nil {
		return fmt.Errorf("create the usage queue: %w", err)
	}
	d.state.QueueURL, d.state.DLQURL = aws.ToString(q.QueueUrl), aws.ToString(dlq.QueueUrl)
	eb := eventbridge.New(eventbridge.Options{Region: d.cfg.Region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(busName(d.cfg.Stage))}); err != nil &&
		!strings.Contains(err.Error(), "AlreadyExists") {
		d.logger.Warn("alert bus not created", "error", err)
	} else {
		d.state.AlertBus = busName(d.cfg.Stage)
	}
	return nil
}

// functionEnv is every function's environment: the same variables the
// template sets, with local values.
func functionEnv(stage, region string, st *State) []string {
	env := append(rie.BaseEnv(),
		"STAGE="+stage,
		"DATABASE_URL="+st.DatabaseURL,
		"DATABASE_PROXY=false",
		"AWS_REGION="+region,
		"AWS_DEFAULT_REGION="+region,
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL="+st.SQSEndpoint,
		"AWS_ENDPOINT_URL_SQS="+st.SQSEndpoint,
		"QUEUE_URL="+st.QueueURL,
		"USAGE_QUEUE_URL="+st.QueueURL,
		"JWT_ISSUER="+seed.JWTIssuer,
		"JWT_AUDIENCE="+seed.JWTAudience,
		"JWT_HMAC_SECRET="+seed.JWTSecret,
	)
	if st.AlertBus != "" {
		env = append(env, "ALERT_BUS_NAME="+st.AlertBus)
	}
	if st.StripeURL != "" {
		env = append(env, "STRIPE_API_KEY=sk_test_123", "STRIPE_API_URL="+st.StripeURL)
	}
	return env
}

// sqsHandler invokes the record function with an SQS event, as the event
// source mapping does.
func sqsHandler(l *rie.Lambda) sqspoll.Handler {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		payload, err := json.Marshal(ev)
		if err != nil {
			return resp, err
		}
		out, err := l.Invoke(ctx, payload)
		if err != nil {
			return resp, err
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			return resp, fmt.Errorf("record's response: %w", err)
		}
		return resp, nil
	}
}

// invoke invokes a running function by name.
func (d *Devstack) invoke(ctx context.Context, name string, input []byte) ([]byte, error) {
	l := d.lambdas[name]
	if l == nil {
		return nil, fmt.Errorf("function %s is not running (%s)", name, d.state.Functions[name])
	}
	return l.Invoke(ctx, input)
}

// serve listens on addr and serves h until Stop; it returns the base URL.
func (d *Devstack) serve(addr string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	d.servers = append(d.servers, srv)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.logger.Error("server", "addr", addr, "error", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// adminHandler serves GET /state, POST /run/{function} and GET /healthz.
func (d *Devstack) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(d.State())
	})
	mux.HandleFunc("POST /run/{function}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("function")
		input, _ := io.ReadAll(io.LimitReader(r.Body, rie.MaxPayload))
		if len(strings.TrimSpace(string(input))) == 0 {
			input = []byte("{}")
			for _, j := range d.jobs {
				if j.Function == name {
					input = j.Input()
					break
				}
			}
		}
		if !json.Valid(input) {
			http.Error(w, "the body must be the function's JSON input", http.StatusBadRequest)
			return
		}
		if d.lambdas[name] == nil {
			http.Error(w, fmt.Sprintf("function %s is not running (%s)", name, d.state.Functions[name]), http.StatusServiceUnavailable)
			return
		}
		start := time.Now()
		out, err := d.invoke(r.Context(), name, input)
		var fe *rie.FunctionError
		switch {
		case errors.As(err, &fe):
			d.logger.Error("run now failed", "function", name, "error", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write(out)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		d.logger.Info("run now", "function", name, "ms", time.Since(start).Milliseconds(), "result", truncate(string(out), 300))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
		fmt.Fprintln(w)
	})
	return mux
}

// State returns the stack's state.
func (d *Devstack) State() *State {
	st := d.state
	return &st
}

// Ready is how long the stack took to come up.
func (d *Devstack) Ready() time.Duration { return d.ready }

// Lambda returns a running function, or nil.
func (d *Devstack) Lambda(name string) *rie.Lambda { return d.lambdas[name] }

// Stop stops everything the stack started.
func (d *Devstack) Stop() {
	if d.cancel != nil {
		d.cancel()
	}
	for _, s := range d.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
	d.wg.Wait()
	for _, l := range d.lambdas {
		l.Stop()
	}
	if d.db != nil {
		d.db.Close()
	}
	if d.workDir != "" {
		os.RemoveAll(d.workDir)
	}
}

// PrintBanner prints credentials and ready-to-paste commands.
func (d *Devstack) PrintBanner(w io.Writer) {
	st := d.State()
	var free, pro seed.User
	for _, u := range st.Users {
		switch u.UserID {
		case seed.FreeUserID:
			free = u
		case seed.ProUserID:
			pro = u
		}
	}
	gw, adm := st.GatewayURL, st.AdminURL
	today := time.Now().UTC()
	from := today.AddDate(0, 0, -7).Format("2006-01-02")
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("")
	p("Nexus Usage is running on this machine (ready in %.1fs).", d.ready.Seconds())
	p("")
	names := make([]string, 0, len(st.Functions))
	for n := range st.Functions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p("  function %-10s %s", n, st.Functions[n])
	}
	for _, j := range d.jobs {
		p("  schedule %-10s %s %s", j.Function, j.Spec.Expression, j.Location)
	}
	p("  API        %s", gw)
	p("  admin      %s   (GET /state, POST /run/{function})", adm)
	p("  database   %s", st.DatabaseURL)
	p("  SQS        %s   queue %s", st.SQSEndpoint, st.QueueURL)
	p("")
	for _, u := range st.Users {
		p("  %-10s user %s  api key %s", u.Plan, u.UserID, u.APIKey)
	}
	p("")
	p("  export TOKEN=%s", pro.Token)
	p("  export ADMIN_TOKEN=%s", st.Admin.Token)
	p("  export API_KEY=%s", pro.APIKey)
	p("")
	p("  curl -s -H \"Authorization: Bearer $TOKEN\" %s/v1/usage", gw)
	p("  curl -s -H \"Authorization: Bearer $TOKEN\" '%s/v1/usage/daily?from=%s&to=%s'", gw, from, today.Format("2006-01-02"))
	p("  curl -s -H \"X-Api-Key: $API_KEY\" -H 'Content-Type: application/json' -X POST %s/v1/events \\", gw)
	p("    -d '{\"endpoint\":\"GET /v1/games/{id}\",\"method\":\"GET\",\"status_code\":200,\"latency_ms\":12}'")
	p("  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" %s/v1/admin/summary", gw)
	p("  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" %s/v1/admin/top-users", gw)
	p("  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" '%s/v1/admin/overage?period=%s'", gw, st.ClosedPeriod)
	p("  curl -s -X POST %s/run/aggregate      # or: make run-aggregate", adm)
	p("  curl -s -X POST %s/run/overage        # or: make run-overage", adm)
	p("")
	p("  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test aws --region %s --endpoint-url %s sqs send-message \\", st.Region, st.SQSEndpoint)
	p("    --queue-url %s --message-body \"{\\\"v\\\":1,\\\"event_id\\\":\\\"$(cat /proc/sys/kernel/random/uuid)\\\",\\\"user_id\\\":\\\"%s\\\",\\\"endpoint\\\":\\\"GET /v1/games\\\",\\\"method\\\":\\\"GET\\\",\\\"status_code\\\":200,\\\"occurred_at\\\":\\\"$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)\\\"}\"", st.QueueURL, free.UserID)
	p("")
	p("  make demo     sends a minute's worth of realistic traffic; make smoke drives the whole flow.")
	p("  Ctrl-C stops everything.")
	p("")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
