package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

// fanOutSQL creates the deliveries of an outbox event ($1) at $2, once:
// one per enabled endpoint that wants it, the user's own and the
// platform's, and marks the event fanned out.
const fanOutSQL = `WITH ev AS (
    SELECT * FROM eco_notify_outbox WHERE event_id = $1 FOR UPDATE
), ins AS (
    INSERT INTO eco_webhook_deliveries (delivery_id, event_id, endpoint_id, user_id, status, next_attempt_at, created_at, updated_at)
    SELECT gen_random_uuid(), ev.event_id, e.endpoint_id, ev.user_id, 'pending', $2::timestamptz, $2::timestamptz, $2::timestamptz
      FROM ev JOIN eco_webhook_endpoints e
        ON e.enabled AND (e.user_id IS NULL OR e.user_id = ev.user_id)
       AND (cardinality(e.event_types) = 0 OR ev.event_type = ANY (e.event_types))
     WHERE ev.fanned_out_at IS NULL
     ORDER BY e.endpoint_id
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
), done AS (
    UPDATE eco_notify_outbox o SET fanned_out_at = $2 FROM ev WHERE o.event_id = ev.event_id AND ev.fanned_out_at IS NULL
)
SELECT ev.event_type, coalesce(ev.user_id::text, ''), ev.data::text, ev.created_at, ev.published_at IS NOT NULL FROM ev`

// FanOut implements notify.DeliveryStore.
func (s *NotifyStore) FanOut(ctx context.Context, eventID string, now time.Time) (*notify.Event, bool, []string, error) {
	ev := notify.Event{ID: eventID}
	var published bool
	var ids []string
	err := s.db.with(notifyWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		var data string
		if err := tx.QueryRow(ctx, fanOutSQL, eventID, now).Scan(&ev.Type, &ev.UserID, &data, &ev.At, &published); err != nil {
			return err
		}
		ev.Data, ev.At = json.RawMessage(data), ev.At.UTC()
		rows, err := tx.Query(ctx, `SELECT delivery_id::text FROM eco_webhook_deliveries WHERE event_id = $1 AND status = 'pending'
			ORDER BY delivery_id`, eventID)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil, usage.Errorf(usage.CodeNotFound, "no event %s in the outbox", eventID)
	}
	if err != nil {
		return nil, false, nil, FormatError(fmt.Errorf("fan out event %s: %w", eventID, err))
	}
	return &ev, published, ids, nil
}

// MarkPublished implements notify.DeliveryStore.
func (s *NotifyStore) MarkPublished(ctx context.Context, eventID string, now time.Time) error {
	if _, err := s.db.with(notifyWork).Exec(ctx, `UPDATE eco_notify_outbox SET published_at = $2
		WHERE event_id = $1 AND published_at IS NULL`, eventID, now); err != nil {
		return FormatError(fmt.Errorf("mark event %s published: %w", eventID, err))
	}
	return nil
}

// Waiting implements notify.DeliveryStore.
func (s *NotifyStore) Waiting(ctx context.Context, before time.Time, withBus bool, limit int) ([]string, error) {
	rows, err := s.db.with(notifyWork).Query(ctx, `SELECT event_id::text FROM eco_notify_outbox
		WHERE created_at < $1 AND (fanned_out_at IS NULL OR ($2 AND published_at IS NULL))
		ORDER BY created_at LIMIT $3`, before, withBus, limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list waiting events: %w", err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, FormatError(err)
}

// Lease implements notify.DeliveryStore: in one transaction, the delivery
// locked, judged (done, not due, leased by another attempt, its endpoint
// disabled) and, when due, leased with its attempt counted.
func (s *NotifyStore) Lease(ctx context.Context, id string, now time.Time, leaseFor time.Duration) (*notify.Lease, notify.LeaseState, time.Time, error) {
	if !usage.IsUUID(id) {
		return nil, notify.Done, time.Time{}, usage.Errorf(usage.CodeNotFound, "no such delivery")
	}
	var (
		l     notify.Lease
		state = notify.Done
		due   time.Time
	)
	err := s.db.with(notifyWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		d := &l.Delivery
		var next, leased *time.Time
		var data string
		dest := []any{&d.ID, &d.EventID, &d.EndpointID, &d.Status, &d.Attempts, &d.RetryStep, &next, &leased, &d.Replays,
			&l.Event.Type, &l.Event.UserID, &data, &l.Event.At}
		err := tx.QueryRow(ctx, `SELECT d.delivery_id::text, d.event_id::text, d.endpoint_id::text, d.status, d.attempts,
				d.retry_step, d.next_attempt_at, d.leased_until, d.replays,
				o.event_type, coalesce(o.user_id::text, ''), o.data::text, o.created_at, `+endpointColumns+`
			FROM eco_webhook_deliveries d
			JOIN eco_notify_outbox o ON o.event_id = d.event_id
			JOIN eco_webhook_endpoints e ON e.endpoint_id = d.endpoint_id
			WHERE d.delivery_id = $1
			FOR UPDATE OF d`, id).Scan(append(dest, endpointDest(&l.Endpoint)...)...)
		if err != nil {
			return err
		}
		utcEndpoint(&l.Endpoint)
		l.Event.ID, l.Event.Data, l.Event.At = d.EventID, json.RawMessage(data), l.Event.At.UTC()
		d.EventType, d.UserID = l.Event.Type, l.Event.UserID
		switch {
		case d.Status != notify.StatusPending:
			return nil
		case !l.Endpoint.Enabled:
			_, err := tx.Exec(ctx, `UPDATE eco_webhook_deliveries SET status = 'failed', next_attempt_at = NULL, leased_until = NULL,
				last_error = 'the endpoint is disabled', updated_at = $2 WHERE delivery_id = $1`, id, now)
			return err
		case next != nil && next.After(now):
			state, due = notify.NotDue, next.UTC()
			return nil
		case leased != nil && leased.After(now):
			state = notify.Busy
			return nil
		}
		l.Attempt = d.Attempts + 1
		state = notify.Leased
		_, err = tx.Exec(ctx, `UPDATE eco_webhook_deliveries SET attempts = $2, leased_until = $3, updated_at = $4
			WHERE delivery_id = $1`, id, l.Attempt, now.Add(leaseFor), now)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notify.Done, time.Time{}, usage.Errorf(usage.CodeNotFound, "no such delivery")
	}
	if err != nil {
		return nil, notify.Done, time.Time{}, FormatError(fmt.Errorf("lease delivery %s: %w", id, err))
	}
	if state != notify.Leased {
		return nil, state, due, nil
	}
	return &l, state, due, nil
}

// finishSQL records an attempt ($1 to $8), keeping the delivery's latest
// notify.LoggedAttempts, and its delivery's outcome
// ($9 to $11) unless a later attempt holds the delivery, and the endpoint's
// failure streak: cleared by a delivery, started by a failure; an endpoint
// enabled and failing since $12 or before is disabled and
// EventEndpointDisabled ($13) raised.
var finishSQL = `WITH a AS (
    INSERT INTO eco_webhook_attempts (delivery_id, attempt, at, status_code, outcome, answer, latency_ms, replay)
    VALUES ($1::uuid, $2::integer, $3::timestamptz, $4::integer, $5::text, $6::text, $7::integer, $8::boolean)
    ON CONFLICT DO NOTHING
), trim AS (
    DELETE FROM eco_webhook_attempts WHERE delivery_id = $1::uuid AND attempt <= $2::integer - ` + strconv.Itoa(notify.LoggedAttempts) + `
), d AS (
    UPDATE eco_webhook_deliveries SET status = $9, next_attempt_at = $10, retry_step = $11, leased_until = NULL,
        last_status = $4, last_error = CASE WHEN $5 = 'delivered' THEN '' ELSE $6 END,
        delivered_at = CASE WHEN $5 = 'delivered' THEN $3 ELSE delivered_at END, updated_at = $3
     WHERE delivery_id = $1::uuid AND attempts = $2::integer
), e AS (
    UPDATE eco_webhook_endpoints SET
        failing_since = CASE WHEN $5 = 'delivered' THEN NULL ELSE coalesce(failing_since, $3) END,
        enabled = enabled AND NOT ($5 <> 'delivered' AND coalesce(failing_since, $3) <= $12),
        disabled_reason = CASE WHEN enabled AND $5 <> 'delivered' AND coalesce(failing_since, $3) <= $12
            THEN 'every delivery failed since ' || to_char(coalesce(failing_since, $3) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            ELSE disabled_reason END,
        updated_at = $3
     WHERE endpoint_id = $14::uuid
    RETURNING endpoint_id, user_id, url, failing_since, enabled,
        (SELECT w.enabled FROM eco_webhook_endpoints w WHERE w.endpoint_id = $14::uuid) AS was
), x AS (
    INSERT INTO eco_notify_outbox (event_id, event_type, user_id, data, created_at)
    SELECT $13::uuid, 'webhook.endpoint.disabled', e.user_id,
           jsonb_build_object('endpoint_id', e.endpoint_id, 'user_id', e.user_id, 'url', e.url, 'failing_since', e.failing_since,
               'disabled_at', $3::timestamptz, 'last_error', $6::text),
           $3::timestamptz
      FROM e WHERE e.was AND NOT e.enabled AND $13::uuid IS NOT NULL
    RETURNING 1
)
SELECT count(*) > 0 FROM x`

// Finish implements notify.DeliveryStore (one statement).
func (s *NotifyStore) Finish(ctx context.Context, f notify.Finished) (bool, error) {
	var disabled bool
	a := f.Attempt
	err := s.db.with(notifyWork).QueryRow(ctx, finishSQL, f.DeliveryID, a.Attempt, a.At, a.StatusCode, a.Outcome, a.Answer,
		int32(min(a.LatencyMS, 1<<31-1)), a.Replay, f.Status, f.NextAttemptAt, int32(f.RetryStep), f.DisableBefore,
		nullable(f.DisabledEventID), f.EndpointID).Scan(&disabled)
	if err != nil {
		return false, FormatError(fmt.Errorf("finish attempt %d of delivery %s: %w", a.Attempt, f.DeliveryID, err))
	}
	return disabled, nil
}

// Overdue implements notify.DeliveryStore.
func (s *NotifyStore) Overdue(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := s.db.with(notifyWork).Query(ctx, `SELECT delivery_id::text FROM eco_webhook_deliveries
		WHERE status = 'pending' AND next_attempt_at < $1 AND (leased_until IS NULL OR leased_until < $1)
		ORDER BY next_attempt_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list overdue deliveries: %w", err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, FormatError(err)
}

// deliveryColumns read a delivery d of event o with its attempts as JSON.
