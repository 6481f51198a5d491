package postgres

import (
	"context"
	"errors"
	"fmt"
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

// recordBatchSQL writes a batch in one statement. The insert skips events
// already stored (and duplicates inside the batch); only the rows it
// RETURNS feed increment_api_calls, so a redelivered batch moves no
// counter. calls and errors add up the events' quantity, as the daily rollup
// does, so that live counters and rollups agree.
const recordBatchSQL = `
WITH ins AS (
    INSERT INTO eco_api_usage (event_id, user_id, api_key_id, endpoint, method, status_code, latency_ms,
        request_bytes, response_bytes, quantity, occurred_at, received_at)
    SELECT e.*, $12::timestamptz
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::smallint[], $7::integer[],
        $8::bigint[], $9::bigint[], $10::integer[], $11::timestamptz[]) AS e
    ON CONFLICT DO NOTHING
    RETURNING user_id, occurred_at, status_code, request_bytes, response_bytes, quantity
), rej AS (
    INSERT INTO eco_rejected_events (source, message_id, event_id, field, reason, body, rejected_at)
    SELECT r.*, $12::timestamptz
    FROM unnest($13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[]) AS r
), d AS (
    SELECT count(*) AS n,
        array_agg(user_id) AS u,
        array_agg((occurred_at AT TIME ZONE 'UTC')::date) AS dy,
        array_agg(quantity::bigint) AS c,
        array_agg(CASE WHEN status_code BETWEEN 400 AND 499 THEN quantity ELSE 0 END::bigint) AS e4,
        array_agg(CASE WHEN status_code >= 500 THEN quantity ELSE 0 END::bigint) AS e5,
        array_agg(request_bytes) AS rq,
        array_agg(response_bytes) AS rs
    FROM ins
)
SELECT d.n, increment_api_calls(d.u, d.dy, d.c, d.e4, d.e5, d.rq, d.rs) FROM d`

// RecordBatch implements usage.EventStore: one transaction, one statement.
// The events must be valid (usage.Event.Validate). When an event's month has
// no partition yet, the partitions are created and the batch is retried
// once.
func (s *EventStore) RecordBatch(ctx context.Context, events []usage.Event, rejected []usage.Rejection) (int64, error) {
	if len(events) == 0 && len(rejected) == 0 {
		return 0, nil
	}
	args := batchArgs(events, rejected, s.db.now())
	n, err := s.write(ctx, args)
	if isNoPartition(err) {
		from, months := monthSpan(events)
		if _, perr := s.db.ensurePartitions(ctx, from, months); perr != nil {
			return 0, perr
		}
		n, err = s.write(ctx, args)
	}
	if err != nil {
		return 0, FormatError(fmt.Errorf("record batch of %d events and %d rejections: %w", len(events), len(rejected), err))
	}
	return n, nil
}

// write runs the statement: one statement is one transaction by itself,
// so the batch is one round trip.
func (s *EventStore) write(ctx context.Context, args []any) (int64, error) {
	var n, calls int64
	if err := s.db.Pool.QueryRow(ctx, recordBatchSQL, args...).Scan(&n, &calls); err != nil {
		return 0, err
	}
	return n, nil
}

// batchArgs builds the statement's parallel arrays. Events are sorted by
// id so that concurrent batches holding the same events take the unique
// index's locks in the same order and cannot deadlock.
func batchArgs(events []usage.Event, rejected []usage.Rejection, now time.Time) []any {
	sorted := make([]*usage.Event, len(events))
	for i := range events {
		sorted[i] = &events[i]
	}
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].EventID != sorted[j].EventID {
			return sorted[i].EventID < sorted[j].EventID
		}
		return sorted[i].OccurredAt.Before(sorted[j].OccurredAt)
	})
	n := len(events)
	var (
		ids, users, endpoints, methods = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		keys                           = make([]*string, n)
		statuses                       = make([]int16, n)
		latencies, quantities          = make([]int32, n), make([]int32, n)
		reqBytes, respBytes            = make([]int64, n), make([]int64, n)
		times                          = make([]time.Time, n)
	)
	for i, e := range sorted {
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
	for i, r := range rejected {
		sources[i] = r.Source
		if sources[i] == "" {
			sources[i] = usage.RejectionSourceRecord
		}
		msgIDs[i], evIDs[i], fields[i] = usage.SafeText(r.MessageID), usage.SafeText(r.EventID), usage.SafeText(r.Field)
		reasons[i], bodies[i] = usage.SafeText(r.Reason), usage.SafeText(r.Body)
	}
	return []any{ids, users, keys, endpoints, methods, statuses, latencies, reqBytes, respBytes, quantities, times,
		now, sources, msgIDs, evIDs, fields, reasons, bodies}
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
