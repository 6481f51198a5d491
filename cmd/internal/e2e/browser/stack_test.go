package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/cmd/internal/demo"
	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/e2e/browser"
	"github.com/nexus/usage/cmd/internal/rie"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/testkit"
)

// stack is a local stack of the test's own (free ports, its own database,
// queues and stage), as make dev runs it, after the demo's traffic: every
// event recorded, the closed days aggregated and overage billed.
type stack struct {
	*devstack.State
	pro seed.User // the user whose view the tests read
}

// startStack starts the stack, sends it the demo traffic (make demo's) and
// waits until the record function has stored all of it, then runs the
// aggregate and overage jobs once. It stops everything when the test ends.
func startStack(t *testing.T) *stack {
	t.Helper()
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	_, err = rie.Find(root, os.Getenv)
	testkit.Require(t, err, "the Lambda emulator")
	admin := pgtest.Require(t, "NEXUS_TEST_DATABASE_URL", "PostgreSQL")
	pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	name := fmt.Sprintf("dashboard_%d", os.Getpid())
	t.Cleanup(func() { dropDatabase(admin, name) })

	ctx := testkit.Context(t)
	logger := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := devstack.Start(ctx, devstack.Config{Root: root, Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", PlatformAddr: "127.0.0.1:0", ReceiverAddr: "127.0.0.1:0",
		DatabaseName: name, Bootstraps: os.Getenv("NEXUS_LAMBDA_DIR"), Stage: fmt.Sprintf("dash%d", os.Getpid()),
		BatchWindow: time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	st := s.State()
	for fn, status := range st.Functions {
		if status != "running" {
			t.Fatalf("functions/%s is %s, not running", fn, status)
		}
	}
	stats, err := demo.Send(ctx, st, time.Now().UTC(), logger)
	if err != nil {
		t.Fatal(err)
	}
	waitRecorded(ctx, t, st.DatabaseURL, stats)
	for _, fn := range []string{"aggregate", "overage"} {
		if out, err := s.Invoke(ctx, fn, []byte(`{}`)); err != nil {
			t.Fatalf("run %s: %v (%s)", fn, err, out)
		}
	}
	out := &stack{State: st}
	for _, u := range st.Users {
		if u.UserID == seed.ProUserID {
			out.pro = u
		}
	}
	return out
}

// waitRecorded waits until every event and invalid message the demo sent
// is in the database: the events once each, the invalid ones quarantined.
func waitRecorded(ctx context.Context, t *testing.T, url string, sent demo.Stats) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var events, rejected int
	for {
		err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM eco_api_usage), (SELECT count(*) FROM eco_rejected_events)`).Scan(&events, &rejected)
		if err == nil && events == sent.Events && rejected >= sent.Invalid {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the demo traffic was not recorded: %d of %d events and %d of %d invalid messages stored (%v)",
				events, sent.Events, rejected, sent.Invalid, err)
		case <-tick.C:
		}
	}
}

func dropDatabase(admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, admin); err == nil {
		_, _ = conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize()))
		conn.Close(ctx)
	}
}

// api calls the stack's HTTP API, as the page does, and decodes the JSON
// answer into v; it returns the status.
func (s *stack) api(ctx context.Context, t *testing.T, path, token string, v any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.GatewayURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v (%s)", path, err, b)
		}
	}
	return resp.StatusCode
}

// requireChromium returns Chromium's path; without it the test is skipped,
// or fails under CI=true.
func requireChromium(t *testing.T) string {
	t.Helper()
	p, err := browser.Find(os.Getenv)
	if err == nil {
		return p
	}
	testkit.Missing(t, "%v", err)
	return ""
}

// testLog sends the stack's warnings to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
