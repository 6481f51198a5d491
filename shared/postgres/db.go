package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config describes how to reach PostgreSQL from a Lambda function.
type Config struct {
	// URL is a libpq connection string or URL.
	URL string
	// MaxConns bounds the pool. A Lambda instance handles one invocation at
	// a time, so 2 is plenty; the SQS mapping's MaximumConcurrency times this
	// bounds the connections the whole fleet opens.
	MaxConns int32
	// ExecMode selects pgx's QueryExecModeExec: no statement cache and no
	// session state, as RDS Proxy needs to multiplex connections without
	// pinning them.
	ExecMode bool
	// NoJIT turns PostgreSQL's JIT compilation off for the pool's
	// connections (a startup parameter, as the time zone is). The billing
	// run's set statements over arrays of 10,000 rows are estimated dear
	// and cheap to run: compiling them took longer than running them
	// (370 ms of a 510 ms statement, measured).
	NoJIT bool
	// Timeouts are the statement timeouts per workload (zero fields:
	// DefaultTimeouts).
	Timeouts Timeouts
	// OnNotice, when set, receives the server's notices and warnings to
	// the client (tests hold the statements to none).
	OnNotice func(message string)
}

// DB is the repository's handle on PostgreSQL: a pool and a clock. Every
// store in this package takes a *DB.
type DB struct {
	Pool *pgxpool.Pool
	// Now returns the current time; tests replace it.
	Now func() time.Time

	timeouts Timeouts
}

// Open builds the pool. pgxpool connects lazily, so Open is cheap at cold
// start and a database outage surfaces on the first query, not at init.
func Open(ctx context.Context, c Config) (*DB, error) {
	pc, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = ConnectTimeout
	}
	pc.MaxConns = c.MaxConns
	if pc.MaxConns <= 0 {
		pc.MaxConns = 2
	}
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.MaxConnLifetime = 30 * time.Minute
	if c.ExecMode {
		pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		pc.ConnConfig.StatementCacheCapacity = 0
		pc.ConnConfig.DescriptionCacheCapacity = 0
	}
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["timezone"] = "UTC"
	if c.NoJIT {
		pc.ConnConfig.RuntimeParams["jit"] = "off"
	}
	// A context that ends while a statement runs cancels the statement on
	// the server at once (a cancel request on a connection of its own),
	// and the socket is given up only if the server has not answered a
	// second later. pgx's default closes the socket at once and the server
	// runs the statement to its end.
	pc.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: CancelGrace}
	}
	if c.OnNotice != nil {
		pc.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { c.OnNotice(n.Severity + ": " + n.Message) }
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return &DB{Pool: pool, Now: time.Now, timeouts: c.Timeouts.withDefaults()}, nil
}

// ConnectTimeout is how long a new connection may take (TCP, TLS and the
// server's answer to the startup) when the URL gives no connect_timeout
// (nor PGCONNECT_TIMEOUT the environment). pgx has no bound of its own: a
// host that takes the connection and never answers, or drops its packets
// (a partition, a failover), would hold the statement that needed the
// connection until its context ends, and the TCP retries alone take about
// two minutes. Once connected, statements are bounded by their workload's
// timeout.
const ConnectTimeout = 10 * time.Second

// CancelGrace is how long after its context ends a statement's connection
// waits for the server to confirm the cancellation before it is closed.
// Handlers stop their work at least this long before their Lambda's
// deadline.
const CancelGrace = time.Second

// Close closes every connection of the pool.
func (db *DB) Close() { db.Pool.Close() }

// now returns the clock's time in UTC.
func (db *DB) now() time.Time { return db.Now().UTC() }

// ensurePartitions creates the monthly partitions of the raw usage table
// for months months starting with the one holding from, waiting for the
// table's lock as long as it takes (the record path, which needs the
// partition for the batch it holds). It returns how many it created;
// existing partitions are left alone.
func (db *DB) ensurePartitions(ctx context.Context, from time.Time, months int) (int, error) {
	var n int
	if err := db.with(recordingWork).QueryRow(ctx, `SELECT ensure_usage_partitions($1, $2)`, from, months).Scan(&n); err != nil {
		return 0, FormatError(fmt.Errorf("ensure usage partitions: %w", err))
	}
	return n, nil
}
