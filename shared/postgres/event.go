package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// EventStore records usage events: the event keys, the raw log, the live
// counters, the users' dirty days and the quarantine, and in the same
// transaction the notification thresholds the batch's users crossed (the
// outbox) and the days whose periods were not armed (record_usage_counts),
// at the time its caller gives (RecordBatch).
type EventStore struct {
	db    *DB
	after func(ctx context.Context, fired []string, pending int)
}

// NewEventStore returns a store over db.
func NewEventStore(db *DB) *EventStore { return &EventStore{db: db} }

// AfterCommit makes s call f after each committed batch that raised
// notification events (their ids) or left days of users pending arming
// (notify.Recorded.After), and returns s. Both are committed with the
// counters: f only speeds their delivery up.
func (s *EventStore) AfterCommit(f func(ctx context.Context, fired []string, pending int)) *EventStore {
	s.after = f
	return s
}

// written is what a batch's transaction did: the events it inserted, the
// notification events it raised and the days it left pending arming.
type written struct {
	n       int64
	fired   []string
	pending int
}

var _ record.EventStore = (*EventStore)(nil)

// The record path writes a batch in one transaction, by one of two ways.
//
// The first, for a batch of new events (every batch but a redelivery's),
// costs what COPY costs: the ids are looked up in the key store's older
// generation (usually one index probe: time-ordered ids are newer than any
// it holds), then COPY writes the ids into the generations of now (the
// unique index refuses an id stored already, or being stored by a batch
// in flight, which waits for it), COPY writes the raw rows, and one
// statement adds the batch's sums per user and day to the live counters
// and marks those users' days dirty (increment_api_calls), and quarantines
// the rejections. Every event of the batch was inserted, or the
// transaction failed: the counters move by the rows inserted.
//
// When an id is stored already (the older generation holds it, or the
// unique index refused it), the transaction is rolled back and the batch
// is written by the second way, recordBatchSQL, which skips the ids stored
// before and counts only the rows its insert returns. (PostgreSQL logs the
// unique index's refusal as an error: one line per redelivered batch.)

// recordBatchSQL writes a batch in one statement. The key insert stores
// the batch's ids in the key store's generation of now ($19) unless the
// previous generation ($20) holds them, and returns those it stored; near
// a generation boundary (see usage.KeyGenerations) it stores those again
// in the next generation ($21, else NULL), and an id is new only if both
// inserts returned it. Only the new events are inserted into the raw
// table, and only the rows that insert RETURNS, summed per user and day,
// feed increment_api_calls, so a redelivered batch, or an id re-sent with
// another occurred_at, moves no counter. calls and errors add up the
// events' quantity, as the daily rollup does, so that live counters and
// rollups agree; bytes saturate at the bigint maximum.
//
// The ids arrive sorted and are inserted in that order, generation by
// generation (as the COPY of the first way writes them), so that
// concurrent batches holding the same ids take the unique index's locks
// in the same order and cannot deadlock. Rejections already stored (same
// source, message and position) are skipped.
const recordBatchSQL = `
WITH k1 AS (
    INSERT INTO eco_event_keys (gen, event_id)
    SELECT $19::integer, id FROM unnest($1::uuid[]) AS id
    WHERE NOT EXISTS (SELECT 1 FROM eco_event_keys o WHERE o.gen = $20::integer AND o.event_id = id)
    ON CONFLICT DO NOTHING
    RETURNING event_id
), k2 AS (
    INSERT INTO eco_event_keys (gen, event_id)
    SELECT $21::integer, event_id FROM k1 WHERE $21::integer IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING event_id
), fresh AS (
    SELECT event_id FROM k2
    UNION ALL
    SELECT event_id FROM k1 WHERE $21::integer IS NULL
), ins AS (
    INSERT INTO eco_api_usage (event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms,
        request_bytes, response_bytes, quantity, occurred_at, received_at)
    SELECT e.*, $12::timestamptz
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::smallint[], $7::integer[],
        $8::bigint[], $9::bigint[], $10::integer[], $11::timestamptz[])
        AS e(event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms, request_bytes,
            response_bytes, quantity, occurred_at)
    WHERE e.event_id IN (SELECT event_id FROM fresh)
    RETURNING user_id, occurred_at, status_code, request_bytes, response_bytes, quantity
), rej AS (` + rejectSQL + `), d AS (
    SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n,
        sum(quantity)::bigint AS c,
        coalesce(sum(quantity) FILTER (WHERE status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
        coalesce(sum(quantity) FILTER (WHERE status_code >= 500), 0)::bigint AS e5,
        least(sum(request_bytes), 9223372036854775807)::bigint AS rq,
        least(sum(response_bytes), 9223372036854775807)::bigint AS rs
    FROM ins
    GROUP BY 1, 2
)
SELECT n, (x).fired, (x).pending
FROM (SELECT coalesce(sum(n), 0)::bigint AS n,
        record_usage_counts(array_agg(user_id), array_agg(day), array_agg(c), array_agg(e4), array_agg(e5),
            array_agg(rq), array_agg(rs), $12::timestamptz) AS x
      FROM d
      OFFSET 0) r`

// rejectSQL quarantines the rejections ($13 to $18 and $22, rejected at
// $12), each once.
const rejectSQL = `
    INSERT INTO eco_rejected_events (source, message_id, position, event_id, field, reason, body, rejected_at)
    SELECT r.*, $12::timestamptz
    FROM unnest($13::text[], $14::text[], $15::integer[], $16::text[], $17::text[], $18::text[], $22::text[]) AS r
    ON CONFLICT (source, message_id, position) WHERE position IS NOT NULL DO NOTHING
`

// newerKeySQL reports whether the key store's older generation ($1)
// holds an id at least as great as the batch's smallest ($2). Time-ordered
// ids (UUIDv7, what shared/sqspub's producers use) are newer than every id
// of the older generation, and this one index probe tells that none of
// the batch's is there; only otherwise are its ids looked up one by one
// (olderKeysSQL).
const newerKeySQL = `SELECT EXISTS (SELECT 1 FROM eco_event_keys WHERE gen = $1::integer AND event_id >= $2::uuid)`

// olderKeysSQL returns the ids of the batch ($2) that the key store's
// older generation ($1) holds.
const olderKeysSQL = `SELECT k.event_id FROM unnest($2::uuid[]) AS id
JOIN eco_event_keys k ON k.gen = $1::integer AND k.event_id = id`

// countSQL is the first way's last statement: record_usage_counts of the
// batch's sums per user and day ($1 to $7, at $8), and the quarantine as in
// recordBatchSQL ($9 to $15, rejected at $8).
const countSQL = `WITH rej AS (
    INSERT INTO eco_rejected_events (source, message_id, position, event_id, field, reason, body, rejected_at)
    SELECT r.*, $8::timestamptz
    FROM unnest($9::text[], $10::text[], $11::integer[], $12::text[], $13::text[], $14::text[], $15::text[]) AS r
    ON CONFLICT (source, message_id, position) WHERE position IS NOT NULL DO NOTHING
)
SELECT fired, pending
FROM record_usage_counts($1::uuid[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::timestamptz)`

// RecordBatch implements record.EventStore: one transaction at the
// caller's now (DB.Now is not read), which is the raw rows' received_at,
// the rejections' rejected_at, the key store's generations, and the time
// the notification thresholds are crossed and pending days marked at
// (record_usage_counts). The events must be valid (usage.Event.Validate).
// When an event's month or the key store's generation has no partition
// yet, the partitions are created and the batch is retried once; a month
// that retention dropped is not created again, and its events are refused
// (CodeInvalid, naming occurred_at). Errors are translated by recordError.
//
// Two stamps stay on the server's clock, now() (the transaction's start)
// in increment_api_calls. A user's dirty mark's marked_at must be: the
// rollup clears a mark only while its marked_at is still the one it read
// (clearDirtySQL), so each transaction that marks a day again must leave
// a stamp no earlier one left, and only the server's clock, one for every
// writer and read at each transaction's start, gives that; a caller's
// clock (a test's fixed one, two instances' skewed ones) could stamp two
// marks alike and let the rollup clear a mark whose events it never read.
// The live counters' updated_at (a summary's last_updated) has no such
// need; it is written beside the marks, in a function of the schema,
// and stays with them.
func (s *EventStore) RecordBatch(ctx context.Context, now time.Time, events []usage.Event, rejected []record.Rejection) (int64, error) {
	if len(events) == 0 && len(rejected) == 0 {
		return 0, nil
	}
	now = micros(now.UTC())
	write, older := usage.KeyGenerations(now)
	b, err := newBatch(events, rejected, now, write, older)
	if err != nil {
		return 0, err
	}
	w, err := s.write(ctx, b)
	if isNoPartition(err) {
		if perr := s.ensurePartitions(ctx, events, write); perr != nil {
			return 0, perr
		}
		w, err = s.write(ctx, b)
	}
	if err != nil {
		return 0, recordError(fmt.Errorf("record batch of %d events and %d rejections: %w", len(events), len(rejected), err))
	}
	if s.after != nil && (len(w.fired) > 0 || w.pending > 0) {
		s.after(ctx, w.fired, w.pending)
	}
	return w.n, nil
}

// ensurePartitions creates the raw months of events and the key store's
// generations write, waiting for their tables' locks as long as it takes
// (the batch needs them).
func (s *EventStore) ensurePartitions(ctx context.Context, events []usage.Event, write []int) error {
	if len(events) == 0 {
		return nil
	}
	from, months := monthSpan(events)
	if _, err := s.db.ensurePartitions(ctx, from, months); err != nil {
		return err
	}
	if _, err := s.db.with(recordingWork).Exec(ctx, `SELECT ensure_event_key_generations($1)`, write); err != nil {
		return FormatError(fmt.Errorf("ensure event key generations %v: %w", write, err))
	}
	return nil
}

// write writes b by the first way and, when an id of it is stored
// already, by the second.
func (s *EventStore) write(ctx context.Context, b *batch) (written, error) {
	if len(b.events) > 0 {
		w, err := s.copyBatch(ctx, b)
		if !errors.Is(err, errStored) && !isKeyConflict(err) {
			return w, err
		}
	}
	var w written
	if err := s.db.with(recordingWork).QueryRow(ctx, recordBatchSQL, b.statementArgs()...).Scan(&w.n, &w.fired, &w.pending); err != nil {
		return written{}, err
	}
	return w, nil
}

// errStored is copyBatch's error when the key store's older generation
// holds an id of the batch.
var errStored = errors.New("an event id of the batch is stored already")

// isKeyConflict reports whether err is the key store's unique index
// refusing an id stored already.
func isKeyConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && strings.HasPrefix(pgErr.TableName, "eco_event_keys")
}

// copyBatch writes b's events by the first way (see above), in one
// transaction of four round trips: BEGIN and its statement timeout with the probe of the older
// generation, the two COPYs, and the statement that counts with COMMIT.
// It returns errStored, or the unique index's refusal, when an id of b is
// stored already.
func (s *EventStore) copyBatch(ctx context.Context, b *batch) (written, error) {
	c, err := s.db.Pool.Acquire(ctx)
	if err != nil {
		return written{}, err
	}
	defer c.Release()
	w := written{n: int64(len(b.events))}
	if err := copyTx(ctx, c.Conn(), b, s.db.with(recordingWork).setLocal(), &w); err != nil {
		if c.Conn().PgConn().TxStatus() != 'I' {
			// Roll the transaction back; a connection that cannot is
			// closed when released.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = c.Exec(rctx, "ROLLBACK")
			cancel()
		}
		return written{}, err
	}
	return w, nil
}

// copyTx is copyBatch's transaction on conn; timeout bounds its statements
// (the recording workload's SET LOCAL). The last statement's notification
// events and pending days go to w.
func copyTx(ctx context.Context, conn *pgx.Conn, b *batch, timeout string, w *written) error {
	var newer bool
	var begin pgx.Batch
	begin.Queue("BEGIN")
	begin.Queue(timeout)
	begin.Queue(newerKeySQL, int32(b.older), b.ids[0]).QueryRow(func(row pgx.Row) error { return row.Scan(&newer) })
	if err := conn.SendBatch(ctx, &begin).Close(); err != nil {
		return err
	}
	if newer {
		rows, err := conn.Query(ctx, olderKeysSQL, int32(b.older), b.ids)
		if err != nil {
			return err
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if rows.CommandTag().RowsAffected() > 0 {
			return errStored
		}
	}
	if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(b.keyData()), `COPY eco_event_keys (gen, event_id) FROM STDIN WITH (FORMAT binary)`); err != nil {
		return err
	}
	if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(b.rawData()), `COPY eco_api_usage (event_id, user_id, api_key_id, endpoint,
		method, status_code, latency_ms, request_bytes, response_bytes, quantity, occurred_at, received_at) FROM STDIN WITH (FORMAT binary)`); err != nil {
		return err
	}
	var end pgx.Batch
	end.Queue(countSQL, b.countArgs()...).QueryRow(func(row pgx.Row) error { return row.Scan(&w.fired, &w.pending) })
	end.Queue("COMMIT")
	return conn.SendBatch(ctx, &end).Close()
}

// isNoPartition reports whether err is PostgreSQL's "no partition of
// relation found for row".
func isNoPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && strings.Contains(pgErr.Message, "no partition")
}

// monthSpan returns the first instant of the events and how many calendar
// months (UTC) they span.
func monthSpan(events []usage.Event) (time.Time, int) {
	if len(events) == 0 {
		return time.Time{}, 1
	}
	lo, hi := events[0].OccurredAt, events[0].OccurredAt
	for _, e := range events[1:] {
		if e.OccurredAt.Before(lo) {
			lo = e.OccurredAt
		}
		if e.OccurredAt.After(hi) {
			hi = e.OccurredAt
		}
	}
	lo, hi = lo.UTC(), hi.UTC()
	months := (hi.Year()*12 + int(hi.Month())) - (lo.Year()*12 + int(lo.Month())) + 1
	return lo, months
}

// recordError translates an error of the record statement. The data's
// errors, SQLSTATE classes 22 (data exception), 23 (integrity constraint
// violation) and 54 (program limit exceeded), are CodeInvalid in our own
// words (refusal), and so is a raw month still missing after the retry,
// which only a month retention dropped can be. Everything else is
// FormatError's (a key generation missing after the retry is CodeInternal).
func recordError(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return FormatError(err)
	}
	if isNoPartition(err) {
		if pgErr.TableName != "eco_api_usage" {
			return err // a key generation the retry created is gone: not the data's
		}
		return &wrapped{usage.Error{Code: usage.CodeInvalid, Field: "occurred_at",
			Message: "occurred_at: the raw usage of that month is no longer kept (retention dropped it)"}, err}
	}
	switch pgErr.Code[:2] {
	case "22", "23", "54":
		return &wrapped{refusal(pgErr), err}
	}
	return FormatError(err)
}

// eventColumns are the columns of the raw table that are an event's
// fields, under the same names.
var eventColumns = map[string]bool{
	"event_id": true, "user_id": true, "api_key_id": true, "endpoint": true, "method": true, "status_code": true,
	"latency_ms": true, "request_bytes": true, "response_bytes": true, "quantity": true, "occurred_at": true,
}

// refusal says in our words which value of an event the database refused
// and why, naming the field when the error names its column (a NOT NULL or
// type error, a trigger's COLUMN) or a CHECK constraint named after it
// (<table>_<column>_check, the name PostgreSQL gives column constraints).
func refusal(pgErr *pgconn.PgError) usage.Error {
	field := ""
	if eventColumns[pgErr.ColumnName] {
		field = pgErr.ColumnName
	} else if c, ok := strings.CutSuffix(strings.TrimRight(pgErr.ConstraintName, "0123456789"), "_check"); ok {
		// The table is the partition for a partitioned table's rows: match
		// the column at the end of the name.
		for col := range eventColumns {
			if strings.HasSuffix(c, "_"+col) && len(col) > len(field) {
				field = col
			}
		}
	}
	var what string
	switch pgErr.Code {
	case "22001":
		what = "is longer than the database stores"
	case "22003":
		what = "is out of the range the database stores"
	case "22007", "22008":
		what = "is a time the database cannot store"
	case "22021", "22P05":
		what = "holds a character the database cannot store"
	case "22P02":
		what = "has a form the database does not accept"
	case "23502":
		what = "is required by the database"
	case "23503":
		what = fmt.Sprintf("refers to something the database does not hold (%s)", pgErr.ConstraintName)
	case "23505":
		what = fmt.Sprintf("is stored already (%s)", pgErr.ConstraintName)
	case "23514":
		what = fmt.Sprintf("breaks the database's rule %s", pgErr.ConstraintName)
	default:
		what = fmt.Sprintf("is refused by the database (SQLSTATE %s)", pgErr.Code)
		if pgErr.Code[:2] == "54" {
			what = fmt.Sprintf("is too large for the database (SQLSTATE %s)", pgErr.Code)
		}
	}
	if field == "" {
		return usage.Error{Code: usage.CodeInvalid, Message: "a value of the event " + what}
	}
	return usage.Error{Code: usage.CodeInvalid, Field: field, Message: field + ": " + what}
}
