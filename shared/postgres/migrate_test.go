package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nexus/usage/migrations"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/pressly/goose/v3"
)

// migrationProvider returns a migrated test database and a goose provider
// over it, to step the migrations down and up.
func migrationProvider(t *testing.T) (string, *sql.DB, *goose.Provider) {
	t.Helper()
	url := pgtest.NewURL(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithTableName("eco_schema_migrations"))
	if err != nil {
		t.Fatal(err)
	}
	return url, db, p
}

// TestMigrateDownAndUp rolls every migration back on a migrated database:
// nothing of ours is left but goose's own table. Applying them all again
// gives the same schema, as pg_dump writes it, and the same seeded rows.
func TestMigrateDownAndUp(t *testing.T) {
	ctx := context.Background()
	url, db, p := migrationProvider(t)
	pgDump := pgDumpPath(t)
	dump := func() string {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		partitions, err := runtimePartitions(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		d, err := dumpSchema(pgDump, url, partitions)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	schema, seed := dump(), seededRows(t, db)

	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down to 0: %v", err)
	}
	if left := ourObjects(t, db); len(left) != 0 {
		t.Errorf("after down to 0, left behind: %q; want nothing", left)
	}

	applied, err := postgres.Migrate(ctx, url, nil)
	if err != nil {
		t.Fatalf("up again: %v", err)
	}
	if want := len(p.ListSources()); len(applied) != want {
		t.Errorf("up again applied %d migrations; want %d", len(applied), want)
	}
	if diff := cmp.Diff(schema, dump()); diff != "" {
		t.Errorf("the schema after down and up again is not the one before (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(seed, seededRows(t, db)); diff != "" {
		t.Errorf("the seeded rows after down and up again are not the ones before (-before +after):\n%s", diff)
	}
}

// ourObjects lists what the public schema holds besides goose's version
// table: relations (tables, partitions, views, sequences, indexes),
// functions and types of their own.
func ourObjects(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`
		SELECT 'relation ' || c.relname FROM pg_class c
		WHERE c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE 'eco\_schema\_migrations%'
		UNION ALL
		SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
		WHERE p.pronamespace = 'public'::regnamespace
		UNION ALL
		SELECT 'type ' || y.typname FROM pg_type y
		WHERE y.typnamespace = 'public'::regnamespace AND y.typrelid = 0 AND y.typcategory <> 'A'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// seededRows returns the rows the migrations insert, without what differs
// from one run to the next (random ids, the time of the run), as JSON.
func seededRows(t *testing.T, db *sql.DB) string {
	t.Helper()
	var s string
	if err := db.QueryRow(`SELECT jsonb_pretty(jsonb_build_object(
		'plans', (SELECT jsonb_agg(to_jsonb(p) - 'created_at' - 'updated_at' ORDER BY p.plan_id) FROM eco_plans p),
		'rules', (SELECT jsonb_agg(to_jsonb(r) - 'rule_id' - 'created_at' - 'updated_at' ORDER BY r.plan_id, r.value) FROM eco_notify_rules r),
		'record_slots', (SELECT jsonb_agg(slot ORDER BY slot) FROM eco_record_slots),
		'notify_epoch', (SELECT jsonb_agg(epoch) FROM eco_notify_epoch),
		'terms_version', (SELECT last_value FROM eco_terms_version_seq)))`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMigrateDownRestoresEachVersion steps the migrations up one at a time
// from nothing, noting the schema at each version (at 0, nothing of ours);
// then, for each migration, it takes a database up from nothing to that
// migration and steps it down once: each Down section must give back the
// schema of the version before it (a function body restored from an older
// migration that differs from it fails here, and so does a Down that
// leaves something of its Up behind).
func TestMigrateDownRestoresEachVersion(t *testing.T) {
	ctx := context.Background()
	_, db, p := migrationProvider(t)
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down to 0: %v", err)
	}
	sources := p.ListSources()
	up := map[int64]map[string]string{0: schemaOf(t, db)}
	for _, s := range sources {
		if _, err := p.UpTo(ctx, s.Version); err != nil {
			t.Fatalf("up to %d: %v", s.Version, err)
		}
		up[s.Version] = schemaOf(t, db)
	}
	for i := len(sources) - 1; i >= 0; i-- {
		v, prev := sources[i].Version, int64(0)
		if i > 0 {
			prev = sources[i-1].Version
		}
		_, db, p := migrationProvider(t)
		if _, err := p.DownTo(ctx, 0); err != nil {
			t.Fatalf("down to 0: %v", err)
		}
		if _, err := p.UpTo(ctx, v); err != nil {
			t.Fatalf("up to %d: %v", v, err)
		}
		if _, err := p.DownTo(ctx, prev); err != nil {
			t.Fatalf("down to %d: %v", prev, err)
		}
		if diff := cmp.Diff(up[prev], schemaOf(t, db)); diff != "" {
			t.Errorf("%d down: the schema is not version %d's (-up +down):\n%s", v, prev, diff)
		}
	}
}

// schemaOf returns the public schema's relations (kind, persistence,
// storage options), functions, columns, constraints, indexes, views,
// triggers and comments by name, each with its definition; goose's table
// and the partitions made as time passes are left out.
func schemaOf(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query(`
		WITH rel AS (
			SELECT c.* FROM pg_class c
			WHERE c.relnamespace = 'public'::regnamespace AND NOT c.relispartition
				AND c.relname NOT LIKE 'eco\_schema\_migrations%'
		)
		SELECT 'relation ' || c.relname, c.relkind::text || ' ' || c.relpersistence::text || coalesce(' ' || c.reloptions::text, '')
		FROM rel c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
		UNION ALL
		SELECT 'function ' || p.oid::regprocedure::text, pg_get_functiondef(p.oid)
		FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
		UNION ALL
		SELECT 'column ' || c.relname || '.' || a.attname,
			format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END ||
			coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a JOIN rel c ON c.oid = a.attrelid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT 'constraint ' || c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
		FROM pg_constraint k JOIN rel c ON c.oid = k.conrelid
		UNION ALL
		SELECT 'index ' || i.relname, pg_get_indexdef(i.oid)
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN rel c ON c.oid = x.indrelid
		UNION ALL
		SELECT 'view ' || c.relname, pg_get_viewdef(c.oid)
		FROM rel c WHERE c.relkind IN ('v', 'm')
		UNION ALL
		SELECT 'trigger ' || c.relname || '.' || g.tgname, pg_get_triggerdef(g.oid)
		FROM pg_trigger g JOIN rel c ON c.oid = g.tgrelid WHERE NOT g.tgisinternal
		UNION ALL
		SELECT 'comment on ' || pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
		FROM pg_description d
		WHERE (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM rel))
			OR (d.classoid = 'pg_proc'::regclass AND d.objoid IN (SELECT oid FROM pg_proc WHERE pronamespace = 'public'::regnamespace))`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		out[name] = def
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMigrateRefusesNewerDatabase: a database that a newer release
// migrated (a migration applied that this binary does not have, or the
// fourteen migrations the baseline replaced) is refused in our words,
// naming both versions, and left as it is; it is never reported as up to
// date, nor migrated around.
func TestMigrateRefusesNewerDatabase(t *testing.T) {
	sources := func() []*goose.Source {
		_, _, p := migrationProvider(t)
		return p.ListSources()
	}()
	latest := sources[len(sources)-1].Version
	tests := []struct {
		name  string
		setup string
		db    int64 // the database's version after setup
	}{
		{"a newer migration applied",
			fmt.Sprintf(`INSERT INTO eco_schema_migrations (version_id, is_applied) VALUES (%d, true)`, latest+1), latest + 1},
		{"migrated by the fourteen files before the baseline",
			`DELETE FROM eco_schema_migrations WHERE version_id > 1;
			 INSERT INTO eco_schema_migrations (version_id, is_applied) SELECT v, true FROM generate_series(2, 14) v`, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			url, db, _ := migrationProvider(t)
			if _, err := db.ExecContext(ctx, tt.setup); err != nil {
				t.Fatal(err)
			}
			before := schemaOf(t, db)
			applied, err := postgres.Migrate(ctx, url, nil)
			if err == nil {
				t.Fatalf("Migrate on a database at version %d (this binary knows up to %d) = applied %v, no error; want it refused", tt.db, latest, applied)
			}
			msg := err.Error()
			for _, want := range []string{fmt.Sprintf("version %d", tt.db), fmt.Sprintf("%d (%s)", latest, path.Base(sources[len(sources)-1].Path)), "newer release"} {
				if !strings.Contains(msg, want) {
					t.Errorf("Migrate error = %q; want it to name %q", msg, want)
				}
			}
			for _, internal := range []string{"goose", "missing (out-of-order)", "SQLSTATE", "failed to"} {
				if strings.Contains(msg, internal) {
					t.Errorf("Migrate error = %q; want our words, without %q", msg, internal)
				}
			}
			if diff := cmp.Diff(before, schemaOf(t, db)); diff != "" {
				t.Errorf("Migrate changed a newer database's schema (-before +after):\n%s", diff)
			}
		})
	}
}
