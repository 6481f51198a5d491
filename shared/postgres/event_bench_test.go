package postgres

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/usage"
)

// BenchmarkRecordStatement measures the ways to write a batch of the
// production shape (10,000 events, 200 users, one day) that were
// considered for the record path, each on a fresh database, 20 batches,
// against copy_keyed (COPY of the same raw rows and their keys, one
// transaction per batch: no dedupe, no counters) in the same run; and
// statement, copy and copy_keyed again with batches of 100 events (1,000
// batches, the _100 runs). Only the database's part is timed: the batches
// are built (sorted, ids parsed) beforehand. Each way is exactly-once on
// its own; the record path uses copy, with statement when an id is stored
// already.
//
//   - statement: recordBatchSQL, one statement (the record path before
//     the COPY, and its way for redeliveries);
//   - staging_temp: COPY into a temporary table (ON COMMIT DROP), then one
//     statement that dedupes, inserts and counts from it (a temporary
//     table pins the session behind RDS Proxy, too);
//   - staging_unlogged: the same through an unlogged table shared by all
//     batches, its rows tagged with the batch and deleted at the end;
//   - pipelined: the key insert and then the raw insert with the counters
//     (the keys this transaction inserted, told by their xmin), sent
//     together in one round trip;
//   - copy: the record path's way (copyBatch): the older generation
//     probed, then COPY of the keys (the unique index refuses a stored id)
//     and of the raw rows, then the counters and dirty marks, in four
//     round trips (BEGIN goes with the probe, COMMIT with the counters).
//
// It needs NEXUS_TEST_DATABASE_URL and NEXUS_TEST_TEMPLATE, as pgtest
// does (this package's own tests cannot import pgtest, which imports it).
func BenchmarkRecordStatement(b *testing.B) {
	var keyed float64
	ways := []struct {
		name  string
		setup string
		write func(ctx context.Context, db *DB, bt *batch, n int) error
	}{
		{"copy_keyed", "", benchCopyKeyed},
		{"statement", "", func(ctx context.Context, db *DB, bt *batch, _ int) error {
			var n int64
			var fired []string
			var pending int
			return db.Pool.QueryRow(ctx, recordBatchSQL, bt.statementArgs()...).Scan(&n, &fired, &pending)
		}},
		{"staging_temp", "", benchStagingTemp},
		{"staging_unlogged", `CREATE UNLOGGED TABLE bench_stage (batch integer NOT NULL, event_id uuid, user_id uuid, api_key_id uuid,
			endpoint text, method text, status_code smallint, latency_ms integer, request_bytes bigint, response_bytes bigint,
			quantity integer, occurred_at timestamptz, received_at timestamptz);
			CREATE INDEX ON bench_stage (batch)`, benchStagingUnlogged},
		{"pipelined", "", benchPipelined},
		{"copy", "", func(ctx context.Context, db *DB, bt *batch, _ int) error {
			_, err := NewEventStore(db).copyBatch(ctx, bt)
			return err
		}},
	}
	type run struct {
		name          string
		size, batches int
		setup         string
		write         func(ctx context.Context, db *DB, bt *batch, n int) error
	}
	var runs []run
	for _, w := range ways {
		runs = append(runs, run{w.name, 10_000, 20, w.setup, w.write})
	}
	for _, w := range ways {
		if w.name == "copy_keyed" || w.name == "statement" || w.name == "copy" {
			runs = append(runs, run{w.name + "_100", 100, 1000, w.setup, w.write})
		}
	}
	for _, w := range runs {
		b.Run(w.name, func(b *testing.B) {
			db := benchDB(b)
			ctx := context.Background()
			if w.setup != "" {
				if _, err := db.Pool.Exec(ctx, w.setup); err != nil {
					b.Fatal(err)
				}
			}
			now := micros(time.Now().UTC())
			write, older := usage.KeyGenerations(now)
			if _, err := db.Pool.Exec(ctx, `SELECT ensure_event_key_generations($1)`, write); err != nil {
				b.Fatal(err)
			}
			if _, err := db.ensurePartitions(ctx, now.AddDate(0, 0, -1), 2); err != nil {
				b.Fatal(err)
			}
			var rate float64
			for range b.N {
				b.StopTimer()
				batches := make([]*batch, w.batches)
				for i := range batches {
					var err error
					if batches[i], err = newBatch(benchEvents(w.size, now), nil, now, write, older); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				start := time.Now()
				for i, bt := range batches {
					if err := w.write(ctx, db, bt, i); err != nil {
						b.Fatal(err)
					}
				}
				rate = float64(w.size*w.batches) / time.Since(start).Seconds()
				b.StopTimer()
				var rows, calls int64
				if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM eco_api_usage), (SELECT coalesce(sum(calls), 0) FROM eco_usage_counters)`).
					Scan(&rows, &calls); err != nil {
					b.Fatal(err)
				}
				if want := int64(w.size * w.batches); rows != want || (!strings.HasPrefix(w.name, "copy_keyed") && calls != want) {
					b.Fatalf("%d rows, %d calls counted; want %d", rows, calls, want)
				}
				if _, err := db.Pool.Exec(ctx, `TRUNCATE eco_api_usage, eco_event_keys, eco_usage_counter_slots, eco_usage_dirty_user_days`); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(rate, "events/s")
			if strings.HasPrefix(w.name, "copy_keyed") {
				keyed = rate
			} else if keyed > 0 {
				b.ReportMetric(rate/keyed, "x_copy_keyed")
			}
		})
	}
}

// benchDB opens a fresh database cloned from the test template, dropped
// when the benchmark ends.
func benchDB(b *testing.B) *DB {
	admin, tmpl := os.Getenv("NEXUS_TEST_DATABASE_URL"), os.Getenv("NEXUS_TEST_TEMPLATE")
	if admin == "" || tmpl == "" {
		b.Skip("PostgreSQL is not available (NEXUS_TEST_DATABASE_URL, NEXUS_TEST_TEMPLATE unset): run make bench")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("bench_%d_%x", os.Getpid(), rand.Uint64())
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %q TEMPLATE %q`, name, tmpl)); err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	db, err := Open(ctx, Config{URL: u.String(), MaxConns: 4, ExecMode: os.Getenv("DATABASE_PROXY") == "true"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		db.Close()
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, name))
	})
	return db
}

// benchEvents returns n valid events of 200 users within the last hour,
// with time-ordered ids, as the producers send them.
func benchEvents(n int, now time.Time) []usage.Event {
	rng := rand.New(rand.NewPCG(7, rand.Uint64()))
	users := make([]string, 200)
	for i := range users {
		users[i] = uuid.NewString()
	}
	out := make([]usage.Event, n)
	for i := range out {
		id, _ := uuid.NewV7()
		out[i] = usage.Event{Version: 1, EventID: id.String(), UserID: users[rng.IntN(len(users))],
			Endpoint: "GET /v1/games/{id}", Method: "GET", StatusCode: []int{200, 200, 200, 404, 500}[rng.IntN(5)],
			LatencyMS: int64(rng.IntN(300)), RequestBytes: int64(rng.IntN(2000)), ResponseBytes: int64(rng.IntN(20000)),
			Quantity: 1, OccurredAt: now.Add(-time.Duration(rng.Int64N(int64(time.Hour))))}
	}
	return out
}

const copyRawSQL = `COPY eco_api_usage (event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms,
	request_bytes, response_bytes, quantity, occurred_at, received_at) FROM STDIN WITH (FORMAT binary)`

func benchCopyKeyed(ctx context.Context, db *DB, bt *batch, _ int) error {
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		conn := tx.Conn().PgConn()
		if _, err := conn.CopyFrom(ctx, bytes.NewReader(bt.keyData()), `COPY eco_event_keys (gen, event_id) FROM STDIN WITH (FORMAT binary)`); err != nil {
			return err
		}
		_, err := conn.CopyFrom(ctx, bytes.NewReader(bt.rawData()), copyRawSQL)
		return err
	})
}

// stagedSQL dedupes, inserts and counts the batch staged in $1 (a table
// with the raw table's columns), as recordBatchSQL does from its arrays;
// $2 is the generation of now, $3 the older one.
const stagedSQL = `WITH k AS (
    INSERT INTO eco_event_keys (gen, event_id)
    SELECT $2::integer, s.event_id FROM %s s
    WHERE NOT EXISTS (SELECT 1 FROM eco_event_keys o WHERE o.gen = $3::integer AND o.event_id = s.event_id) %s
    ORDER BY s.event_id
    ON CONFLICT DO NOTHING
    RETURNING event_id
), ins AS (
    INSERT INTO eco_api_usage (event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms,
        request_bytes, response_bytes, quantity, occurred_at, received_at)
    SELECT s.event_id, s.user_id, s.api_key_id, s.endpoint, s.method, s.status_code, s.latency_ms,
        s.request_bytes, s.response_bytes, s.quantity, s.occurred_at, s.received_at
    FROM %s s WHERE s.event_id IN (SELECT event_id FROM k) %s
    RETURNING user_id, occurred_at, status_code, request_bytes, response_bytes, quantity
), d AS (
    SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, sum(quantity)::bigint AS c,
        coalesce(sum(quantity) FILTER (WHERE status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
        coalesce(sum(quantity) FILTER (WHERE status_code >= 500), 0)::bigint AS e5,
        least(sum(request_bytes), 9223372036854775807)::bigint AS rq,
        least(sum(response_bytes), 9223372036854775807)::bigint AS rs
    FROM ins GROUP BY 1, 2
)
SELECT increment_api_calls(array_agg(user_id), array_agg(day), array_agg(c), array_agg(e4), array_agg(e5),
    array_agg(rq), array_agg(rs)) FROM d`

func benchStagingTemp(ctx context.Context, db *DB, bt *batch, _ int) error {
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE stage (LIKE eco_api_usage) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(bt.rawData()), `COPY stage (event_id, user_id, api_key_id, endpoint, method,
			status_code, latency_ms, request_bytes, response_bytes, quantity, occurred_at, received_at) FROM STDIN WITH (FORMAT binary)`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(stagedSQL, "stage", "AND $1::integer IS NOT NULL", "stage", ""), 0, int32(bt.write[0]), int32(bt.older))
		return err
	})
}

func benchStagingUnlogged(ctx context.Context, db *DB, bt *batch, n int) error {
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		raw := bt.rawData()
		// The raw rows with the batch's number in front of each.
		c := newCopyData(len(raw) + 8*len(bt.events))
		for i, e := range bt.events {
			c.row(13)
			c.int32(int32(n))
			c.uuid(bt.ids[i].Bytes)
			c.uuid(bt.users[i].Bytes)
			if bt.keys[i].Valid {
				c.uuid(bt.keys[i].Bytes)
			} else {
				c.null()
			}
			c.text(e.Endpoint)
			c.text(e.Method)
			c.int16(int16(e.StatusCode))
			c.int32(int32(e.LatencyMS))
			c.int64(e.RequestBytes)
			c.int64(e.ResponseBytes)
			c.int32(int32(e.Quantity))
			c.timestamptz(bt.times[i])
			c.timestamptz(bt.now)
		}
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(c.bytes()), `COPY bench_stage FROM STDIN WITH (FORMAT binary)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(stagedSQL, "bench_stage", "AND s.batch = $1::integer", "bench_stage", "AND s.batch = $1::integer"),
			int32(n), int32(bt.write[0]), int32(bt.older)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM bench_stage WHERE batch = $1::integer`, int32(n))
		return err
	})
}

// pipelinedKeysSQL and pipelinedRawSQL split recordBatchSQL in two: the
// second inserts the events whose keys this transaction inserted.
const pipelinedKeysSQL = `INSERT INTO eco_event_keys (gen, event_id)
SELECT $2::integer, id FROM unnest($1::uuid[]) AS id
WHERE NOT EXISTS (SELECT 1 FROM eco_event_keys o WHERE o.gen = $3::integer AND o.event_id = id)
ON CONFLICT DO NOTHING`

const pipelinedRawSQL = `WITH ins AS (
    INSERT INTO eco_api_usage (event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms,
        request_bytes, response_bytes, quantity, occurred_at, received_at)
    SELECT e.*, $12::timestamptz
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::smallint[], $7::integer[],
        $8::bigint[], $9::bigint[], $10::integer[], $11::timestamptz[])
        AS e(event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms, request_bytes,
            response_bytes, quantity, occurred_at)
    WHERE EXISTS (SELECT 1 FROM eco_event_keys k WHERE k.gen = $13::integer AND k.event_id = e.event_id
                  AND k.xmin = pg_current_xact_id()::xid)
    RETURNING user_id, occurred_at, status_code, request_bytes, response_bytes, quantity
), d AS (
    SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, sum(quantity)::bigint AS c,
        coalesce(sum(quantity) FILTER (WHERE status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
        coalesce(sum(quantity) FILTER (WHERE status_code >= 500), 0)::bigint AS e5,
        least(sum(request_bytes), 9223372036854775807)::bigint AS rq,
        least(sum(response_bytes), 9223372036854775807)::bigint AS rs
    FROM ins GROUP BY 1, 2
)
SELECT increment_api_calls(array_agg(user_id), array_agg(day), array_agg(c), array_agg(e4), array_agg(e5),
    array_agg(rq), array_agg(rs)) FROM d`

func benchPipelined(ctx context.Context, db *DB, bt *batch, _ int) error {
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		args := bt.statementArgs()
		var pb pgx.Batch
		pb.Queue(pipelinedKeysSQL, bt.ids, int32(bt.write[0]), int32(bt.older))
		pb.Queue(pipelinedRawSQL, append(args[:12:12], int32(bt.write[0]))...)
		return tx.SendBatch(ctx, &pb).Close()
	})
}
