package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/samtemplate"
	"github.com/nexus/usage/shared/testkit"
)

// fixture is what a sample's check can look at.
type fixture struct {
	db    *postgres.DB
	users []seed.User
}

// A lambdaCase invokes one function with one sample of events/ and checks
// the answer. Adding a function or a sample is one line here.
type lambdaCase struct {
	fn    string // functions/<fn>
	event string // events/<event>
	check func(t *testing.T, f *fixture, out []byte)
}

var lambdaCases = []lambdaCase{
	{"record", "record/sqs-batch.json", checkRecordBatch},
	{"aggregate", "aggregate/scheduled.json", checkNoError},
	{"aggregate", "aggregate/backfill.json", checkNoError},
	{"overage", "overage/scheduled.json", checkNoError},
	{"deliver", "deliver/sweep.json", checkNoError},
	{"analytics", "analytics/get-usage.json", wantStatus(200)},
	{"analytics", "analytics/get-usage-daily.json", wantStatus(200)},
	{"analytics", "analytics/get-usage-endpoints.json", wantStatus(200)},
	{"analytics", "analytics/get-usage-keys.json", wantStatus(200)},
	{"analytics", "analytics/get-usage-export.json", wantStatus(200)},
	{"analytics", "analytics/post-events.json", wantStatus(202)},
	{"analytics", "analytics/post-limits-check.json", wantStatus(200)},
	{"analytics", "analytics/get-admin-summary.json", wantStatus(200)},
	{"analytics", "analytics/get-admin-top-users.json", wantStatus(200)},
	{"analytics", "analytics/get-admin-user-usage.json", wantStatus(200)},
	{"analytics", "analytics/get-admin-user-daily.json", wantStatus(200)},
	{"analytics", "analytics/get-admin-user-endpoints.json", wantStatus(200)},
	{"analytics", "analytics/get-admin-user-keys.json", wantStatus(200)},
	{"analytics", "analytics/get-admin-user-audit.json", wantStatus(200)},
	{"analytics", "analytics/get-dashboard.json", checkDashboard("text/html; charset=utf-8")},
	{"analytics", "analytics/get-dashboard-asset.json", checkDashboard("text/javascript; charset=utf-8")},
	{"analytics", "analytics/put-admin-user-plan.json", wantStatus(200)},
	{"analytics", "analytics/patch-admin-user-plan.json", wantStatus(200)},
	{"analytics", "analytics/post-admin-aggregate.json", wantStatus(202)},
	{"analytics", "analytics/get-admin-rejected.json", wantStatus(200)},
	{"analytics", "analytics/get-admin-overage.json", wantStatus(200)},
	{"analytics", "analytics/get-admin-overage-preview.json", wantStatus(200)},
	{"analytics", "analytics/post-admin-overage-retry.json", wantStatus(404)}, // no such row
	{"analytics", "analytics/post-admin-redrive.json", wantStatus(200)},
}

var (
	occurredAtRE    = regexp.MustCompile(`(\\?"occurred_at\\?":\s*\\?")[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z`)
	sentTimestampRE = regexp.MustCompile(`("SentTimestamp":\s*")[0-9]+`)
)

// adapt fits a sample to the seeded database: events happen now (the
// samples' fixed dates would fall out of the backfill window) and the
// queue accepted them now (the record path judges their age at their
// acceptance), and the API key placeholder becomes the pro user's key.
func adapt(sample []byte, f *fixture, now time.Time) []byte {
	s := occurredAtRE.ReplaceAllString(string(sample), "${1}"+now.UTC().Add(-time.Minute).Format(time.RFC3339))
	s = sentTimestampRE.ReplaceAllString(s, "${1}"+strconv.FormatInt(now.UnixMilli(), 10))
	for _, u := range f.users {
		if u.UserID == seed.ProUserID {
			s = strings.ReplaceAll(s, seed.SampleAPIKey, u.APIKey)
		}
	}
	return []byte(s)
}

// TestLambdasUnderRIE builds every function's bootstrap, runs it under the
// AWS Lambda Runtime Interface Emulator with the environment make dev
// gives it, invokes it with every sample of events/ over HTTP and checks
// the answers; it logs each function's cold start. It proves the binaries
// are Lambdas: lambda.Start wiring, configuration from the environment,
// init outside the handler.
func TestLambdasUnderRIE(t *testing.T) {
	root := testRoot(t)
	emulator := requireRIE(t, root)
	db := pgtest.NewDB(t)
	bins := testBootstraps(t, root)
	ctx := testkit.Context(t)
	now := time.Now().UTC()
	users, _, err := seed.Users(ctx, db, now)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, users: users}
	st := &State{DatabaseURL: dbURL(t, db), StripeURL: os.Getenv("NEXUS_TEST_STRIPE_URL")}
	if ep := os.Getenv("NEXUS_TEST_SQS_ENDPOINT"); ep != "" {
		st.SQSEndpoint = ep
		name := fmt.Sprintf("rie-%x", rand.Uint64())
		q, err := moto.CreateQueues(ctx, moto.SQS(ep, "us-east-1"), moto.QueueOptions{Name: name, DLQName: name + "-dlq"})
		if err != nil {
			t.Fatal(err)
		}
		st.QueueURL, st.DLQURL = q.URL, q.DLQURL
	}
	tmpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	var names []string
	seen := map[string]bool{}
	for _, c := range lambdaCases {
		if !seen[c.fn] {
			seen[c.fn] = true
			names = append(names, c.fn)
		}
	}
	lambdas := map[string]*rie.Lambda{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := rie.Start(ctx, rie.Config{Name: n, RIE: emulator, Bootstrap: bins[n], Env: functionEnv(tmpl.Function(n), os.Getenv, "us-east-1", st), Timeout: functionTimeout(tmpl, n), Log: rie.QuietLog(testLog{t})})
			if err != nil {
				t.Errorf("start %s: %v", n, err)
				return
			}
			mu.Lock()
			lambdas[n] = l
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, l := range lambdas {
		t.Cleanup(l.Stop)
	}
	if t.Failed() {
		t.FailNow()
	}

	for _, c := range lambdaCases {
		t.Run(c.fn+"/"+filepath.Base(c.event), func(t *testing.T) {
			sample, err := os.ReadFile(filepath.Join(root, "events", c.event))
			if err != nil {
				t.Fatal(err)
			}
			out, err := lambdas[c.fn].Invoke(ctx, adapt(sample, f, now))
			if err != nil {
				t.Fatalf("invoke %s with %s: %v (%s)", c.fn, c.event, err, out)
			}
			c.check(t, f, out)
		})
	}
	for _, n := range names {
		l := lambdas[n]
		if l == nil {
			continue
		}
		initReport, first := l.InitTimes()
		t.Logf("cold start of %-9s init %7.2f ms (emulator's INIT REPORT), %7.2f ms from starting the emulator to the first answer",
			n, float64(initReport)/1e6, float64(first)/1e6)
	}
}

// TestSamplesCovered fails when a sample in events/ has no line in
// lambdaCases.
func TestSamplesCovered(t *testing.T) {
	root := testRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "events", "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, c := range lambdaCases {
		covered[c.event] = true
	}
	var missing []string
	for _, f := range files {
		rel, _ := filepath.Rel(filepath.Join(root, "events"), f)
		if !covered[filepath.ToSlash(rel)] {
			missing = append(missing, rel)
		}
		b, _ := os.ReadFile(f)
		if !json.Valid(b) {
			t.Errorf("events/%s is not valid JSON", rel)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("samples without a case in lambdaCases: %v", missing)
	}
	if len(files) < len(lambdaCases) {
		t.Errorf("lambdaCases names %d samples; events/ holds %d", len(lambdaCases), len(files))
	}
}

func checkRecordBatch(t *testing.T, f *fixture, out []byte) {
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("record answered %s: %v", out, err)
	}
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("batchItemFailures = %v; want none (the invalid message is quarantined, not failed)", resp.BatchItemFailures)
	}
	ctx := context.Background()
	var rows, quantity, rejected int64
	if err := f.db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(quantity), 0) FROM eco_api_usage`).Scan(&rows, &quantity); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_rejected_events`).Scan(&rejected); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || quantity != 4 || rejected != 1 {
		t.Errorf("after the sample batch: %d events (quantity %d), %d rejected; want 3 (4), 1", rows, quantity, rejected)
	}
}

func checkNoError(t *testing.T, _ *fixture, out []byte) {
	if !json.Valid(out) {
		t.Errorf("answer %q is not JSON", out)
	}
}

func wantStatus(want int) func(*testing.T, *fixture, []byte) {
	return func(t *testing.T, _ *fixture, out []byte) {
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("answer %s: %v", out, err)
		}
		if resp.StatusCode != want {
			t.Errorf("statusCode = %d; want %d (body %s)", resp.StatusCode, want, resp.Body)
		}
	}
}

// checkDashboard checks a dashboard file's answer: 200 without credentials,
// its content type, gzipped (the samples accept gzip) and base64-encoded.
func checkDashboard(contentType string) func(*testing.T, *fixture, []byte) {
	return func(t *testing.T, _ *fixture, out []byte) {
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("answer %s: %v", out, err)
		}
		if resp.StatusCode != 200 || resp.Headers["Content-Type"] != contentType || resp.Headers["Content-Encoding"] != "gzip" ||
			!resp.IsBase64Encoded || resp.Headers["Content-Security-Policy"] == "" {
			t.Errorf("answer %d, headers %v, base64 %v; want 200 %s, gzipped, with the page's CSP",
				resp.StatusCode, resp.Headers, resp.IsBase64Encoded, contentType)
		}
	}
}
