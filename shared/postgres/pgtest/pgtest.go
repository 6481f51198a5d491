// Package pgtest gives tests a database of their own: a fresh clone of the
// migrated template that the test harness (scripts/with-services.sh, run by
// make test) prepares, dropped again when the test ends.
//
// Without the harness's environment a test that needs PostgreSQL is skipped
// with a message, so that a plain go test ./... still runs everything else;
// under CI=true it fails instead, because there a missing database is a
// broken set-up, not a reason to skip.
//
// Beside the database it holds what the record path's tests, in
// shared/postgres and shared/record, read and break in it: Count, the live
// Counters, and a CommitFault.
package pgtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/testkit"
)

// Require skips (or, under CI=true, fails) the test unless the environment
// variable env is set, and returns its value. what names the service for
// the message.
func Require(tb testing.TB, env, what string) string {
	tb.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	testkit.Missing(tb, "%s is not available (%s is unset): run the tests with make test", what, env)
	return ""
}

var ensureTemplate sync.Once
var templateErr error

// NewURL creates a new database cloned from the migrated template and
// returns its URL. The database is dropped when the test ends.
func NewURL(tb testing.TB) string {
	tb.Helper()
	admin := Require(tb, "NEXUS_TEST_DATABASE_URL", "PostgreSQL")
	tmpl := Require(tb, "NEXUS_TEST_TEMPLATE", "the template database")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ensureTemplate.Do(func() { templateErr = prepareTemplate(ctx, admin, tmpl) })
	if templateErr != nil {
		tb.Fatalf("prepare template database: %v", templateErr)
	}

	name := fmt.Sprintf("t_%d_%x", os.Getpid(), rand.Uint64())
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connect to test server: %v", err)
	}
	defer conn.Close(ctx)
	// CREATE DATABASE fails with object_in_use while another session
	// (autovacuum, a concurrent migration) is connected to the template:
	// wait for it to leave, however long a loaded machine takes, up to the
	// context's bound.
	for {
		_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, name, tmpl))
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("connect to drop test database: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name)); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	return withDatabase(tb, admin, name)
}

// Proxy reports whether the tests run as behind RDS Proxy, which is how
// the deployed functions reach PostgreSQL by default (template.yaml's
// DatabaseProxy): DATABASE_PROXY=true in their environment (Main sets it for
// its second run). pgx then runs in exec mode: parameters and results travel
// as text with no statement descriptions, so a []byte is bytea, never json,
// and every value must encode the same way in both modes. NewURL's URLs
// then carry default_query_exec_mode=exec, so that every pool and
// connection a test opens on them, the functions' own setup included, runs
// in that mode; the local stack (cmd/internal/devstack) gives its functions
// the same DATABASE_PROXY.
func Proxy() bool { return os.Getenv("DATABASE_PROXY") == "true" }

// Main runs a package's tests once in each of the two modes the functions
// reach PostgreSQL in, pgx's default (DATABASE_PROXY=false) and as behind
// RDS Proxy (DATABASE_PROXY=true), and returns the exit code for os.Exit.
// Every package whose tests touch PostgreSQL calls it (or, for the
// whole-stack suites, MainDeployed) from TestMain, so make test proves the
// SQL of each in both modes. DATABASE_PROXY set in the
// environment picks one mode; benchmarks and fuzzing run once, in the
// environment's mode.
func Main(m *testing.M) int {
	if _, set := os.LookupEnv("DATABASE_PROXY"); set {
		return m.Run()
	}
	os.Setenv("DATABASE_PROXY", "false")
	code := m.Run()
	if flagSet("test.bench") || flagSet("test.fuzz") {
		return code
	}
	os.Setenv("DATABASE_PROXY", "true")
	defer os.Unsetenv("DATABASE_PROXY")
	fmt.Println("pgtest: the tests again as behind RDS Proxy (DATABASE_PROXY=true, pgx's exec mode)")
	if c := m.Run(); c != 0 {
		fmt.Println("pgtest: failures as behind RDS Proxy (DATABASE_PROXY=true)")
		if code == 0 {
			code = c
		}
	}
	return code
}

// MainDeployed runs a package's tests once, in the mode the template
// deploys (DATABASE_PROXY=true, as behind RDS Proxy), unless DATABASE_PROXY
// set in the environment picks the other, and returns the exit code for
// os.Exit. It is for the suites that run the whole local stack (the
// devstack, the soak, the dashboard in a browser): they prove what ships
// end to end, while the packages whose SQL they drive prove it in both
// modes (Main). A run of each of them costs make test minutes, and the
// other mode would repeat their SQL without testing anything of their own.
func MainDeployed(m *testing.M) int {
	if _, set := os.LookupEnv("DATABASE_PROXY"); !set {
		os.Setenv("DATABASE_PROXY", "true")
		defer os.Unsetenv("DATABASE_PROXY")
	}
	return m.Run()
}

func flagSet(name string) bool {
	f := flag.Lookup(name)
	return f != nil && f.Value.String() != ""
}

// NewDB returns a repository handle on a new database of the test's own.
func NewDB(tb testing.TB) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), postgres.Config{URL: NewURL(tb), MaxConns: 16, ExecMode: Proxy()})
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(db.Close)
	return db
}

// prepareTemplate creates and migrates the template when the harness has not
// (DATABASE_URL pointing at an existing server).
func prepareTemplate(ctx context.Context, admin, tmpl string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, tmpl).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %q`, tmpl)); err != nil {
		return err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return err
	}
	u.Path = "/" + tmpl
	_, err = postgres.Migrate(ctx, u.String(), nil)
	return err
}

func withDatabase(tb testing.TB, admin, name string) string {
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse NEXUS_TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	if Proxy() {
		q := u.Query()
		q.Set("default_query_exec_mode", "exec")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Count returns the one integer query's row holds (a count(*) or a sum),
// failing the test when it cannot.
func Count(tb testing.TB, db *postgres.DB, query string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := db.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// Counter is a user's live counter of a day (eco_usage_counters).
type Counter struct {
	Calls, E4, E5, Req, Resp int64
}

// Counters returns every live counter of db, keyed by the user's id and
// the day (2006-01-02) joined by a space.
func Counters(tb testing.TB, db *postgres.DB) map[string]Counter {
	tb.Helper()
	rows, err := db.Pool.Query(context.Background(),
		`SELECT user_id::text, day::text, calls, errors_4xx, errors_5xx, request_bytes, response_bytes FROM eco_usage_counters`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	got := map[string]Counter{}
	for rows.Next() {
		var u, d string
		var c Counter
		if err := rows.Scan(&u, &d, &c.Calls, &c.E4, &c.E5, &c.Req, &c.Resp); err != nil {
			tb.Fatal(err)
		}
		got[u+" "+d] = c
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return got
}

// CommitFault makes the record path's transactions fail at commit, in a
// test's own database, while it is armed: a failure between the write and
// the commit, after every statement has run. Deferred constraint triggers
// on the tables every batch writes (the live counters, moved whenever an
// event is inserted, and the quarantine) raise at commit, so the whole
// transaction rolls back. They raise serialization_failure (SQLSTATE
// 40001), what a real commit fails with, which is the infrastructure's: the
// record path sends the batch back to the queue rather than looking for a
// bad event in it. A batch that writes nothing (only duplicates) commits,
// having nothing to roll back.
type CommitFault struct{ db *postgres.DB }

// NewCommitFault installs the triggers, disarmed, in db, which must be a
// database of the test's own (NewDB).
func NewCommitFault(tb testing.TB, db *postgres.DB) *CommitFault {
	tb.Helper()
	_, err := db.Pool.Exec(context.Background(), `
		CREATE TABLE test_commit_fault (armed boolean NOT NULL);
		INSERT INTO test_commit_fault VALUES (false);
		CREATE FUNCTION test_commit_fault() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF (SELECT armed FROM test_commit_fault) THEN
				RAISE EXCEPTION 'injected failure at commit' USING ERRCODE = 'serialization_failure';
			END IF;
			RETURN NULL;
		END;
		$$;
		CREATE CONSTRAINT TRIGGER test_commit_fault AFTER INSERT OR UPDATE ON eco_usage_counter_slots
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_commit_fault();
		CREATE CONSTRAINT TRIGGER test_commit_fault AFTER INSERT ON eco_rejected_events
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_commit_fault();`)
	if err != nil {
		tb.Fatalf("install the commit fault: %v", err)
	}
	return &CommitFault{db: db}
}

// Arm makes the commits that follow fail (on) or succeed (off).
func (f *CommitFault) Arm(tb testing.TB, on bool) {
	tb.Helper()
	if _, err := f.db.Pool.Exec(context.Background(), `UPDATE test_commit_fault SET armed = $1`, on); err != nil {
		tb.Fatalf("arm the commit fault: %v", err)
	}
}
