package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

// NotifyStore keeps the notification workflow (migration 00014): rules,
// armed periods and their thresholds, the outbox, webhook endpoints, their
// deliveries and attempts. The crossings themselves are raised by the
// record path's last statement (record_usage_counts, EventStore).
type NotifyStore struct{ db *DB }

// NewNotifyStore returns a store over db.
func NewNotifyStore(db *DB) *NotifyStore { return &NotifyStore{db: db} }

var _ notify.Store = (*NotifyStore)(nil)

// --- arming ---

// Pending implements notify.ArmStore.
func (s *NotifyStore) Pending(ctx context.Context, limit int) ([]notify.PendingDay, error) {
	rows, err := s.db.with(notifyWork).Query(ctx, `SELECT user_id::text, day FROM eco_notify_pending
		ORDER BY marked_at, user_id, day LIMIT $1`, limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("read pending days: %w", err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notify.PendingDay, error) {
		var p notify.PendingDay
		err := r.Scan(&p.UserID, &p.Day)
		p.Day = p.Day.UTC()
		return p, err
	})
	return out, FormatError(err)
}

// ArmingState implements notify.ArmStore: the epoch, the users'
// subscriptions and versions, every plan's rules and the users' own, in
// one repeatable-read transaction (one snapshot), so that a period is
// armed with versions no older than what it was computed from.
func (s *NotifyStore) ArmingState(ctx context.Context, userIDs []string) (*notify.ArmingState, error) {
	st := &notify.ArmingState{Users: map[string]*notify.UserTerms{}}
	err := s.db.with(notifyWork).SnapshotFunc(ctx,
		func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT epoch FROM eco_notify_epoch`).Scan(&st.Epoch); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT `+subscriptionColumns+`, x.user_id::text, coalesce(nu.version, 0)
				FROM unnest($1::uuid[]) AS x(user_id)
				LEFT JOIN eco_subscriptions s ON s.user_id = x.user_id
				JOIN eco_plans p ON p.plan_id = coalesce(s.plan_id, 'free')
				LEFT JOIN eco_notify_users nu ON nu.user_id = x.user_id`, userIDs)
			if err != nil {
				return err
			}
			for rows.Next() {
				var (
					sub     usage.Subscription
					id      string
					version int64
				)
				if err := scanSubscription(rows, &sub, &id, &version); err != nil {
					rows.Close()
					return err
				}
				sub.UserID = id
				st.Users[id] = &notify.UserTerms{Sub: &sub, Version: version}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			rules, err := queryRules(ctx, tx, `WHERE plan_id IS NOT NULL OR user_id = ANY($1::uuid[])`, userIDs)
			if err != nil {
				return err
			}
			for _, u := range st.Users {
				for _, r := range rules {
					if r.PlanID != "" || r.UserID == u.Sub.UserID {
						u.Rules = append(u.Rules, r)
					}
				}
			}
			return nil
		})
	if err != nil {
		return nil, FormatError(fmt.Errorf("read arming state: %w", err))
	}
	return st, nil
}

// Arm implements notify.ArmStore: notify_arm for each period, in one
// transaction (one round trip), in key order so that armers running at
// once never deadlock.
func (s *NotifyStore) Arm(ctx context.Context, arms []notify.Arming, now time.Time) ([]string, error) {
	if len(arms) == 0 {
		return nil, nil
	}
	arms = slices.Clone(arms)
	slices.SortFunc(arms, func(a, b notify.Arming) int {
		if c := strings.Compare(a.UserID, b.UserID); c != 0 {
			return c
		}
		return a.Days.FirstDay.Compare(b.Days.FirstDay)
	})
	b := &pgx.Batch{}
	var fired []string
	for _, a := range arms {
		n := len(a.Thresholds)
		ids, rules, types, calls, details := make([]string, n), make([]string, n), make([]string, n), make([]int64, n), make([]string, n)
		for i, t := range a.Thresholds {
			d, err := json.Marshal(t.Data)
			if err != nil {
				return nil, fmt.Errorf("encode threshold: %w", err)
			}
			ids[i], rules[i], types[i], calls[i], details[i] = a.EventIDs[i], t.RuleID, t.EventType, t.Calls, string(d)
		}
		b.Queue(`SELECT notify_arm($1::uuid, $2::date, $3::date, $4::timestamptz, $5::timestamptz, $6::bigint, $7::bigint,
				$8::uuid[], $9::uuid[], $10::text[], $11::bigint[], $12::text[], $13::timestamptz)`,
			a.UserID, a.Days.FirstDay, a.Days.EndDay, a.Days.Period.Start, a.Days.Period.End, a.Epoch, a.UserVersion,
			ids, rules, types, calls, details, now).QueryRow(func(row pgx.Row) error {
			var f []string
			if err := row.Scan(&f); err != nil {
				return err
			}
			fired = append(fired, f...)
			return nil
		})
	}
	w := s.db.with(notifyWork)
	if err := w.SendBatch(ctx, b).Close(); err != nil {
		return nil, FormatError(fmt.Errorf("arm %d periods: %w", len(arms), w.timedOut(err)))
	}
	return fired, nil
}

// Refire implements notify.ArmStore.
func (s *NotifyStore) Refire(ctx context.Context, since, now time.Time) ([]string, error) {
	var fired []string
	err := s.db.with(notifyWork).QueryRow(ctx, `SELECT coalesce(notify_fire(array_agg(user_id ORDER BY user_id, first_day),
			array_agg(first_day ORDER BY user_id, first_day), $2::timestamptz), '{}')
		FROM eco_notify_periods WHERE armed_at >= $1 AND next_calls IS NOT NULL`, since, now).Scan(&fired)
	if err != nil {
		return nil, FormatError(fmt.Errorf("fire recently armed periods: %w", err))
	}
	return fired, nil
}

// --- rules ---

const ruleColumns = `rule_id::text, coalesce(plan_id, ''), coalesce(user_id::text, ''), kind, value, enabled, description, created_at, updated_at`

func scanRule(row pgx.Row) (notify.Rule, error) {
	var r notify.Rule
	err := row.Scan(&r.ID, &r.PlanID, &r.UserID, &r.Kind, &r.Value, &r.Enabled, &r.Description, &r.CreatedAt, &r.UpdatedAt)
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, err
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func queryRules(ctx context.Context, q querier, where string, args ...any) ([]notify.Rule, error) {
	rows, err := q.Query(ctx, `SELECT `+ruleColumns+` FROM eco_notify_rules `+where+
		` ORDER BY plan_id NULLS LAST, user_id, kind, value, rule_id`, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (notify.Rule, error) { return scanRule(r) })
}

// Rules implements notify.ManageStore.
func (s *NotifyStore) Rules(ctx context.Context, f notify.RuleFilter) ([]notify.Rule, error) {
	var plan, user *string
	if f.PlanID != nil {
		plan = f.PlanID
	}
	if f.UserID != nil {
		if !usage.IsUUID(*f.UserID) {
			return nil, usage.FieldErrorf("user_id", "must be a UUID")
		}
		user = f.UserID
	}
	where := `WHERE ($1::text IS NULL AND $2::uuid IS NULL) OR plan_id = $1::text OR user_id = $2::uuid
		OR ($3 AND plan_id = (SELECT coalesce(s.plan_id, 'free') FROM (SELECT $2::uuid AS user_id) x
			LEFT JOIN eco_subscriptions s ON s.user_id = x.user_id))`
	rules, err := queryRules(ctx, s.db.with(notifyWork), where, plan, user, f.WithPlan)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list rules: %w", err))
	}
	return rules, nil
}

// Rule implements notify.ManageStore.
func (s *NotifyStore) Rule(ctx context.Context, id string) (*notify.Rule, error) {
	r, err := scanRule(s.db.with(notifyWork).QueryRow(ctx, `SELECT `+ruleColumns+` FROM eco_notify_rules WHERE rule_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, usage.Errorf(usage.CodeNotFound, "no such rule")
	}
	if err != nil {
		return nil, FormatError(fmt.Errorf("get rule %s: %w", id, err))
	}
	return &r, nil
}

// ruleError words a rule write's refusals.
func ruleError(err error, r notify.Rule) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		return usage.Errorf(usage.CodeConflict, "a %s rule of value %d exists already for this %s", r.Kind, r.Value, r.Scope())
	case errors.As(err, &pgErr) && pgErr.Code == "23503":
		return usage.FieldErrorf("plan_id", "no plan %q", r.PlanID)
	}
	return FormatError(err)
}

// CreateRule implements notify.ManageStore.
func (s *NotifyStore) CreateRule(ctx context.Context, r notify.Rule) error {
	var plan, user *string
	if r.PlanID != "" {
		plan = &r.PlanID
	}
	if r.UserID != "" {
		user = &r.UserID
	}
	tag, err := s.db.with(notifyWork).Exec(ctx, `INSERT INTO eco_notify_rules (rule_id, plan_id, user_id, kind, value, enabled,
			description, created_at, updated_at, created_by)
		SELECT $1::uuid, $2::text, $3::uuid, $4::text, $5::bigint, $6::boolean, $7::text, $8::timestamptz, $8::timestamptz,
			coalesce($3::text, 'admin')
		WHERE (SELECT count(*) FROM eco_notify_rules WHERE plan_id = $2::text OR user_id = $3::uuid) < $9::bigint`,
		r.ID, plan, user, r.Kind, r.Value, r.Enabled, r.Description, r.CreatedAt, notify.MaxRules)
	if err != nil {
		return ruleError(err, r)
	}
	if tag.RowsAffected() == 0 {
		return usage.Errorf(usage.CodeConflict, "a %s has at most %d rules", r.Scope(), notify.MaxRules)
	}
	return nil
}

// UpdateRule implements notify.ManageStore.
func (s *NotifyStore) UpdateRule(ctx context.Context, r notify.Rule) error {
	tag, err := s.db.with(notifyWork).Exec(ctx, `UPDATE eco_notify_rules SET kind = $2, value = $3, enabled = $4, description = $5,
		updated_at = $6 WHERE rule_id = $1`, r.ID, r.Kind, r.Value, r.Enabled, r.Description, r.UpdatedAt)
	if err != nil {
		return ruleError(err, r)
	}
	if tag.RowsAffected() == 0 {
		return usage.Errorf(usage.CodeNotFound, "no such rule")
	}
	return nil
}

// DeleteRule implements notify.ManageStore.
func (s *NotifyStore) DeleteRule(ctx context.Context, id string) error {
	tag, err := s.db.with(notifyWork).Exec(ctx, `DELETE FROM eco_notify_rules WHERE rule_id = $1`, id)
	if err != nil {
		return FormatError(fmt.Errorf("delete rule %s: %w", id, err))
	}
	if tag.RowsAffected() == 0 {
		return usage.Errorf(usage.CodeNotFound, "no such rule")
	}
	return nil
}

// --- endpoints ---

const endpointColumns = `e.endpoint_id::text, coalesce(e.user_id::text, ''), e.url, e.description, e.event_types, e.enabled,
	e.disabled_reason, e.failing_since, e.secret, coalesce(e.previous_secret, ''), e.previous_expires_at, e.created_at, e.updated_at`

func endpointDest(e *notify.Endpoint) []any {
	return []any{&e.ID, &e.UserID, &e.URL, &e.Description, &e.EventTypes, &e.Enabled, &e.DisabledReason, &e.FailingSince,
		&e.Secret, &e.PreviousSecret, &e.PreviousExpiresAt, &e.CreatedAt, &e.UpdatedAt}
}

func utcEndpoint(e *notify.Endpoint) {
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	for _, t := range []**time.Time{&e.FailingSince, &e.PreviousExpiresAt} {
		if *t != nil {
			u := (**t).UTC()
			*t = &u
		}
	}
	if e.EventTypes == nil {
		e.EventTypes = []string{}
	}
}

// Endpoints implements notify.ManageStore.
func (s *NotifyStore) Endpoints(ctx context.Context, f notify.EndpointFilter) ([]notify.Endpoint, error) {
	if f.UserID != nil && !usage.IsUUID(*f.UserID) {
		return nil, usage.FieldErrorf("user_id", "must be a UUID")
	}
	rows, err := s.db.with(notifyWork).Query(ctx, `SELECT `+endpointColumns+` FROM eco_webhook_endpoints e
		WHERE ($1::uuid IS NULL OR e.user_id = $1::uuid) AND (NOT $2 OR e.user_id IS NULL)
		ORDER BY e.created_at, e.endpoint_id`, f.UserID, f.Platform)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list endpoints: %w", err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notify.Endpoint, error) {
		var e notify.Endpoint
		err := r.Scan(endpointDest(&e)...)
		utcEndpoint(&e)
		return e, err
	})
	return out, FormatError(err)
}

// Endpoint implements notify.ManageStore.
func (s *NotifyStore) Endpoint(ctx context.Context, id string) (*notify.Endpoint, error) {
	var e notify.Endpoint
	err := s.db.with(notifyWork).QueryRow(ctx, `SELECT `+endpointColumns+` FROM eco_webhook_endpoints e WHERE e.endpoint_id = $1`, id).
		Scan(endpointDest(&e)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, usage.Errorf(usage.CodeNotFound, "no such endpoint")
	}
	if err != nil {
		return nil, FormatError(fmt.Errorf("get endpoint %s: %w", id, err))
	}
	utcEndpoint(&e)
	return &e, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CreateEndpoint implements notify.ManageStore.
func (s *NotifyStore) CreateEndpoint(ctx context.Context, e notify.Endpoint) error {
	tag, err := s.db.with(notifyWork).Exec(ctx, `INSERT INTO eco_webhook_endpoints (endpoint_id, user_id, url, description,
			event_types, secret, enabled, disabled_reason, created_at, updated_at)
		SELECT $1::uuid, $2::uuid, $3::text, $4::text, $5::text[], $6::text, $7::boolean, $8::text, $9::timestamptz, $9::timestamptz
		WHERE (SELECT count(*) FROM eco_webhook_endpoints WHERE user_id IS NOT DISTINCT FROM $2::uuid) < $10::bigint`,
		e.ID, nullable(e.UserID), e.URL, e.Description, e.EventTypes, e.Secret, e.Enabled, e.DisabledReason, e.CreatedAt, notify.MaxEndpoints)
	if err != nil {
		return FormatError(fmt.Errorf("create endpoint: %w", err))
	}
	if tag.RowsAffected() == 0 {
		return usage.Errorf(usage.CodeConflict, "at most %d endpoints per owner", notify.MaxEndpoints)
	}
	return nil
}

// UpdateEndpoint implements notify.ManageStore.
func (s *NotifyStore) UpdateEndpoint(ctx context.Context, e notify.Endpoint) error {
	tag, err := s.db.with(notifyWork).Exec(ctx, `UPDATE eco_webhook_endpoints SET url = $2, description = $3, event_types = $4::text[],
			enabled = $5, disabled_reason = $6, failing_since = $7, secret = $8, previous_secret = $9, previous_expires_at = $10,
			updated_at = $11
		WHERE endpoint_id = $1`,
		e.ID, e.URL, e.Description, e.EventTypes, e.Enabled, e.DisabledReason, e.FailingSince, e.Secret,
		nullable(e.PreviousSecret), e.PreviousExpiresAt, e.UpdatedAt)
	if err != nil {
		return FormatError(fmt.Errorf("update endpoint %s: %w", e.ID, err))
	}
	if tag.RowsAffected() == 0 {
		return usage.Errorf(usage.CodeNotFound, "no such endpoint")
	}
	return nil
}

// DeleteEndpoint implements notify.ManageStore.
func (s *NotifyStore) DeleteEndpoint(ctx context.Context, id string) error {
	tag, err := s.db.with(notifyWork).Exec(ctx, `DELETE FROM eco_webhook_endpoints WHERE endpoint_id = $1`, id)
	if err != nil {
		return FormatError(fmt.Errorf("delete endpoint %s: %w", id, err))
	}
	if tag.RowsAffected() == 0 {
		return usage.Errorf(usage.CodeNotFound, "no such endpoint")
	}
	return nil
}

// --- the outbox and deliveries ---

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

// finishSQL records an attempt ($1 to $8) and its delivery's outcome
// ($9 to $11) unless a later attempt holds the delivery, and the endpoint's
// failure streak: cleared by a delivery, started by a failure; an endpoint
// enabled and failing since $12 or before is disabled and
// EventEndpointDisabled ($13) raised.
const finishSQL = `WITH a AS (
    INSERT INTO eco_webhook_attempts (delivery_id, attempt, at, status_code, outcome, answer, latency_ms, replay)
    VALUES ($1::uuid, $2::integer, $3::timestamptz, $4::integer, $5::text, $6::text, $7::integer, $8::boolean)
    ON CONFLICT DO NOTHING
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
const deliveryColumns = `d.delivery_id::text, d.event_id::text, o.event_type, d.endpoint_id::text, coalesce(d.user_id::text, ''),
	d.status, d.attempts, d.retry_step, d.next_attempt_at, d.last_status, d.last_error, d.replays, d.created_at, d.updated_at,
	d.delivered_at,
	(SELECT coalesce(jsonb_agg(jsonb_build_object('attempt', a.attempt, 'at', a.at, 'status_code', a.status_code,
		'outcome', a.outcome, 'answer', a.answer, 'latency_ms', a.latency_ms, 'replay', a.replay) ORDER BY a.attempt), '[]')
	 FROM eco_webhook_attempts a WHERE a.delivery_id = d.delivery_id)::text`

func scanDelivery(row pgx.Row) (notify.Delivery, error) {
	var d notify.Delivery
	var log string
	err := row.Scan(&d.ID, &d.EventID, &d.EventType, &d.EndpointID, &d.UserID, &d.Status, &d.Attempts, &d.RetryStep,
		&d.NextAttemptAt, &d.LastStatus, &d.LastError, &d.Replays, &d.CreatedAt, &d.UpdatedAt, &d.DeliveredAt, &log)
	if err != nil {
		return d, err
	}
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	for _, t := range []**time.Time{&d.NextAttemptAt, &d.DeliveredAt} {
		if *t != nil {
			u := (**t).UTC()
			*t = &u
		}
	}
	if err := json.Unmarshal([]byte(log), &d.Log); err != nil {
		return d, fmt.Errorf("decode attempts: %w", err)
	}
	for i := range d.Log {
		d.Log[i].At = d.Log[i].At.UTC()
	}
	return d, nil
}

// Deliveries implements notify.ManageStore.
func (s *NotifyStore) Deliveries(ctx context.Context, f notify.DeliveryFilter) ([]notify.Delivery, error) {
	if f.UserID != nil && !usage.IsUUID(*f.UserID) {
		return nil, usage.FieldErrorf("user_id", "must be a UUID")
	}
	var curAt *time.Time
	var curID *string
	if f.Before != nil {
		curAt, curID = &f.Before.CreatedAt, &f.Before.ID
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.db.with(notifyWork).Query(ctx, `SELECT `+deliveryColumns+`
		FROM eco_webhook_deliveries d
		JOIN eco_notify_outbox o ON o.event_id = d.event_id
		JOIN eco_webhook_endpoints e ON e.endpoint_id = d.endpoint_id
		WHERE ($1::uuid IS NULL OR d.endpoint_id = $1::uuid) AND ($2::uuid IS NULL OR e.user_id = $2::uuid)
		  AND ($3::text IS NULL OR d.status = $3::text)
		  AND ($4::timestamptz IS NULL OR (d.created_at, d.delivery_id) < ($4::timestamptz, $5::uuid))
		ORDER BY d.created_at DESC, d.delivery_id DESC
		LIMIT $6`, f.EndpointID, f.UserID, f.Status, curAt, curID, limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list deliveries: %w", err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notify.Delivery, error) { return scanDelivery(r) })
	return out, FormatError(err)
}

// Delivery implements notify.ManageStore.
func (s *NotifyStore) Delivery(ctx context.Context, id string) (*notify.Delivery, error) {
	d, err := scanDelivery(s.db.with(notifyWork).QueryRow(ctx, `SELECT `+deliveryColumns+`
		FROM eco_webhook_deliveries d JOIN eco_notify_outbox o ON o.event_id = d.event_id
		WHERE d.delivery_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, usage.Errorf(usage.CodeNotFound, "no such delivery")
	}
	if err != nil {
		return nil, FormatError(fmt.Errorf("get delivery %s: %w", id, err))
	}
	return &d, nil
}

// Replay implements notify.ManageStore: the deliveries are pending again,
// due at now, at notify.ReplayStep (one attempt, not retried).
func (s *NotifyStore) Replay(ctx context.Context, r notify.ReplayRequest, now time.Time) ([]string, error) {
	var deliveryID, endpointID *string
	var since *time.Time
	if r.DeliveryID != "" {
		deliveryID = &r.DeliveryID
	} else {
		endpointID, since = &r.EndpointID, &r.Since
	}
	rows, err := s.db.with(notifyWork).Query(ctx, `UPDATE eco_webhook_deliveries SET status = 'pending', next_attempt_at = $4,
			retry_step = $5, leased_until = NULL, replays = replays + 1, updated_at = $4
		WHERE delivery_id IN (
			SELECT delivery_id FROM eco_webhook_deliveries
			 WHERE status <> 'pending' AND (delivery_id = $1::uuid
			    OR (endpoint_id = $2::uuid AND status = 'failed' AND created_at >= $3::timestamptz))
			 ORDER BY created_at LIMIT $6)
		RETURNING delivery_id::text`, deliveryID, endpointID, since, now, notify.ReplayStep, notify.MaxReplay)
	if err != nil {
		return nil, FormatError(fmt.Errorf("replay deliveries: %w", err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, FormatError(err)
}
