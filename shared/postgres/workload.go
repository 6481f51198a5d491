package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/usage"
)

// Timeouts are the statement timeouts of each workload: how long the
// server lets one statement of it run before cancelling it. A zero field
// takes DefaultTimeouts' value.
//
// # How they are set, and why that holds behind RDS Proxy
//
// Every statement runs with a transaction-local statement_timeout: a
// single statement is sent in one pipeline after
// set_config('statement_timeout', …, true) (one round trip; the pipeline
// up to its Sync is one implicit transaction, which the setting lasts
// for; a SET LOCAL there would work too, but PostgreSQL warns that it is
// outside a transaction block, in its log and to the client, on every
// statement), and a transaction starts with "BEGIN; SET LOCAL …" (one
// simple-protocol message, as a plain BEGIN is). The setting ends with
// the transaction. RDS Proxy multiplexes client connections on
// server connections at transaction boundaries and pins a client session
// to one server connection when it sees session state change (a plain SET,
// set_config with is_local false); its only per-connection setting is the
// target group's initialization query (InitQuery), one value for every
// client of the proxy ("Avoiding pinning an RDS Proxy", RDS user guide).
// A transaction-local setting leaves nothing behind to pin or to lose,
// and each workload keeps its own value. Startup parameters (the pool's
// RuntimeParams) are not used for it: a client's startup message is not
// what a proxied transaction's server connection was opened with.
//
// Open also makes the pool cancel a statement on the server when its
// context ends (pgconn.CancelRequestContextWatcherHandler): a Lambda that
// gives up on a query stops it, rather than closing the socket and
// leaving it running. Where a cancel request cannot reach the server, the
// statement timeout still ends it.
type Timeouts struct {
	// Limiter: rate limit decisions, subscriptions read for them, API key
	// lookups. They are on every metered request's path.
	Limiter time.Duration
	// UserReads: the user routes of the analytics API.
	UserReads time.Duration
	// Admin: the admin routes' reports and writes.
	Admin time.Duration
	// Recording: the record function's batch statement.
	Recording time.Duration
	// Rollup: the aggregate job's statements (a day's recompute, partitions,
	// retention).
	Rollup time.Duration
	// Billing: the overage run's statements.
	Billing time.Duration
	// Notify: the notification workflow's (arming, deliveries, the
	// management routes).
	Notify time.Duration
}

// DefaultTimeouts are the timeouts the functions run with. Each is well
// inside its function's Lambda timeout (analytics 10 s, record 30 s,
// aggregate and overage 900 s), so that a statement that runs too long is
// stopped by the server and answered, not cut off with the function.
var DefaultTimeouts = Timeouts{
	Limiter:   time.Second,
	UserReads: 3 * time.Second,
	Admin:     8 * time.Second,
	Recording: 20 * time.Second,
	Rollup:    10 * time.Minute,
	Billing:   2 * time.Minute,
	Notify:    8 * time.Second,
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&t.Limiter, DefaultTimeouts.Limiter)
	def(&t.UserReads, DefaultTimeouts.UserReads)
	def(&t.Admin, DefaultTimeouts.Admin)
	def(&t.Recording, DefaultTimeouts.Recording)
	def(&t.Rollup, DefaultTimeouts.Rollup)
	def(&t.Billing, DefaultTimeouts.Billing)
	def(&t.Notify, DefaultTimeouts.Notify)
	return t
}

// workload is a kind of statement, with a statement timeout of its own.
type workload int

const (
	limiterWork workload = iota
	userReads
	adminWork
	recordingWork
	rollupWork
	billingWork
	notifyWork
)

func (t Timeouts) of(w workload) time.Duration {
	return [...]time.Duration{t.Limiter, t.UserReads, t.Admin, t.Recording, t.Rollup, t.Billing, t.Notify}[w]
}

// stmts runs statements of one workload on db's pool under its statement
// timeout. Its methods are those of the pool.
type stmts struct {
	db      *DB
	timeout time.Duration
}

// with returns the statements of workload w.
func (db *DB) with(w workload) stmts { return stmts{db: db, timeout: db.timeouts.of(w)} }

// setLocal is the statement that bounds the rest of a transaction block.
func (s stmts) setLocal() string {
	return fmt.Sprintf("SET LOCAL statement_timeout = %d", max(1, s.timeout.Milliseconds()))
}

// setConfig is the statement that bounds the rest of a pipeline's
// implicit transaction: set_config with is_local true, a constant per
// workload (prepared once per connection without the proxy).
func (s stmts) setConfig() string {
	return fmt.Sprintf("SELECT set_config('statement_timeout', '%d', true)", max(1, s.timeout.Milliseconds()))
}

// send sends the timeout and sql in one pipeline.
func (s stmts) send(ctx context.Context, sql string, args []any) pgx.BatchResults {
	b := &pgx.Batch{}
	b.Queue(s.setConfig())
	b.Queue(sql, args...)
	return s.db.Pool.SendBatch(ctx, b)
}

// QueryRow runs a statement that returns one row.
func (s stmts) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	br := s.send(ctx, sql, args)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return errRow{s.timedOut(err)}
	}
	return &batchRow{s: s, br: br, row: br.QueryRow()}
}

// Query runs a statement that returns rows; closing them ends the
// pipeline.
func (s stmts) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br := s.send(ctx, sql, args)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, s.timedOut(err)
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, s.timedOut(err)
	}
	return &batchRows{Rows: rows, s: s, br: br}, nil
}

// Exec runs a statement that returns no rows.
func (s stmts) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br := s.send(ctx, sql, args)
	_, err := br.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, s.timedOut(err)
}

// BeginFunc runs f in a transaction whose statements have the timeout
// (pgx.BeginFunc's contract otherwise).
func (s stmts) BeginFunc(ctx context.Context, f func(pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.db.Pool, pgx.TxOptions{BeginQuery: "BEGIN; " + s.setLocal()}, f)
	return s.timedOut(err)
}

// SnapshotFunc runs f in a read-only repeatable-read transaction (one
// snapshot) whose statements have the timeout.
func (s stmts) SnapshotFunc(ctx context.Context, f func(pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.db.Pool, pgx.TxOptions{BeginQuery: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; " + s.setLocal()}, f)
	return s.timedOut(err)
}

// SendBatch sends the timeout and b's statements in one pipeline (one
// implicit transaction); closing the results ends it.
func (s stmts) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	b.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: s.setConfig()}}, b.QueuedQueries...)
	return s.db.Pool.SendBatch(ctx, b)
}

// timedOut words a statement timeout (SQLSTATE 57014 for the timer, not
// for a cancel request) as CodeUnavailable naming the limit, with a
// Retry-After; any other error is returned as is.
func (s stmts) timedOut(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" || !strings.Contains(pgErr.Message, "statement timeout") {
		return err
	}
	return &wrapped{usage.Error{Code: usage.CodeUnavailable, RetryAfter: TimeoutRetryAfter,
		Message: fmt.Sprintf("the database did not answer within the %s this request may take; retry later, or ask for less", s.timeout)}, err}
}

// TimeoutRetryAfter is how long a caller whose statement timed out is
// asked to wait (Retry-After).
const TimeoutRetryAfter = 5 * time.Second

// batchRow is the row of a pipeline's statement; Scan ends the pipeline.
type batchRow struct {
	s   stmts
	br  pgx.BatchResults
	row pgx.Row
}

func (r *batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return r.s.timedOut(err)
}

// errRow is a row whose pipeline failed before it.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// batchRows are the rows of a pipeline's statement; Close ends the
// pipeline.
type batchRows struct {
	pgx.Rows
	s      stmts
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close()
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Err() error {
	err := r.Rows.Err()
	if err == nil {
		err = r.err
	}
	return r.s.timedOut(err)
}
