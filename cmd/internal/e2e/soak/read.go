package soak

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// rows reads eco_api_usage.
func (r *runner) rows(ctx context.Context) ([]row, error) {
	return query(ctx, r, `SELECT event_id::text, user_id::text, coalesce(api_key_id::text, ''), endpoint, method, status_code,
		latency_ms, request_bytes, response_bytes, quantity, occurred_at FROM eco_api_usage`,
		func(rs pgx.Rows) (row, error) {
			var w row
			var status int16
			var latency, quantity int32
			err := rs.Scan(&w.id, &w.user, &w.key, &w.endpoint, &w.method, &status, &latency, &w.req, &w.resp, &quantity, &w.at)
			w.status, w.latency, w.quantity = int(status), int64(latency), int64(quantity)
			return w, err
		})
}

// rejections reads eco_rejected_events.
func (r *runner) rejections(ctx context.Context) ([]rejection, error) {
	return query(ctx, r, `SELECT message_id, event_id, field, reason, body, coalesce(position, -1) FROM eco_rejected_events`,
		func(rs pgx.Rows) (rejection, error) {
			var j rejection
			err := rs.Scan(&j.messageID, &j.eventID, &j.field, &j.reason, &j.body, &j.position)
			return j, err
		})
}

// counters reads eco_usage_counters by user and day.
func (r *runner) counters(ctx context.Context) (map[dayKey]dayTotals, error) {
	type counter struct {
		k dayKey
		t dayTotals
	}
	cs, err := query(ctx, r, `SELECT user_id::text, day::text, calls, errors_4xx, errors_5xx, request_bytes, response_bytes FROM eco_usage_counters`,
		func(rs pgx.Rows) (counter, error) {
			var c counter
			err := rs.Scan(&c.k.user, &c.k.day, &c.t.calls, &c.t.e4, &c.t.e5, &c.t.req, &c.t.resp)
			return c, err
		})
	out := map[dayKey]dayTotals{}
	for _, c := range cs {
		out[c.k] = c.t
	}
	return out, err
}

// recordRate measures the record path over the run: rows per second
// between the first and the last batch that inserted any.
func (r *runner) recordRate(ctx context.Context) error {
	var n int64
	var first, last *time.Time
	if err := r.db.QueryRow(ctx, `SELECT count(*), min(received_at), max(received_at) FROM eco_api_usage`).Scan(&n, &first, &last); err != nil {
		return fmt.Errorf("read the record rate: %w", err)
	}
	if first != nil && last.After(*first) {
		r.report.RecordSpan = last.Sub(*first)
		r.report.RecordRate = float64(n) / r.report.RecordSpan.Seconds()
	}
	// The busiest second: what the record path does with a backlog.
	if err := r.db.QueryRow(ctx, `SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM eco_api_usage
		GROUP BY date_trunc('second', received_at)) s`).Scan(&r.report.RecordPeak); err != nil {
		return fmt.Errorf("read the record rate: %w", err)
	}
	return nil
}

// query reads every row of sql with scan.
func query[T any](ctx context.Context, r *runner, sql string, scan func(pgx.Rows) (T, error)) ([]T, error) {
	rs, err := r.db.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	defer rs.Close()
	var out []T
	for rs.Next() {
		v, err := scan(rs)
		if err != nil {
			return nil, fmt.Errorf("soak: %w", err)
		}
		out = append(out, v)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	return out, nil
}
