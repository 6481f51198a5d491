package postgres_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/testkit"
)

var writeSchema = flag.Bool("write-schema", false, "rewrite migrations/schema.sql from the migrated template database (make schema)")

// schemaFile is migrations/schema.sql, from this package's directory.
const schemaFile = "../../migrations/schema.sql"

// schemaHeader opens migrations/schema.sql; %d is PostgreSQL's major
// version, the one whose pg_dump wrote the file.
const schemaHeader = `-- migrations/schema.sql: the schema as it is after every migration of this
-- directory (00001_baseline.sql, which defines it part by part with the
-- reasons, and each one after it), in one file to read. It is generated,
-- never edited: change the schema with a new numbered migration, then run
-- make schema, which migrates a throwaway PostgreSQL %d and dumps it here
-- (pg_dump --schema-only --no-owner --no-privileges, without pg_dump's
-- version lines and without the partitions of eco_api_usage and
-- eco_event_keys, which ensure_usage_partitions and
-- ensure_event_key_generations create as time passes). TestSchemaSQL
-- (shared/postgres) fails when it is stale. The migrations are what is
-- applied; this file is not applied.

`

// TestSchemaSQL fails when migrations/schema.sql is not the dump of a
// database with every migration applied: a migration was added or changed
// and make schema not run. With -write-schema it rewrites the file (make
// schema).
func TestSchemaSQL(t *testing.T) {
	if pgtest.Proxy() {
		t.Skip("the schema does not depend on pgx's mode: checked in the first run")
	}
	pgDump := pgDumpPath(t)
	dbURL := pgtest.NewURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var serverVersion int
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&serverVersion); err != nil {
		t.Fatal(err)
	}
	major := serverVersion / 10000
	partitions, err := runtimePartitions(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}

	dump, err := dumpSchema(pgDump, dbURL, partitions)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf(schemaHeader, major) + dump

	if *writeSchema {
		if err := os.WriteFile(schemaFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d lines)", filepath.Clean(schemaFile), strings.Count(got, "\n"))
		return
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("read %s: %v (run make schema)", schemaFile, err)
	}
	if fileMajor := schemaMajor(want); fileMajor != 0 && fileMajor != major {
		t.Skipf("migrations/schema.sql was dumped from PostgreSQL %d and this server is %d: the dumps of two major versions differ, so they are not compared", fileMajor, major)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("migrations/schema.sql is not the schema the migrations make: run make schema\n(-schema.sql +migrated database):\n%s", diff)
	}
}

// TestSchemaDumpNormalised: the lines of pg_dump that change from run to
// run or from one minor version to the next are gone, and nothing else.
func TestSchemaDumpNormalised(t *testing.T) {
	in := "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n-- Dumped from database version 15.18 (Debian)\n-- Dumped by pg_dump version 15.18 (Debian)\n\nSET x = 0;\n\n\nCREATE TABLE t ();\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n"
	want := "--\n-- PostgreSQL database dump\n--\n\nSET x = 0;\n\n\nCREATE TABLE t ();\n\n--\n-- PostgreSQL database dump complete\n--\n"
	if got := normaliseDump(in); got != want {
		t.Errorf("normaliseDump:\n%q\nwant\n%q", got, want)
	}
}

// pgDumpPath finds pg_dump where scripts/with-services.sh finds the
// server's binaries: pg_config's bindir, the newest of
// /usr/lib/postgresql/*/bin, then PATH.
func pgDumpPath(t *testing.T) string {
	t.Helper()
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versioned, func(i, j int) bool { return pgMajorOf(versioned[i]) > pgMajorOf(versioned[j]) })
	dirs = append(dirs, versioned...)
	for _, d := range dirs {
		p := filepath.Join(d, "pg_dump")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p
	}
	testkit.Missing(t, "pg_dump not found (install the Debian package postgresql-15)")
	return ""
}

func pgMajorOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// runtimePartitions lists every partition in the database: all of them are
// made by the partition maintenance as time passes (the migrations make the
// first ones relative to now), so they are data of the day, not schema.
func runtimePartitions(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `
		SELECT format('%I.%I', n.nspname, c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relispartition AND c.relkind IN ('r', 'p')
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// dumpSchema runs pg_dump on the database and returns its normalised
// output.
func dumpSchema(pgDump, dbURL string, exclude []string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Del("default_query_exec_mode") // pgx's, unknown to libpq
	u.RawQuery = q.Encode()
	args := []string{"--schema-only", "--no-owner", "--no-privileges"}
	for _, p := range exclude {
		args = append(args, "--exclude-table="+p)
	}
	args = append(args, "--dbname="+u.String())
	var stderr bytes.Buffer
	cmd := exec.Command(pgDump, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pg_dump: %v: %s", err, stderr.String())
	}
	return normaliseDump(string(out)), nil
}

// dumpNoise matches the lines of a dump that are not the schema: the
// versions of the server and of pg_dump, and the \restrict and \unrestrict
// commands with the random key newer pg_dumps write.
var dumpNoise = regexp.MustCompile(`^(-- Dumped (from|by) .*|\\(un)?restrict .*)$`)

// normaliseDump drops dumpNoise lines, each with the blank line after it,
// and ends the dump with one newline.
func normaliseDump(s string) string {
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	dropped := false
	for _, l := range lines {
		if dumpNoise.MatchString(l) || (dropped && l == "") {
			dropped = true
			continue
		}
		dropped = false
		out = append(out, l)
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
}

var schemaMajorRe = regexp.MustCompile(`a throwaway PostgreSQL (\d+) and dumps it`)

// schemaMajor returns the PostgreSQL major version schema.sql's header
// names, 0 when it names none.
func schemaMajor(b []byte) int {
	m := schemaMajorRe.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
