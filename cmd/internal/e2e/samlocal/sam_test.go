package samlocal_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus/usage/cmd/internal/e2e/samlocal"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// functions are the template's functions, by logical id.
var functions = []string{"RecordFunction", "AggregateFunction", "AnalyticsFunction", "OverageFunction", "DeliverFunction"}

// stack is one run of the SAM CLI over this checkout: its build and the
// environment of every sam command.
type stack struct {
	cli     string
	root    string
	build   string // sam build's output: template.yaml and a folder per function
	env     []string
	image   string
	envVars string // the --env-vars file
	params  []string
}

// sam runs the SAM CLI with args in the checkout and returns its standard
// output; it fails the test, with what the CLI printed, when sam fails.
func (s *stack) sam(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, s.cli, args...)
	cmd.Dir, cmd.Env = s.root, s.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("sam %s: %v\n%s\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if args[0] != "local" {
		t.Logf("sam %s: %.1f s", args[0], time.Since(start).Seconds())
	}
	return stdout.String()
}

// local returns the arguments every sam local command takes: the built
// template, the base image (never pulled), the environment and parameters.
func (s *stack) local(args ...string) []string {
	return append(args, "--template", filepath.Join(s.build, "template.yaml"), "--skip-pull-image",
		"--invoke-image", s.image, "--env-vars", s.envVars, "--parameter-overrides", strings.Join(s.params, " "))
}

// invoke runs sam local invoke of fn with event and returns the
// function's answer, logging how long the invoke took.
func (s *stack) invoke(ctx context.Context, t *testing.T, fn, event string) []byte {
	t.Helper()
	start := time.Now()
	out := s.sam(ctx, t, s.local("local", "invoke", fn, "--event", event)...)
	t.Logf("invoke %s (%s): %.1f s", fn, filepath.Base(event), time.Since(start).Seconds())
	return []byte(out)
}

// TestSAM builds and runs what ships with the real SAM CLI: sam validate
// --lint, sam build (four arm64 bootstraps), sam local invoke of each
// function with its sample event, checked in the database or the answer,
// and sam local start-api once. Every function runs with the template's
// defaults: pgx as behind RDS Proxy, the deployed configuration.
func TestSAM(t *testing.T) {
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	samPath, err := samlocal.Find(root, os.Getenv)
	if err != nil {
		pgtest.Require(t, "NEXUS_SAM", err.Error())
	}
	dockerHost := pgtest.Require(t, "NEXUS_TEST_DOCKER_HOST", "a Docker-compatible engine for sam local (podman)")
	image := pgtest.Require(t, "NEXUS_TEST_LAMBDA_IMAGE", "the Lambda base image for sam local")
	stripeURL := pgtest.Require(t, "NEXUS_TEST_STRIPE_URL", "stripe-mock")
	dbURL := pgtest.NewURL(t)
	ctx := testkit.Context(t)

	work := t.TempDir()
	s := &stack{cli: samPath, root: root, build: filepath.Join(work, "build"), image: image,
		env: append(os.Environ(), "DOCKER_HOST="+dockerHost, "SAM_CLI_TELEMETRY=0",
			"AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test"),
		params: []string{"DatabaseSecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
			"JwtIssuer=" + seed.JWTIssuer, "JwtAudience=" + seed.JWTAudience, "JwtPublicKey=set-by-env-vars"}}

	// The template's check and the build, side by side.
	t.Run("template", func(t *testing.T) {
		t.Run("validate", func(t *testing.T) {
			t.Parallel()
			s.sam(ctx, t, "validate", "--lint", "--template", "template.yaml")
		})
		t.Run("build", func(t *testing.T) {
			t.Parallel()
			s.sam(ctx, t, "build", "--build-in-source", "--parallel", "--template", "template.yaml", "--build-dir", s.build)
			for _, fn := range functions {
				checkArm64(t, filepath.Join(s.build, fn, "bootstrap"))
			}
		})
	})
	if t.Failed() {
		return
	}

	// Each function reaches PostgreSQL and stripe-mock through sockets in
	// its own folder, the one sam local mounts at /var/task.
	pg, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	stripe, err := url.Parse(stripeURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range functions {
		dir := filepath.Join(s.build, fn, ".nexus")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := samlocal.Forward(ctx, filepath.Join(dir, ".s.PGSQL.5432"), pg.Host); err != nil {
			t.Fatal(err)
		}
		if err := samlocal.Forward(ctx, filepath.Join(dir, "stripe.sock"), stripe.Host); err != nil {
			t.Fatal(err)
		}
	}

	// The deployed token issuer signs ES256 tokens; the local one's HS256
	// secret is not part of the template.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	database := fmt.Sprintf("postgres://postgres@/%s?host=/var/task/.nexus", strings.TrimPrefix(pg.Path, "/"))
	vars := map[string]map[string]string{
		"Parameters":        {"DATABASE_URL": database},
		"AnalyticsFunction": {"JWT_PUBLIC_KEY": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "USAGE_QUEUE_URL": "", "ALERT_BUS_NAME": ""},
		"OverageFunction":   {"STRIPE_SECRET_ARN": "", "STRIPE_API_KEY": "sk_test_123", "STRIPE_API_URL": "unix:/var/task/.nexus/stripe.sock"},
		"DeliverFunction":   {"NOTIFY_QUEUE_URL": "", "ALERT_BUS_NAME": ""},
	}
	s.envVars = filepath.Join(work, "env.json")
	writeJSON(t, s.envVars, vars)

	db, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	users, _, err := seed.Users(ctx, db, now)
	if err != nil {
		t.Fatal(err)
	}

	// The record function's first invoke builds the image sam local runs
	// every function on (the base image and the emulator); then the other
	// invokes and start-api run side by side.
	event := recordEvent(t, s, work, now)
	checkRecord(ctx, t, db, s.invoke(ctx, t, "RecordFunction", event), 1)
	token := sign(t, key, seed.ProUserID, now)
	t.Run("functions", func(t *testing.T) {
		t.Run("record", func(t *testing.T) {
			t.Parallel()
			checkRecord(ctx, t, db, s.invoke(ctx, t, "RecordFunction", event), 2)
		})
		t.Run("aggregate", func(t *testing.T) { t.Parallel(); testAggregate(ctx, t, s, db) })
		t.Run("overage", func(t *testing.T) { t.Parallel(); testOverage(ctx, t, s, db, users) })
		t.Run("analytics", func(t *testing.T) { t.Parallel(); testAnalytics(ctx, t, s, work, token) })
		t.Run("start-api", func(t *testing.T) { t.Parallel(); testStartAPI(ctx, t, s, token) })
	})
	// After the others, not beside them: a fifth container at once slowed
	// the analytics function's first invoke past its 10 s timeout on two
	// shared cores.
	t.Run("deliver", func(t *testing.T) { testDeliver(ctx, t, s) })
}

// recordEvent is the record function's sample batch moved to now (the
// function quarantines events older than the backfill window): three
// messages, one event, two events with four calls in all, and one invalid.
func recordEvent(t *testing.T, s *stack, work string, now time.Time) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.root, "events/record/sqs-batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The record path judges an event's age at its message's acceptance
	// by the queue (SentTimestamp): that moves to now too.
	stamp := regexp.MustCompile(`20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	b = stamp.ReplaceAll(b, []byte(now.Add(-time.Minute).Format(time.RFC3339)))
	sent := regexp.MustCompile(`("SentTimestamp":\s*")[0-9]+`)
	b = sent.ReplaceAll(b, []byte("${1}"+strconv.FormatInt(now.UnixMilli(), 10)))
	event := filepath.Join(work, "sqs-batch.json")
	if err := os.WriteFile(event, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return event
}

// checkRecord checks the record function's answer to the sample batch
// and the database after its n-th invoke: three events recorded, four
// calls counted, one quarantined, the first time and every time after
// (the same events again are duplicates).
func checkRecord(ctx context.Context, t *testing.T, db *postgres.DB, out []byte, n int) {
	t.Helper()
	var resp struct {
		BatchItemFailures []any `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("invoke %d answered %s (%v); want no failures", n, out, err)
	}
	var rows, calls, rejected int64
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM eco_api_usage),
			(SELECT coalesce(sum(calls), 0) FROM eco_usage_counters WHERE day = (SELECT min(occurred_at)::date FROM eco_api_usage)),
			(SELECT count(*) FROM eco_rejected_events)`).Scan(&rows, &calls, &rejected); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || calls != 4 || rejected != 1 {
		t.Errorf("after invoke %d: %d events recorded, %d calls counted, %d quarantined; want 3, 4 and 1", n, rows, calls, rejected)
	}
}

// testAggregate invokes the hourly rollup twice (the first invoke and a
// warm one); each run is recorded as finished.
func testAggregate(ctx context.Context, t *testing.T, s *stack, db *postgres.DB) {
	for range 2 {
		out := s.invoke(ctx, t, "AggregateFunction", filepath.Join(s.root, "events/aggregate/scheduled.json"))
		var run rollup.Run
		if err := json.Unmarshal(out, &run); err != nil || run.JobRunID == 0 {
			t.Fatalf("aggregate answered %s (%v); want a run", out, err)
		}
		var outcome string
		if err := db.Pool.QueryRow(ctx, `SELECT coalesce(outcome, 'running') FROM eco_job_runs WHERE run_id = $1 AND finished_at IS NOT NULL`,
			run.JobRunID).Scan(&outcome); err != nil || outcome != "succeeded" {
			t.Errorf("run %d: outcome %q (%v); want succeeded, finished", run.JobRunID, outcome, err)
		}
	}
}

// testDeliver invokes the notification sweep (the schedule's input): the
// record invokes before it left their users' periods pending, which it
// arms.
func testDeliver(ctx context.Context, t *testing.T, s *stack) {
	out := s.invoke(ctx, t, "DeliverFunction", filepath.Join(s.root, "events/deliver/sweep.json"))
	var rep struct {
		Armed *int `json:"armed"`
	}
	if err := json.Unmarshal(out, &rep); err != nil || rep.Armed == nil {
		t.Fatalf("the sweep answered %s (%v); want its report", out, err)
	}
}

// testOverage invokes the billing run twice: a dry run, which writes no
// ledger row, then a real run, which bills the users' closed first
// period in stripe-mock.
func testOverage(ctx context.Context, t *testing.T, s *stack, db *postgres.DB, users []seed.User) {
	for _, u := range users {
		day := usage.Day(u.PeriodStart.AddDate(0, 0, -3))
		if err := pgtest.AddCalls(ctx, db, u.UserID, day, u.IncludedCalls+1500); err != nil {
			t.Fatal(err)
		}
	}
	var rep billing.RunReport
	out := s.invoke(ctx, t, "OverageFunction", filepath.Join(s.root, "events/overage-dry-run.json"))
	if err := json.Unmarshal(out, &rep); err != nil || !rep.DryRun || rep.PlannedRows == 0 {
		t.Fatalf("dry run answered %s (%v); want a dry run with planned rows", out, err)
	}
	if n := ledgerRows(ctx, t, db, ""); n != 0 {
		t.Errorf("the dry run wrote %d ledger rows; want none", n)
	}
	out = s.invoke(ctx, t, "OverageFunction", filepath.Join(s.root, "events/overage/scheduled.json"))
	rep = billing.RunReport{}
	if err := json.Unmarshal(out, &rep); err != nil || rep.DryRun || rep.Billed == 0 || rep.Failed != 0 {
		t.Fatalf("real run answered %s (%v); want rows billed and none failed", out, err)
	}
	if billed, all := ledgerRows(ctx, t, db, billing.LedgerBilled), ledgerRows(ctx, t, db, ""); billed != rep.Billed || billed != all {
		t.Errorf("%d of %d ledger rows billed; the run reports %d", billed, all, rep.Billed)
	}
}

func ledgerRows(ctx context.Context, t *testing.T, db *postgres.DB, status string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_overage_ledger WHERE $1 = '' OR (status = $1 AND stripe_object_id IS NOT NULL)`,
		status).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// testAnalytics invokes the HTTP API's function with GET /v1/usage as the
// pro user, with a token of the deployed issuer.
func testAnalytics(ctx context.Context, t *testing.T, s *stack, work, token string) {
	var ev map[string]any
	b, err := os.ReadFile(filepath.Join(s.root, "events/analytics/get-usage.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	ev["headers"].(map[string]any)["authorization"] = "Bearer " + token
	event := filepath.Join(work, "get-usage.json")
	writeJSON(t, event, ev)
	for range 2 { // the first invoke and a warm one
		out := s.invoke(ctx, t, "AnalyticsFunction", event)
		var resp struct {
			StatusCode int    `json:"statusCode"`
			Body       string `json:"body"`
		}
		if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != 200 || !strings.Contains(resp.Body, seed.ProUserID) {
			t.Fatalf("GET /v1/usage answered %s (%v); want 200 with the pro user's usage", out, err)
		}
	}
}

// testStartAPI serves the HTTP API with sam local start-api once: GET
// /v1/usage with a token and GET /dashboard.
func testStartAPI(ctx context.Context, t *testing.T, s *stack, token string) {
	port := freePort(t)
	cmd := exec.CommandContext(ctx, s.cli, s.local("local", "start-api", "--host", "127.0.0.1", "--port", fmt.Sprint(port))...)
	cmd.Dir, cmd.Env = s.root, s.env
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("sam local start-api:\n%s", log.String())
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	start := time.Now()
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sam local start-api never listened:\n%s", log.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("sam local start-api listening after %.1f s", time.Since(start).Seconds())
	for _, c := range []struct {
		path, auth, want string
	}{
		{"/v1/usage", "Bearer " + token, seed.ProUserID},
		{"/dashboard", "", "<html"},
	} {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", c.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(body)), c.want) {
			t.Errorf("GET %s = %d %.300s; want 200 with %q", c.path, resp.StatusCode, body, c.want)
		}
		t.Logf("start-api GET %s: %d in %.1f s", c.path, resp.StatusCode, time.Since(start).Seconds())
	}
}

func checkArm64(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("sam build: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("%s is for %v; want arm64, as deployed", path, f.Machine)
	}
}

func sign(t *testing.T, key *ecdsa.PrivateKey, user string, now time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": seed.JWTIssuer, "aud": []string{seed.JWTAudience}, "sub": user,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// freePort is a free loopback port above SAM's range for its containers
// (5000 to 8999) and below the kernel's ephemeral one.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		p := 9000 + mrand.IntN(1000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}
