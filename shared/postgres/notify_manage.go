package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

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

// insertBounded runs insert, which adds a row only while its owner has
// fewer than a bound (a count in its WHERE), under a transaction lock on
// owner: two creations at once would otherwise both count before either
// inserts, and pass the bound together.
func (s *NotifyStore) insertBounded(ctx context.Context, owner, insert string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := s.db.with(notifyWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, owner); err != nil {
			return err
		}
		var err error
		tag, err = tx.Exec(ctx, insert, args...)
		return err
	})
	return tag, err
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
	tag, err := s.insertBounded(ctx, "eco_notify_rules:"+cmp.Or(r.PlanID, r.UserID), `INSERT INTO eco_notify_rules (rule_id, plan_id, user_id, kind, value, enabled,
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
	tag, err := s.insertBounded(ctx, "eco_webhook_endpoints:"+e.UserID, `INSERT INTO eco_webhook_endpoints (endpoint_id, user_id, url, description,
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

// UpdateEndpoint implements notify.ManageStore: SELECT … FOR UPDATE,
// change, UPDATE, in one transaction. Finish's statement waits for the
// lock and then applies a delivery's outcome to the row as changed.
func (s *NotifyStore) UpdateEndpoint(ctx context.Context, id string, change func(notify.Endpoint) (notify.Endpoint, error)) (*notify.Endpoint, error) {
	var out notify.Endpoint
	var changeErr error
	err := s.db.with(notifyWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		var e notify.Endpoint
		err := tx.QueryRow(ctx, `SELECT `+endpointColumns+` FROM eco_webhook_endpoints e WHERE e.endpoint_id = $1 FOR UPDATE`, id).
			Scan(endpointDest(&e)...)
		if errors.Is(err, pgx.ErrNoRows) {
			changeErr = usage.Errorf(usage.CodeNotFound, "no such endpoint")
			return changeErr
		}
		if err != nil {
			return err
		}
		utcEndpoint(&e)
		if out, changeErr = change(e); changeErr != nil {
			return changeErr
		}
		_, err = tx.Exec(ctx, `UPDATE eco_webhook_endpoints SET url = $2, description = $3, event_types = $4::text[],
				enabled = $5, disabled_reason = $6, failing_since = $7, secret = $8, previous_secret = $9, previous_expires_at = $10,
				updated_at = $11
			WHERE endpoint_id = $1`,
			out.ID, out.URL, out.Description, out.EventTypes, out.Enabled, out.DisabledReason, out.FailingSince, out.Secret,
			nullable(out.PreviousSecret), out.PreviousExpiresAt, out.UpdatedAt)
		return err
	})
	if changeErr != nil && errors.Is(err, changeErr) {
		return nil, changeErr
	}
	if err != nil {
		return nil, FormatError(fmt.Errorf("update endpoint %s: %w", id, err))
	}
	return &out, nil
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

// Its log is the latest notify.LoggedAttempts attempts (Finish keeps no
// more; the limit also holds for rows kept before it did).
var deliveryColumns = `d.delivery_id::text, d.event_id::text, o.event_type, d.endpoint_id::text, coalesce(d.user_id::text, ''),
	d.status, d.attempts, d.retry_step, d.next_attempt_at, d.last_status, d.last_error, d.replays, d.created_at, d.updated_at,
	d.delivered_at,
	(SELECT coalesce(jsonb_agg(jsonb_build_object('attempt', a.attempt, 'at', a.at, 'status_code', a.status_code,
		'outcome', a.outcome, 'answer', a.answer, 'latency_ms', a.latency_ms, 'replay', a.replay) ORDER BY a.attempt), '[]')
	 FROM (SELECT * FROM eco_webhook_attempts a WHERE a.delivery_id = d.delivery_id
	       ORDER BY a.attempt DESC LIMIT ` + strconv.Itoa(notify.LoggedAttempts) + `) a)::text`

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
