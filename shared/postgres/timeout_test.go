package postgres_test

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

// openWith opens a database of the test's own with the given timeouts and
// one connection, in the exec mode the environment asks for. The server's
// notices to the client fail the test.
func openWith(t *testing.T, timeouts postgres.Timeouts) (*postgres.DB, string) {
	t.Helper()
	url := pgtest.NewURL(t)
	db, err := postgres.Open(context.Background(), postgres.Config{URL: url, MaxConns: 1,
		ExecMode: os.Getenv("DATABASE_PROXY") == "true", Timeouts: timeouts,
		OnNotice: func(m string) { t.Errorf("the server said %q", m) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db, url
}

// lockTable holds an exclusive lock on table from a connection of its own
// until the test ends (or release is called), so that statements reading
// it wait.
func lockTable(t *testing.T, url, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(ctx)
			_ = conn.Close(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// TestStatementTimeoutPerWorkload: a user read and a limiter decision
// stuck behind a lock are stopped by the server at their workload's
// statement timeout, and answer CodeUnavailable in our words, naming the
// limit, with a Retry-After; another workload's longer timeout is not
// theirs.
func TestStatementTimeoutPerWorkload(t *testing.T) {
	db, url := openWith(t, postgres.Timeouts{Limiter: 150 * time.Millisecond, UserReads: 200 * time.Millisecond})
	user := uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Each statement runs once first: without the proxy's exec mode, pgx
	// prepares a statement the first time a connection runs it, in a round
	// trip of its own that the timeout does not cover (and that waits for
	// the lock too).
	rl := postgres.NewRateStore(db)
	if _, err := postgres.NewAnalyticsStore(db).UsageSummary(ctx, user, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.Take(ctx, "k:"+uuid.NewString(), time.Now(), limits.NewGCRA(10, 10), 1); err != nil {
		t.Fatal(err)
	}
	// The lock holder gives up long after the context: without the
	// timeout the reads would wait until the context ended.
	lockTable(t, url, "eco_usage_counters")
	_, err := postgres.NewAnalyticsStore(db).UsageSummary(ctx, user, time.Now())
	if usage.ErrorCode(err) != usage.CodeUnavailable || !strings.Contains(usage.ErrorMessage(err), "within the 200ms") ||
		usage.ErrorRetryAfter(err) <= 0 {
		t.Errorf("user read behind a lock: %v (retry after %s); want %s naming the 200ms limit, with a retry after",
			err, usage.ErrorRetryAfter(err), usage.CodeUnavailable)
	}
	if ctx.Err() != nil {
		t.Fatalf("the read waited for the context to end: %v", err)
	}

	lockTable(t, url, "eco_rate_limits")
	_, err = rl.Take(ctx, "k:"+uuid.NewString(), time.Now(), limits.NewGCRA(10, 10), 1)
	if usage.ErrorCode(err) != usage.CodeUnavailable || !strings.Contains(usage.ErrorMessage(err), "within the 150ms") {
		t.Errorf("limiter step behind a lock: %v; want %s naming the 150ms limit", err, usage.CodeUnavailable)
	}
	if ctx.Err() != nil {
		t.Fatalf("the limiter waited for the context to end: %v", err)
	}
}

// TestStatementTimeoutLeavesNoSessionState: the timeout is the
// transaction's, in one round trip with its statement: the connection
// that ran a timed statement, or a timed transaction, has no
// statement_timeout of its own afterwards, as RDS Proxy needs to reuse it
// for any client; and setting it draws no warning from the server (a SET
// LOCAL outside a transaction block would, on every statement).
func TestStatementTimeoutLeavesNoSessionState(t *testing.T) {
	db, _ := openWith(t, postgres.Timeouts{Limiter: 150 * time.Millisecond, Rollup: 5 * time.Second})
	ctx := context.Background()
	if _, err := postgres.NewRateStore(db).Take(ctx, "k:"+uuid.NewString(), time.Now(), limits.NewGCRA(10, 10), 1); err != nil {
		t.Fatal(err)
	}
	// EnsurePartitions is a transaction of the rollup workload.
	if _, err := postgres.NewRollupStore(db).EnsurePartitions(ctx, time.Now(), 2); err != nil {
		t.Fatal(err)
	}
	var timeout string
	if err := db.Pool.QueryRow(ctx, `SHOW statement_timeout`).Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if timeout != "0" {
		t.Errorf("the session's statement_timeout after timed statements is %q; want 0 (the server's default)", timeout)
	}
}

// TestDeadlineCancelsOnServer: a statement whose context ends is cancelled
// on the server (a cancel request), not left running there, and its
// connection stays in the pool for the next statement rather than being
// closed and opened again (a new connection through RDS Proxy costs a
// handshake, and pgx's default gives the connection up on a deadline).
func TestDeadlineCancelsOnServer(t *testing.T) {
	db, url := openWith(t, postgres.Timeouts{UserReads: time.Minute})
	lockTable(t, url, "eco_usage_counters")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := postgres.NewAnalyticsStore(db).UsageSummary(ctx, uuid.NewString(), time.Now()); usage.ErrorCode(err) != usage.CodeUnavailable {
		t.Fatalf("user read past its deadline: %v; want %s", err, usage.CodeUnavailable)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The lock is held for the rest of the test: a statement left running
	// would still be waiting for it. The cancel request is asynchronous, so
	// look a few times.
	var waiting int
	for try := 0; try < 50; try++ {
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE state = 'active' AND query LIKE '%eco_usage_counters k%' AND pid <> pg_backend_pid()`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if waiting != 0 {
		t.Errorf("%d statements still run on the server after their context ended; want them cancelled", waiting)
	}
	var one int
	if err := db.Pool.QueryRow(context.Background(), `SELECT 1`).Scan(&one); err != nil {
		t.Fatal(err)
	}
	if n := db.Pool.Stat().NewConnsCount(); n != 1 {
		t.Errorf("the pool opened %d connections for a cancelled statement and the next; want 1, kept", n)
	}
}

// TestFormatErrorServerDown: a server that cannot be reached (stopped, as
// in an outage) is CodeUnavailable, so that the API answers 503 with
// Retry-After and the record path sends the batch back whole, not 500
// and a split of the batch.
func TestFormatErrorServerDown(t *testing.T) {
	db, err := postgres.Open(context.Background(), postgres.Config{URL: "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=5"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = postgres.NewRateStore(db).Take(context.Background(), "k:x", time.Now(), limits.NewGCRA(1, 1), 1)
	if usage.ErrorCode(err) != usage.CodeUnavailable {
		t.Errorf("a statement with the server down: %v (code %s); want %s", err, usage.ErrorCode(err), usage.CodeUnavailable)
	}
}

// silentServer listens on a loopback port of its own and takes every
// connection without ever answering (a proxy or load balancer with
// nothing behind it, a server stuck); it returns its address.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestConnectSilentServer: a statement that needs a new connection to a
// server that never answers fails at the connect timeout as
// CodeUnavailable (the API's 503, the record path's retry), rather than
// waiting for its caller's context, which a platform service's request
// may not have.
func TestConnectSilentServer(t *testing.T) {
	if pgtest.Proxy() {
		t.Skip("the connect timeout does not depend on pgx's mode: checked in the first run")
	}
	t.Parallel()
	db, err := postgres.Open(context.Background(), postgres.Config{URL: "postgres://nexus:secret@" + silentServer(t) + "/nexus?sslmode=disable"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	done := make(chan error, 1)
	go func() {
		_, err := postgres.NewSubscriptionStore(db).Subscription(context.Background(), uuid.NewString())
		done <- err
	}()
	select {
	case err := <-done:
		if usage.ErrorCode(err) != usage.CodeUnavailable {
			t.Errorf("a read through a server that never answers = %v; want %s", err, usage.CodeUnavailable)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("a read through a server that never answers had not returned after 45 s; want it to fail at the connect timeout (%s)", postgres.ConnectTimeout)
	}
}
