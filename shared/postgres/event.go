package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/usage"
)

// EventStore records usage events: the raw log, the live counters, the
// dirty days and the quarantine.
type EventStore struct{ db *DB }

// NewEventStore returns a store over db.
func NewEventStore(db *DB) *EventStore { return &EventStore{db: db} }

var _ usage.EventStore = (*EventStore)(nil)

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
// generation, so that concurrent batches holding the same ids take the
// unique index's locks in the same order and cannot deadlock. Rejections
// already stored (same source, message and position) are skipped.
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
), rej AS (
    INSERT INTO eco_rejected_events (source, message_id, position, event_id, field, reason, body, rejected_at)
    SELECT r.*, $12::timestamptz
    FROM unnest($13::text[], $14::text[], $15::integer[], $16::text[], $17::text[], $18::text[], $22::text[]) AS r
    ON CONFLICT (source, message_id, position) WHERE position IS NOT NULL DO NOTHING
), d AS (
    SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n,
        sum(quantity)::bigint AS c,
        coalesce(sum(quantity) FILTER (WHERE status_code BETWEEN 400 AND 499), 0)::bigint AS e4,
        coalesce(sum(quantity) FILTER (WHERE status_code >= 500), 0)::bigint AS e5,
        least(sum(request_bytes), 9223372036854775807)::bigint AS rq,
        least(sum(response_bytes), 9223372036854775807)::bigint AS rs
    FROM ins
    GROUP BY 1, 2
)
SELECT coalesce(sum(n), 0)::bigint,
    increment_api_calls(array_agg(user_id), array_agg(day), array_agg(c), array_agg(e4), array_agg(e5),
        array_agg(rq), array_agg(rs))
FROM d`

// RecordBatch implements usage.EventStore: one transaction, one statement.
// The events must be valid (usage.Event.Validate). When an event's month
// or the key store's generation has no partition yet, the partitions are
// created and the batch is retried once; a month that retention dropped is
// not created again, and its events are refused (CodeInvalid, naming
// occurred_at). Errors are translated by recordError.
func (s *EventStore) RecordBatch(ctx context.Context, events []usage.Event, rejected []usage.Rejection) (int64, error) {
	if len(events) == 0 && len(rejected) == 0 {
		return 0, nil
	}
	now := s.db.now()
	write, older := usage.KeyGenerations(now)
	args, err := batchArgs(events, rejected, now, write, older)
	if err != nil {
		return 0, err
	}
	n, err := s.write(ctx, args)
	if isNoPartition(err) {
		if perr := s.ensurePartitions(ctx, events, write); perr != nil {
			return 0, perr
		}
		n, err = s.write(ctx, args)
	}
	if err != nil {
		return 0, recordError(fmt.Errorf("record batch of %d events and %d rejections: %w", len(events), len(rejected), err))
	}
	return n, nil
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

// write runs the statement: one statement is one transaction by itself,
// so the batch is one round trip.
func (s *EventStore) write(ctx context.Context, args []any) (int64, error) {
	var n, calls int64
	if err := s.db.with(recordingWork).QueryRow(ctx, recordBatchSQL, args...).Scan(&n, &calls); err != nil {
		return 0, err
	}
	return n, nil
}

// batchArgs builds the statement's parameters. An event id repeated in
// the batch is kept once, its first occurrence (the statement cannot tell
// which of two rows with the same key came first). Events are sorted by
// id, the order of the key insert. write is one generation of the key
// store or two (usage.KeyGenerations).
func batchArgs(events []usage.Event, rejected []usage.Rejection, now time.Time, write []int, older int) ([]any, error) {
	sorted := make([]*usage.Event, len(events))
	for i := range events {
		sorted[i] = &events[i]
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].EventID < sorted[j].EventID })
	sorted = slices.CompactFunc(sorted, func(a, b *usage.Event) bool { return a.EventID == b.EventID })
	n := len(sorted)
	var (
		ids, users, endpoints, methods = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		keys                           = make([]*string, n)
		statuses                       = make([]int16, n)
		latencies, quantities          = make([]int32, n), make([]int32, n)
		reqBytes, respBytes            = make([]int64, n), make([]int64, n)
		times                          = make([]time.Time, n)
	)
	for i, e := range sorted {
		if err := fitsColumns(e); err != nil {
			return nil, err
		}
		ids[i], users[i], endpoints[i], methods[i] = e.EventID, e.UserID, e.Endpoint, e.Method
		if e.APIKeyID != "" {
			keys[i] = &e.APIKeyID
		}
		statuses[i] = int16(e.StatusCode)
		latencies[i], quantities[i] = int32(e.LatencyMS), int32(e.Quantity)
		reqBytes[i], respBytes[i] = e.RequestBytes, e.ResponseBytes
		times[i] = e.OccurredAt
	}
	m := len(rejected)
	sources, msgIDs, evIDs, fields, reasons, bodies := make([]string, m), make([]string, m), make([]string, m), make([]string, m), make([]string, m), make([]string, m)
	positions := make([]*int32, m)
	for i, r := range rejected {
		sources[i] = r.Source
		if sources[i] == "" {
			sources[i] = usage.RejectionSourceRecord
		}
		msgIDs[i], evIDs[i], fields[i] = usage.SafeText(r.MessageID), usage.SafeText(r.EventID), usage.SafeText(r.Field)
		reasons[i], bodies[i] = usage.SafeText(r.Reason), usage.SafeText(r.Body)
		if r.MessageID != "" {
			p := int32(r.Position)
			positions[i] = &p
		}
	}
	var next *int32
	if len(write) > 1 {
		g := int32(write[1])
		next = &g
	}
	return []any{ids, users, keys, endpoints, methods, statuses, latencies, reqBytes, respBytes, quantities, times,
		now, sources, msgIDs, positions, evIDs, fields, reasons, int32(write[0]), int32(older), next, bodies}, nil
}

// fitsColumns refuses, as the database would, a value wider than its
// column (status_code smallint, latency_ms and quantity integer) instead
// of letting the conversion wrap it: CodeInvalid naming the field. Valid
// events always fit.
func fitsColumns(e *usage.Event) error {
	const what = "is out of the range the database stores"
	switch {
	case e.StatusCode < math.MinInt16 || e.StatusCode > math.MaxInt16:
		return usage.FieldErrorf("status_code", what)
	case e.LatencyMS < math.MinInt32 || e.LatencyMS > math.MaxInt32:
		return usage.FieldErrorf("latency_ms", what)
	case e.Quantity < math.MinInt32 || e.Quantity > math.MaxInt32:
		return usage.FieldErrorf("quantity", what)
	}
	return nil
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
