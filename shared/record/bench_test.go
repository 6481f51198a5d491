package record_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// benchShape is how a measurement packs its events: messages per SQS batch
// and events per message for the record path, rows per transaction for
// COPY (the same number of events per commit).
type benchShape struct {
	name     string
	messages int // per SQS batch
	perMsg   int // events per message
	events   int // in the measurement
}

func (s benchShape) batch() int { return s.messages * s.perMsg }

var (
	// One event per message, 100 messages per batch: the test harness's
	// shape, and the figures of the earlier runs.
	shapeSmall = benchShape{name: "", messages: 100, perMsg: 1, events: 100_000}
	// Production: the publisher packs up to 100 events per message and the
	// SQS mapping delivers up to 100 messages, so a batch writes 10,000
	// events in one statement.
	shapeProduction = benchShape{name: "_10k", messages: 100, perMsg: 100, events: 200_000}
)

const benchNaiveEvents = 20_000 // the naive path is ~20x slower; its rate does not depend on the count

func benchData(n int, now time.Time) []usage.Event {
	rng := rand.New(rand.NewPCG(7, 7))
	users := make([]string, 200)
	for i := range users {
		users[i] = uuid.NewString()
	}
	out := make([]usage.Event, n)
	for i := range out {
		id, _ := uuid.NewV7() // producers' ids are time-ordered
		out[i] = usage.Event{Version: 1, EventID: id.String(), UserID: users[rng.IntN(len(users))],
			Endpoint: "GET /v1/games/{id}", Method: "GET", StatusCode: []int{200, 200, 200, 404, 500}[rng.IntN(5)],
			LatencyMS: int64(rng.IntN(300)), RequestBytes: int64(rng.IntN(2000)), ResponseBytes: int64(rng.IntN(20000)),
			Quantity: 1, OccurredAt: now.Add(-time.Duration(rng.Int64N(int64(time.Hour))))}
	}
	return out
}

var rawColumns = []string{"event_id", "user_id", "api_key_id", "endpoint", "method", "status_code", "latency_ms",
	"request_bytes", "response_bytes", "quantity", "occurred_at", "received_at"}

// copyBatch writes chunk with COPY in one transaction: the raw rows, and
// with keyed their ids into the event key store's generation too (the
// unique index dedupe needs, without the dedupe). The ids are parsed
// first, so that pgx writes them in binary straight away (given as text,
// each one went through a failed binary encoding first, which cost the
// baseline as much as the COPY).
func copyBatch(ctx context.Context, db *postgres.DB, chunk []usage.Event, now time.Time, keyed bool) error {
	ids, users := make([][16]byte, len(chunk)), make([][16]byte, len(chunk))
	for j, e := range chunk {
		ids[j], users[j] = uuid.MustParse(e.EventID), uuid.MustParse(e.UserID)
	}
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if keyed {
			gen := int32(usage.KeyGeneration(now))
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"eco_event_keys"}, []string{"gen", "event_id"},
				pgx.CopyFromSlice(len(chunk), func(j int) ([]any, error) { return []any{gen, ids[j]}, nil })); err != nil {
				return err
			}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"eco_api_usage"}, rawColumns,
			pgx.CopyFromSlice(len(chunk), func(j int) ([]any, error) {
				e := chunk[j]
				return []any{ids[j], users[j], nil, e.Endpoint, e.Method, int16(e.StatusCode), int32(e.LatencyMS),
					e.RequestBytes, e.ResponseBytes, int32(e.Quantity), e.OccurredAt, now}, nil
			}))
		return err
	})
}

// benchCopy measures COPY of shape's events, one transaction per batch.
func benchCopy(b *testing.B, shape benchShape, keyed bool) float64 {
	db := pgtest.NewDB(b)
	ctx := context.Background()
	now := time.Now().UTC()
	var rate float64
	for range b.N {
		b.StopTimer()
		data := benchData(shape.events, now)
		b.StartTimer()
		start := time.Now()
		for i := 0; i < len(data); i += shape.batch() {
			if err := copyBatch(ctx, db, data[i:min(i+shape.batch(), len(data))], now, keyed); err != nil {
				b.Fatal(err)
			}
		}
		rate = float64(len(data)) / time.Since(start).Seconds()
	}
	b.ReportMetric(rate, "events/s")
	return rate
}

// sqsBatches packs data into shape's SQS batches, as the publisher and the
// event source mapping do: the messages of each batch.
func sqsBatches(data []usage.Event, shape benchShape) [][]record.Message {
	var batches [][]record.Message
	for i := 0; i < len(data); i += shape.batch() {
		var msgs []record.Message
		chunk := data[i:min(i+shape.batch(), len(data))]
		for j := 0; j < len(chunk); j += shape.perMsg {
			body, _ := json.Marshal(chunk[j:min(j+shape.perMsg, len(chunk))])
			msgs = append(msgs, record.Message{ID: fmt.Sprintf("%d-%d", i, j), Body: body})
		}
		batches = append(batches, msgs)
	}
	return batches
}

// benchRecord measures the Recorder over shape's SQS batches.
func benchRecord(b *testing.B, shape benchShape) float64 {
	db := pgtest.NewDB(b)
	r := newRecorder(b, postgres.NewEventStore(db), time.Now)
	ctx := context.Background()
	now := time.Now().UTC()
	var rate float64
	for range b.N {
		b.StopTimer()
		data := benchData(shape.events, now)
		batches := sqsBatches(data, shape)
		b.StartTimer()
		start := time.Now()
		for _, msgs := range batches {
			if _, err := r.Record(ctx, msgs); err != nil {
				b.Fatalf("Record() = %v", err)
			}
		}
		rate = float64(len(data)) / time.Since(start).Seconds()
		b.StopTimer()
		var rows int64
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_api_usage`).Scan(&rows); err != nil || rows != int64(len(data)) {
			b.Fatalf("%d rows recorded of %d: %v", rows, len(data), err)
		}
		b.StartTimer()
	}
	b.ReportMetric(rate, "events/s")
	return rate
}

// BenchmarkRecordPath measures events/s of the record path (decoding,
// validation and the write of SQS batches' messages by the Recorder over
// postgres.EventStore, one connection)
// against baselines on the same tables in the same run, each measurement
// on a fresh database, in two shapes: 100 messages of one event per batch,
// and the production shape, 100 messages of 100 events (10,000 events per
// statement).
//
// The baselines write the same rows with COPY, one transaction per batch
// of the same size, without dedupe or counters: copy writes the raw rows
// alone (the raw table has no unique index: the key store dedupes), and
// copy_keyed writes them and their ids into the event key store, the
// unique index dedupe needs (the raw table's own primary key played that
// part before the key store). The naive design is one transaction per
// event: key insert, raw insert, counter upsert.
func BenchmarkRecordPath(b *testing.B) {
	for _, shape := range []benchShape{shapeSmall, shapeProduction} {
		var copyRate, keyedRate, naiveRate float64
		b.Run("copy"+shape.name, func(b *testing.B) { copyRate = benchCopy(b, shape, false) })
		b.Run("copy_keyed"+shape.name, func(b *testing.B) { keyedRate = benchCopy(b, shape, true) })
		if shape.perMsg == 1 {
			b.Run("naive", func(b *testing.B) { naiveRate = benchNaive(b) })
		}
		b.Run("record"+shape.name, func(b *testing.B) {
			rate := benchRecord(b, shape)
			if copyRate > 0 {
				b.ReportMetric(rate/copyRate, "x_copy")
			}
			if keyedRate > 0 {
				b.ReportMetric(rate/keyedRate, "x_copy_keyed")
			}
			if naiveRate > 0 {
				b.ReportMetric(rate/naiveRate, "x_naive")
			}
		})
	}
}

// benchNaive measures one transaction per event.
func benchNaive(b *testing.B) float64 {
	db := pgtest.NewDB(b)
	ctx := context.Background()
	now := time.Now().UTC()
	gen := usage.KeyGeneration(now)
	var rate float64
	for range b.N {
		b.StopTimer()
		data := benchData(benchNaiveEvents, now)
		b.StartTimer()
		start := time.Now()
		for _, e := range data {
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, `INSERT INTO eco_event_keys (gen, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, gen, e.EventID)
				if err != nil || tag.RowsAffected() == 0 {
					return err
				}
				if _, err := tx.Exec(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code,
					latency_ms, request_bytes, response_bytes, quantity, occurred_at)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
					e.EventID, e.UserID, e.Endpoint, e.Method, e.StatusCode, e.LatencyMS, e.RequestBytes, e.ResponseBytes, e.Quantity, e.OccurredAt); err != nil {
					return err
				}
				_, err = tx.Exec(ctx, `INSERT INTO eco_usage_counter_slots AS k (user_id, day, calls) VALUES ($1, $2, $3)
					ON CONFLICT (user_id, day, slot) DO UPDATE SET calls = k.calls + excluded.calls`,
					e.UserID, e.OccurredAt.Format(time.DateOnly), e.Quantity)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		rate = float64(len(data)) / time.Since(start).Seconds()
	}
	b.ReportMetric(rate, "events/s")
	return rate
}

// concurrentEvents is how many events each writer of
// BenchmarkRecordConcurrent writes: 20 batches of the production shape,
// after one batch that warms its connection up (not timed).
const concurrentEvents = 200_000

// BenchmarkRecordConcurrent measures n = 1, 2 and 4 record functions at
// once, each recording its own SQS batches of the production shape (100
// messages of 100 events) through its own Recorder, against n concurrent
// copy_keyed writers (COPY of the same rows and keys, one transaction per
// 10,000 events), in the same run, each measurement on a fresh database,
// each writer first warmed up with one batch; events/s counts every
// writer's events over the wall time.
//
// While the writers run, the server's backends are sampled every 5 ms
// (pg_stat_activity with their ungranted pg_locks): lock_waits counts the
// samples of a backend waiting on a lock of any kind, marks_counters_waits
// those waiting in the statement that moves the live counters and the
// dirty marks, on one of their tables, or for a row in the statement that
// dedupes (the writers' ids are disjoint, so such a row is a counter's or
// a mark's), and the log shows every wait event seen.
func BenchmarkRecordConcurrent(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		var keyed float64
		b.Run(fmt.Sprintf("copy_keyed_%d", n), func(b *testing.B) {
			keyed = benchConcurrent(b, n, func(ctx context.Context, db *postgres.DB, data []usage.Event, now time.Time) func() error {
				return func() error {
					for i := 0; i < len(data); i += shapeProduction.batch() {
						if err := copyBatch(ctx, db, data[i:min(i+shapeProduction.batch(), len(data))], now, true); err != nil {
							return err
						}
					}
					return nil
				}
			})
		})
		b.Run(fmt.Sprintf("record_%d", n), func(b *testing.B) {
			rate := benchConcurrent(b, n, func(ctx context.Context, db *postgres.DB, data []usage.Event, now time.Time) func() error {
				r := newRecorder(b, postgres.NewEventStore(db), time.Now)
				batches := sqsBatches(data, shapeProduction)
				return func() error {
					for _, msgs := range batches {
						if _, err := r.Record(ctx, msgs); err != nil {
							return fmt.Errorf("Record() = %v", err)
						}
					}
					return nil
				}
			})
			if keyed > 0 {
				b.ReportMetric(rate/keyed, "x_copy_keyed")
			}
		})
	}
}

// benchConcurrent runs n writers at once, each over its own
// concurrentEvents, on a fresh database, and returns their events/s.
// writer prepares a writer over its data (outside the timing) and returns
// the function that writes it.
func benchConcurrent(b *testing.B, n int, writer func(ctx context.Context, db *postgres.DB, data []usage.Event, now time.Time) func() error) float64 {
	db := pgtest.NewDB(b)
	ctx := context.Background()
	now := time.Now().UTC()
	var rate float64
	for range b.N {
		b.StopTimer()
		warm, writers := make([]func() error, n), make([]func() error, n)
		for i := range writers {
			warm[i] = writer(ctx, db, benchData(shapeProduction.batch(), now), now)
			writers[i] = writer(ctx, db, benchData(concurrentEvents, now), now)
		}
		if err := runAll(warm); err != nil {
			b.Fatal(err)
		}
		w := startWaitSampler(ctx, b, db)
		b.StartTimer()
		start := time.Now()
		if err := runAll(writers); err != nil {
			b.Fatal(err)
		}
		rate = float64(n*concurrentEvents) / time.Since(start).Seconds()
		b.StopTimer()
		w.report(b)
		var rows int64
		want := int64(n * (concurrentEvents + shapeProduction.batch()))
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_api_usage`).Scan(&rows); err != nil || rows != want {
			b.Fatalf("%d rows written of %d: %v", rows, want, err)
		}
		if _, err := db.Pool.Exec(ctx, `TRUNCATE eco_api_usage, eco_event_keys`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(rate, "events/s")
	return rate
}

// runAll runs the functions at once and returns the first error.
func runAll(fns []func() error) error {
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- fn() }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// waitSampler samples the backends of a database every 5 ms until
// reported.
type waitSampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples int
	waits   map[string]int // "wait_event_type:wait_event on what, in which statement" → samples
	lock    int            // samples of a backend waiting on a lock
	marks   int            // … in the counters and dirty marks statement, or on their tables
}

// markTables are the tables of the live counters and the dirty marks.
var markTables = map[string]bool{"eco_usage_counter_slots": true, "eco_usage_counters": true, "eco_usage_dirty_user_days": true,
	"eco_usage_dirty_days": true, "eco_record_slots": true}

func startWaitSampler(ctx context.Context, b *testing.B, db *postgres.DB) *waitSampler {
	w := &waitSampler{stop: make(chan struct{}), done: make(chan struct{}), waits: map[string]int{}}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(w.done)
		defer conn.Release()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			// A backend waiting for a row another transaction holds
			// holds the row's tuple lock while it waits on that
			// transaction's id: the tuple lock names the table.
			rows, err := conn.Query(ctx, `SELECT coalesce(a.wait_event_type, ''), coalesce(a.wait_event, ''),
				coalesce(l.relation::regclass::text, l.locktype, '') || coalesce(' (a row of ' || (SELECT min(t.relation::regclass::text)
					FROM pg_locks t WHERE t.pid = a.pid AND t.locktype = 'tuple') || ')', ''),
				coalesce((SELECT min(t.relation::regclass::text) FROM pg_locks t WHERE t.pid = a.pid AND t.locktype = 'tuple'), ''), a.query
				FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
				WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.state = 'active'`)
			if err != nil {
				continue
			}
			var typ, event, on, row, query string
			_, err = pgx.ForEachRow(rows, []any{&typ, &event, &on, &row, &query}, func() error {
				if typ != "Lock" {
					return nil
				}
				q := strings.ToLower(strings.TrimSpace(query))
				what := "another statement"
				switch {
				case strings.HasPrefix(q, "with k1"):
					what = "statement that dedupes"
				case strings.Contains(q, "record_usage_counts"):
					what = "counters and marks statement"
				case strings.HasPrefix(q, "copy") && strings.Contains(q, "eco_event_keys"):
					what = "COPY of the keys"
				case strings.HasPrefix(q, "copy"):
					what = "COPY of the raw rows"
				}
				w.lock++
				// The writers' ids are disjoint: a row the statement that
				// dedupes waits for is a live counter's or a dirty mark's.
				rowWait := event == "transactionid" || event == "tuple"
				if what == "counters and marks statement" || markTables[on] || markTables[row] ||
					(what == "statement that dedupes" && rowWait) {
					w.marks++
				}
				w.waits[fmt.Sprintf("%s:%s on %s, %s", typ, event, on, what)]++
				return nil
			})
			if err == nil {
				w.samples++
			}
		}
	}()
	return w
}

// report stops the sampling and reports what it saw.
func (w *waitSampler) report(b *testing.B) {
	close(w.stop)
	<-w.done
	b.ReportMetric(float64(w.samples), "samples")
	b.ReportMetric(float64(w.lock), "lock_waits")
	b.ReportMetric(float64(w.marks), "marks_counters_waits")
	b.Logf("%d samples; lock waits: %v", w.samples, w.waits)
}
