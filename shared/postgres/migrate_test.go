package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nexus/usage/migrations"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
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

// TestMigrateErrorsInOurWords: what an operator gets wrong (the URL, the
// server, the database, the role) and a migration that fails on the
// database it meets, or another migrate still holding the lock, are told
// in our words, naming what failed, without goose's, pgx's or Go's text.
// A failed migration is rolled back and the database stays at the version
// before it, which the error names.
func TestMigrateErrorsInOurWords(t *testing.T) {
	if pgtest.Proxy() {
		t.Skip("the errors do not depend on pgx's mode: checked in the first run")
	}
	ctx := context.Background()
	admin, err := url.Parse(pgtest.Require(t, "NEXUS_TEST_DATABASE_URL", "PostgreSQL"))
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(u *url.URL)) string {
		u := *admin
		f(&u)
		return u.String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	tests := []struct {
		name  string
		setup func(t *testing.T) string // the URL to migrate
		want  []string
		check func(t *testing.T, url string) // the database after the error
	}{
		{"not a URL",
			func(t *testing.T) string { return "postgres://nexus:pa ss@[::1/nexus" },
			[]string{"the database URL is not valid", "percent-encoded"}, nil},
		{"nothing listens there",
			func(t *testing.T) string { return with(func(u *url.URL) { u.Host = closed }) },
			[]string{"cannot reach the database at " + closed, "connection refused"}, nil},
		{"no such host",
			func(t *testing.T) string { return with(func(u *url.URL) { u.Host = "no-such-host.invalid:5432" }) },
			[]string{"cannot reach the database at no-such-host.invalid:5432", "host not found"}, nil},
		{"no such database",
			func(t *testing.T) string { return with(func(u *url.URL) { u.Path = "/no_such_database" }) },
			[]string{"the database server at " + admin.Host + ` has no database "no_such_database"`}, nil},
		{"a role that may not log in",
			func(t *testing.T) string {
				role := fmt.Sprintf("nologin_%d", os.Getpid())
				conn, err := pgx.Connect(ctx, admin.String())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE ROLE %q NOLOGIN`, role)); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if c, err := pgx.Connect(ctx, admin.String()); err == nil {
						c.Exec(ctx, fmt.Sprintf(`DROP ROLE IF EXISTS %q`, role))
						c.Close(ctx)
					}
				})
				return with(func(u *url.URL) { u.User = url.UserPassword(role, "secret") })
			},
			[]string{"the database server at " + admin.Host + " refused user \"nologin_", "not permitted to log in"}, nil},
		{"a migration that fails on the database it meets",
			func(t *testing.T) string {
				u, db, p := migrationProvider(t)
				if _, err := p.DownTo(ctx, 1); err != nil {
					t.Fatal(err)
				}
				if _, err := db.ExecContext(ctx, `
					INSERT INTO eco_rate_limits (key, tat, allowed) VALUES ('k', 1, true);
					CREATE FUNCTION rate_limit_rescale(bigint, bigint, bigint, bigint) RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint'`); err != nil {
					t.Fatal(err)
				}
				return u
			},
			[]string{"migration 00002_rate_limit_rescale.sql failed and was rolled back", "the database stays at schema version 1",
				`function "rate_limit_rescale" already exists`},
			func(t *testing.T, u string) {
				db, err := sql.Open("pgx", u)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				var version, columns, rows int
				if err := db.QueryRowContext(ctx, `SELECT
					(SELECT max(version_id) FROM eco_schema_migrations),
					(SELECT count(*) FROM information_schema.columns WHERE table_name = 'eco_rate_limits' AND column_name = 'tolerance'),
					(SELECT count(*) FROM eco_rate_limits)`).Scan(&version, &columns, &rows); err != nil {
					t.Fatal(err)
				}
				if version != 1 || columns != 0 || rows != 1 {
					t.Errorf("after the failed migration: version %d, tolerance columns %d, rate limit rows %d; want 1, 0 (rolled back), 1", version, columns, rows)
				}
			}},
		{"another migrate holds the lock",
			func(t *testing.T) string {
				u, _, p := migrationProvider(t)
				if _, err := p.DownTo(ctx, 1); err != nil {
					t.Fatal(err)
				}
				holder, err := pgx.Connect(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { holder.Close(ctx) })
				if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, lock.DefaultLockID); err != nil {
					t.Fatal(err)
				}
				postgres.SetMigrateLockWait(t, 2)
				return u
			},
			[]string{"another migrate", "still holds the migration lock", "pid "}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.setup(t)
			applied, err := postgres.Migrate(ctx, u, nil)
			if err == nil {
				t.Fatalf("Migrate = applied %v, no error; want an error", applied)
			}
			msg := err.Error()
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("Migrate error = %q; want it to say %q", msg, want)
				}
			}
			for _, internal := range []string{"goose", "partial migration error", "failed to", "dial ", "pgconn", "cannot parse", "lookup ", "ERROR:"} {
				if strings.Contains(msg, internal) {
					t.Errorf("Migrate error = %q; want our words, without %q", msg, internal)
				}
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("Migrate error = %q; want it without the password", msg)
			}
			if tt.check != nil {
				tt.check(t, u)
			}
		})
	}
}

// TestMigrateConcurrent: two migrators at once (two deploy pipelines)
// both succeed, and each pending migration is applied once: the second
// waits for the first's lock and then finds nothing pending.
func TestMigrateConcurrent(t *testing.T) {
	ctx := context.Background()
	u, _, p := migrationProvider(t)
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	applied := make([][]int64, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { applied[i], errs[i] = postgres.Migrate(ctx, u, nil) })
	}
	wg.Wait()
	var all []int64
	for i := range 2 {
		if errs[i] != nil {
			t.Errorf("migrator %d: %v", i, errs[i])
		}
		all = append(all, applied[i]...)
	}
	slices.Sort(all)
	var want []int64
	for _, s := range p.ListSources() {
		want = append(want, s.Version)
	}
	if !slices.Equal(all, want) {
		t.Errorf("the two migrators applied %v and %v; want %v between them, each once", applied[0], applied[1], want)
	}
}

// TestMigrateSilentServer: a host that takes the connection and never
// answers (a proxy or load balancer with nothing behind it, a server
// stuck) is given up on after the connect timeout, with an error saying
// so, instead of a migrate that waits for ever.
func TestMigrateSilentServer(t *testing.T) {
	if pgtest.Proxy() {
		t.Skip("the connect timeout does not depend on pgx's mode: checked in the first run")
	}
	t.Parallel()
	addr := silentServer(t)
	done := make(chan error, 1)
	go func() {
		_, err := postgres.Migrate(context.Background(), "postgres://nexus:secret@"+addr+"/nexus?sslmode=disable", nil)
		done <- err
	}()
	select {
	case err := <-done:
		want := "cannot reach the database at " + addr + ": the server did not answer within 10s"
		if err == nil || err.Error() != want {
			t.Errorf("Migrate against a server that never answers = %v; want %q", err, want)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("Migrate against a server that never answers had not returned after 45 s; want it to give up after its connect timeout")
	}
}

// TestMigrateWholeSecondAnchors: migration 3 keeps period anchors in whole
// seconds, as Stripe keeps an invoice item's period, and moves what was
// written for an anchor with a fraction to the second: the anchor with
// the first terms entry the database gave it, the ledger rows of its
// periods (their lines' bounds too), the billing progress and the alerts.
// An anchor written afterwards loses its fraction.
func TestMigrateWholeSecondAnchors(t *testing.T) {
	ctx := context.Background()
	_, db, p := migrationProvider(t)
	if _, err := p.DownTo(ctx, 2); err != nil {
		t.Fatalf("down to 2: %v", err)
	}
	const (
		user  = "00000000-0000-4000-8000-000000000001"
		other = "00000000-0000-4000-8000-000000000002"
	)
	for _, q := range []string{
		`INSERT INTO eco_subscriptions (user_id, plan_id, period_anchor) VALUES ('` + user + `', 'pro', '2026-01-01 14:00:00.25+00')`,
		`INSERT INTO eco_overage_ledger (ledger_id, user_id, period_start, period_end, seq, included_calls, used_calls, units,
			unit_size, unit_price, amount, currency, idempotency_key, status, lines)
			VALUES (gen_random_uuid(), '` + user + `', '2026-01-01 14:00:00.25+00', '2026-02-01 14:00:00.25+00', 0, 100000, 150000, 50,
			1000, 50, 2500, 'usd', 'k0', 'billed',
			'[{"from": "2026-01-01T14:00:00.25Z", "to": "2026-01-10T00:00:00Z", "used_calls": 1},
			  {"from": "2026-01-10T00:00:00Z", "to": "2026-02-01T14:00:00.25Z", "used_calls": 2}]')`,
		`INSERT INTO eco_overage_progress (user_id, closed_through, updated_at) VALUES ('` + user + `', '2026-02-01 14:00:00.25+00', now())`,
		`INSERT INTO eco_usage_alerts (user_id, period_start, threshold, period_end, included_calls, used_calls, created_at)
			VALUES ('` + user + `', '2026-02-01 14:00:00.25+00', 80, '2026-03-01 14:00:00.25+00', 100000, 80000, now())`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatalf("up to 3: %v", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO eco_subscriptions (user_id, plan_id, period_anchor)
		VALUES ('`+other+`', 'pro', '2026-01-05 09:30:15.999999+00')`); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := db.QueryRowContext(ctx, `SELECT jsonb_build_object(
		'anchors', (SELECT jsonb_agg(to_char(period_anchor AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') ORDER BY user_id) FROM eco_subscriptions),
		'terms', (SELECT jsonb_agg(to_char(effective_from AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') ORDER BY user_id) FROM eco_subscription_terms),
		'ledger', (SELECT jsonb_agg(jsonb_build_array(to_char(period_start AT TIME ZONE 'UTC', 'HH24:MI:SS.US'),
			to_char(period_end AT TIME ZONE 'UTC', 'HH24:MI:SS.US'),
			(SELECT jsonb_agg(jsonb_build_array((l->>'from')::timestamptz = '2026-01-01 14:00:00+00' OR (l->>'from')::timestamptz = '2026-01-10 00:00:00+00',
				(l->>'to')::timestamptz = '2026-01-10 00:00:00+00' OR (l->>'to')::timestamptz = '2026-02-01 14:00:00+00', l->'used_calls')) FROM jsonb_array_elements(lines) l)))
			FROM eco_overage_ledger),
		'progress', (SELECT jsonb_agg(to_char(closed_through AT TIME ZONE 'UTC', 'HH24:MI:SS.US')) FROM eco_overage_progress),
		'alerts', (SELECT jsonb_agg(to_char(period_start AT TIME ZONE 'UTC', 'HH24:MI:SS.US') || ' ' || to_char(period_end AT TIME ZONE 'UTC', 'HH24:MI:SS.US')) FROM eco_usage_alerts))::text`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	want := `{"terms": ["2026-01-01 14:00:00.000000", "2026-01-05 09:30:15.000000"], "alerts": ["14:00:00.000000 14:00:00.000000"], ` +
		`"ledger": [["14:00:00.000000", "14:00:00.000000", [[true, true, 1], [true, true, 2]]]], "anchors": ["2026-01-01 14:00:00.000000", "2026-01-05 09:30:15.000000"], ` +
		`"progress": ["14:00:00.000000"]}`
	if got != want {
		t.Errorf("after migration 3:\n%s\nwant\n%s", got, want)
	}
}
