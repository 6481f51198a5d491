package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/nexus/usage/migrations"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrate applies every pending migration embedded in the migrations
// package to the database at url and returns the versions it applied. It
// holds a PostgreSQL session lock while it runs, so concurrent callers
// apply each migration once; with nothing pending it changes nothing. A
// database at a version newer than the latest embedded migration (migrated
// by a newer release) is refused and left as it is.
func Migrate(ctx context.Context, url string, logger *slog.Logger) ([]int64, error) {
	cfg, err := stdlibConfig(url)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrateDB(ctx, db, logger)
}

func migrateDB(ctx context.Context, db *sql.DB, logger *slog.Logger) ([]int64, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker), goose.WithTableName("eco_schema_migrations")}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, opts...)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	if err := refuseNewer(ctx, p); err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	applied := make([]int64, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// refuseNewer returns an error when the database's version is above the
// latest migration p holds: a newer release migrated it, and goose would
// report it as current, or take the versions it recorded for files since
// replaced (the fourteen before 00001_baseline.sql) as these files'.
func refuseNewer(ctx context.Context, p *goose.Provider) error {
	sources := p.ListSources()
	latest := sources[len(sources)-1]
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("read the database's schema version: %w", err)
	}
	if current > latest.Version {
		return fmt.Errorf("the database is at schema version %d, newer than this migrate's latest migration, %d (%s): "+
			"a newer release migrated it; run migrate and deploy the functions from that release or a later one, "+
			"nothing was changed", current, latest.Version, path.Base(latest.Path))
	}
	return nil
}
