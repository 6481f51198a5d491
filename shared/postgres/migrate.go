package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/nexus/usage/migrations"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrate applies every pending migration embedded in the migrations
// package to the database at url and returns the versions it applied. It
// holds a PostgreSQL session lock while it runs, so concurrent callers
// apply each migration once: a second caller waits for the first (up to
// five minutes) and then finds nothing pending. With nothing pending it
// changes nothing. A database at a version newer than the latest embedded
// migration (migrated by a newer release) is refused and left as it is.
//
// Each migration runs in a transaction of its own: one that fails is
// rolled back and the database stays at the version before it. Errors say
// what failed in our words (the URL, the server, the database, the role,
// the migration by its file), never goose's, pgx's or Go's text.
func Migrate(ctx context.Context, url string, logger *slog.Logger) ([]int64, error) {
	cfg, err := stdlibConfig(url)
	if err != nil {
		return nil, errors.New("the database URL is not valid: want postgres://user:password@host:port/database, " +
			"with any space or one of : / ? # [ ] @ % in the user or password percent-encoded")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ConnectTimeout
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return nil, connectError(ctx, cfg, err)
	}
	return migrateDB(ctx, db, logger)
}

// migrateLockTries is how many seconds Migrate waits for another
// migrator's lock before it gives up.
var migrateLockTries uint64 = 300

func migrateDB(ctx context.Context, db *sql.DB, logger *slog.Logger) ([]int64, error) {
	inner, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, migrateLockTries))
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithSessionLocker(&migrationLocker{SessionLocker: inner, logger: logger}),
		goose.WithTableName("eco_schema_migrations"),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, opts...)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return nil, runError(ctx, "read the database's schema version", err)
	}
	if err := refuseNewer(p, current); err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	applied := make([]int64, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		for _, r := range partial.Applied {
			applied = append(applied, r.Source.Version)
		}
		return applied, migrationError(ctx, partial, current)
	}
	if err != nil {
		return applied, runError(ctx, "apply migrations", err)
	}
	return applied, nil
}

// refuseNewer returns an error when the database's version, current, is
// above the latest migration p holds: a newer release migrated it, and
// goose would report it as current, or take the versions it recorded for
// files since replaced (the fourteen before 00001_baseline.sql) as these
// files'.
func refuseNewer(p *goose.Provider, current int64) error {
	sources := p.ListSources()
	latest := sources[len(sources)-1]
	if current > latest.Version {
		return fmt.Errorf("the database is at schema version %d, newer than this migrate's latest migration, %d (%s): "+
			"a newer release migrated it; run migrate and deploy the functions from that release or a later one, "+
			"nothing was changed", current, latest.Version, path.Base(latest.Path))
	}
	return nil
}

// migrationLocker is goose's session lock with our words: it says when it
// waits for another migrator, and names it when it gives up.
type migrationLocker struct {
	lock.SessionLocker
	logger *slog.Logger
}

// errLockBusy is the migration lock still held by another session after
// Migrate's wait.
type errLockBusy struct{ holder string }

func (e *errLockBusy) Error() string {
	return fmt.Sprintf("another migrate (%s) still holds the migration lock after %d s: "+
		"let it finish, then run migrate again (it will find nothing pending, or apply what is)", e.holder, migrateLockTries)
}

// SessionLock takes the lock, waiting for another holder to release it.
func (l *migrationLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	var free bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lock.DefaultLockID).Scan(&free); err != nil {
		return err
	}
	if free {
		return nil
	}
	holder := lockHolder(ctx, conn)
	if l.logger != nil {
		l.logger.WarnContext(ctx, "another migrate holds the migration lock: waiting for it to finish", "holder", holder)
	}
	if err := l.SessionLocker.SessionLock(ctx, conn); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &errLockBusy{holder: lockHolder(ctx, conn)}
	}
	return nil
}

// lockHolder describes the session holding the migration lock: its pid,
// client address and application name, as far as the server shows them.
func lockHolder(ctx context.Context, conn *sql.Conn) string {
	var pid int
	var from string
	err := conn.QueryRowContext(ctx, `
		SELECT l.pid, coalesce(host(a.client_addr), 'local') || coalesce(nullif(' ' || a.application_name, ' '), '')
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid AND l.objsubid = 1
		LIMIT 1`, lock.DefaultLockID).Scan(&pid, &from)
	if err != nil {
		return "pid unknown"
	}
	return fmt.Sprintf("pid %d, from %s", pid, from)
}

// migrationError describes a migration that failed: its file, whether it
// was rolled back (every migration runs in a transaction unless its file
// says otherwise), the version the database stays at and the cause.
func migrationError(ctx context.Context, e *goose.PartialError, before int64) error {
	at := before
	if n := len(e.Applied); n > 0 {
		at = e.Applied[n-1].Source.Version
	}
	file := path.Base(e.Failed.Source.Path)
	cause := causeOf(ctx, e.Err)
	if b, err := fs.ReadFile(migrations.FS, file); err == nil && strings.Contains(string(b), "+goose NO TRANSACTION") {
		return fmt.Errorf("migration %s failed partway; it runs without a transaction, so what it did before the failure stays: "+
			"see to the database before running migrate again, which records it at schema version %d: %s", file, at, cause)
	}
	return fmt.Errorf("migration %s failed and was rolled back; the database stays at schema version %d: %s", file, at, cause)
}

// runError describes an error of the migrator's own statements (reading
// the version, taking the lock): the lock's in its words, the others by
// their cause.
func runError(ctx context.Context, op string, err error) error {
	var busy *errLockBusy
	if errors.As(err, &busy) {
		return busy
	}
	return fmt.Errorf("%s: %s", op, causeOf(ctx, err))
}

// causeOf puts an error of a statement in our words: the server's message
// and code, a lost connection, or an interruption.
func causeOf(ctx context.Context, err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		return fmt.Sprintf("the database said: %s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	case ctx.Err() != nil:
		return "interrupted"
	case pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, net.ErrClosed) || isConnLost(err):
		return "the connection to the database was lost"
	}
	return err.Error()
}

func isConnLost(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// connectError describes a connection that could not be made to the
// database cfg names: the server's refusal (the role, the password, the
// database) or why it could not be reached.
func connectError(ctx context.Context, cfg *pgx.ConnConfig, err error) error {
	where := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "28P01":
			return fmt.Errorf("the database server at %s refused user %q: wrong password", where, cfg.User)
		case strings.HasPrefix(pgErr.Code, "28"):
			return fmt.Errorf("the database server at %s refused user %q: %s", where, cfg.User, pgErr.Message)
		case pgErr.Code == "3D000":
			return fmt.Errorf("the database server at %s has no database %q", where, cfg.Database)
		}
		return fmt.Errorf("the database server at %s refused the connection: %s (SQLSTATE %s)", where, pgErr.Message, pgErr.Code)
	}
	var dnsErr *net.DNSError
	why := "no connection could be made"
	switch {
	case ctx.Err() != nil:
		why = "interrupted"
	case errors.As(err, &dnsErr):
		why = fmt.Sprintf("host not found (%s)", cfg.Host)
	case errors.Is(err, syscall.ECONNREFUSED):
		why = "connection refused: no server listens there"
	case pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded):
		why = fmt.Sprintf("the server did not answer within %s", cfg.ConnectTimeout)
	}
	return fmt.Errorf("cannot reach the database at %s: %s", where, why)
}
