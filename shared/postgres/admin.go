package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// PutPlan changes the user's plan and writes the audit row, in one
// transaction. A transaction-scoped advisory lock on the user serialises
// concurrent changes, so that each audit row's old value is the previous
// change's new value and a partial change merges into the terms as the
// previous change left them. usage.DecideChange says what the change is;
// then:
//
//   - start: the subscription is created, anchored today, with its first
//     history entry;
//   - upgrade: the subscription's terms are replaced now, a history entry
//     starts now, and a pending downgrade is dropped;
//   - downgrade: the terms wait in next_* and in a history entry from the
//     end of the running period, replacing a pending one;
//   - same: a pending downgrade is dropped; nothing else changes.
func (s *AnalyticsStore) PutPlan(ctx context.Context, c report.PlanChange) (*report.PlanChanged, error) {
	if err := checkUser(c.UserID); err != nil {
		return nil, err
	}
	if c.PlanID == "" && !c.Partial {
		return nil, usage.FieldErrorf("plan_id", "is required")
	}
	if strings.ContainsRune(c.PlanID, 0) {
		// No PostgreSQL text holds a NUL: no plan has this id, and the
		// database would refuse the parameter.
		return nil, usage.FieldErrorf("plan_id", "unknown plan %q", c.PlanID)
	}
	if err := c.Overrides.Validate(); err != nil {
		return nil, err
	}
	if _, err := (usage.Overrides{}).Merge(usage.Overrides{}, c.Unset); err != nil {
		return nil, err
	}
	now := s.db.now()
	var out *report.PlanChanged
	err := s.db.with(adminWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('eco_plan:' || $1::text, 0)),
				promote_due_terms($2::timestamptz, $1::uuid)`, c.UserID, now); err != nil {
			return err
		}
		var old, hist []byte
		if err := tx.QueryRow(ctx, `SELECT to_jsonb(s), `+termsHistory+` FROM eco_subscriptions s WHERE s.user_id = $1`,
			c.UserID).Scan(&old, &hist); err != nil && err != pgx.ErrNoRows {
			return err
		}
		var (
			cur     *usage.Subscription
			history []usage.Terms
		)
		if old != nil {
			cur = &usage.Subscription{UserID: c.UserID}
			if err := scanSubscription(tx.QueryRow(ctx, subscriptionQuery, c.UserID), cur); err != nil {
				return err
			}
			var err error
			if history, err = decodeHistory(hist); err != nil {
				return err
			}
		}
		planID, o := c.PlanID, c.Overrides
		if c.Partial {
			if cur == nil && planID == "" {
				return usage.FieldErrorf("plan_id", "is required: the user has no subscription to change yet")
			}
			base := usage.Terms{}
			if cur != nil {
				base = usage.Terms{PlanID: cur.PlanID, Overrides: cur.Overrides}
				if cur.Next != nil {
					base = *cur.Next
				}
			}
			if planID == "" {
				planID = base.PlanID
			}
			var err error
			if o, err = base.Overrides.Merge(c.Overrides, c.Unset); err != nil {
				return err
			}
		}
		var plan usage.Plan
		if err := scanPlan(tx.QueryRow(ctx, `SELECT `+planColumns+` FROM eco_plans p WHERE p.plan_id = $1`, planID), &plan); err != nil {
			if err == pgx.ErrNoRows {
				return usage.FieldErrorf("plan_id", "unknown plan %q", planID)
			}
			return err
		}
		next := plan.Apply(o)
		if err := next.Validate(); err != nil {
			return err
		}
		change, at, err := usage.DecideChange(cur, history, planID, o, next, now)
		if err != nil {
			return err
		}
		if err := writeChange(ctx, tx, c.UserID, planID, o, c.Who, change, at, now); err != nil {
			return err
		}
		sub := &usage.Subscription{UserID: c.UserID}
		if err := scanSubscription(tx.QueryRow(ctx, subscriptionQuery, c.UserID), sub); err != nil {
			return err
		}
		out = &report.PlanChanged{Subscription: sub, Change: change, EffectiveAt: at,
			After: usage.Terms{From: at, PlanID: planID, Overrides: o, Effective: next, Change: change}}
		for i, t := range history {
			switch {
			case !t.From.After(now):
				out.Before = &history[i]
			case change != usage.ChangeDowngrade || t.PlanID != planID || !reflect.DeepEqual(t.Overrides, o):
				out.Cancelled = &history[i]
			}
		}
		if change == usage.ChangeSame && out.Before != nil {
			out.After = *out.Before
			out.After.Change = change
		}
		out.Changed = []string{}
		if out.Before != nil {
			out.Changed = usage.ChangedTerms(*out.Before, out.After)
		}
		before, err := json.Marshal(out.Before)
		if err != nil {
			return err
		}
		after, err := json.Marshal(out.After)
		if err != nil {
			return err
		}
		// JSON goes as text: it encodes alike with and without statement
		// preparation (RDS Proxy's exec mode).
		var oldText *string
		if old != nil {
			t := string(old)
			oldText = &t
		}
		_, err = tx.Exec(ctx, `INSERT INTO eco_plan_audit (who, at, user_id, old, new, change, effective_at, before, after, changed)
			SELECT $1, $2, $3, $4::jsonb, to_jsonb(s), $5, $6, $7::jsonb, $8::jsonb, $9::text[] FROM eco_subscriptions s WHERE s.user_id = $3`,
			c.Who, now, c.UserID, oldText, change, at, string(before), string(after), out.Changed)
		return err
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("put plan of %s: %w", c.UserID, err))
	}
	return out, nil
}

// writeChange writes a plan change of user to planID with overrides o the
// way DecideChange decided it, in tx.
func writeChange(ctx context.Context, tx pgx.Tx, user, planID string, o usage.Overrides, who, change string, at, now time.Time) error {
	oj, err := overridesJSON(o)
	if err != nil {
		return err
	}
	// A pending downgrade (entries after now) goes, whatever the change.
	if _, err := tx.Exec(ctx, `DELETE FROM eco_subscription_terms WHERE user_id = $1 AND effective_from > $2`, user, now); err != nil {
		return err
	}
	switch change {
	case usage.ChangeSame:
		_, err = tx.Exec(ctx, `UPDATE eco_subscriptions SET next_plan_id = NULL, next_overrides = NULL, next_from = NULL,
			updated_at = $2 WHERE user_id = $1 AND next_plan_id IS NOT NULL`, user, now)
		return err
	case usage.ChangeDowngrade:
		if _, err = tx.Exec(ctx, `UPDATE eco_subscriptions SET next_plan_id = $2, next_overrides = $3::jsonb, next_from = $4,
			updated_at = $5 WHERE user_id = $1`, user, planID, oj, at, now); err != nil {
			return err
		}
	default: // start, upgrade
		if _, err = tx.Exec(ctx, `INSERT INTO eco_subscriptions AS s (user_id, plan_id, included_calls, hard_limit, rate_per_second,
				burst, overage_unit_size, overage_unit_price, currency, price_model, price_tiers, period_anchor, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $13)
			ON CONFLICT (user_id) DO UPDATE SET plan_id = excluded.plan_id,
				included_calls = excluded.included_calls, hard_limit = excluded.hard_limit,
				rate_per_second = excluded.rate_per_second, burst = excluded.burst,
				overage_unit_size = excluded.overage_unit_size, overage_unit_price = excluded.overage_unit_price,
				currency = excluded.currency, price_model = excluded.price_model, price_tiers = excluded.price_tiers,
				next_plan_id = NULL, next_overrides = NULL, next_from = NULL, updated_at = excluded.updated_at`,
			user, planID, o.IncludedCalls, o.HardLimit, o.RatePerSecond, o.Burst, o.OverageUnitSize, o.OverageUnitPrice,
			o.Currency, o.PriceModel, tiersParam(o.Tiers), usage.Day(now), now); err != nil {
			return err
		}
	}
	// The entry of the new terms; a second change at the same instant
	// replaces the first.
	_, err = tx.Exec(ctx, `INSERT INTO eco_subscription_terms (user_id, effective_from, plan_id, overrides, change, requested_at, requested_by)
		VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)
		ON CONFLICT (user_id, effective_from) DO UPDATE SET plan_id = excluded.plan_id, overrides = excluded.overrides,
			change = excluded.change, requested_at = excluded.requested_at, requested_by = excluded.requested_by`,
		user, at, planID, oj, change, now, who)
	return err
}

// PlanAudit returns the user's audited plan changes, newest first. The
// audit ids grow with every change, and PutPlan serialises a user's
// changes, so id order is the order in which they were made.
func (s *AnalyticsStore) PlanAudit(ctx context.Context, userID string, before int64, limit int) ([]report.PlanAuditEntry, error) {
	if err := checkUser(userID); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, usage.FieldErrorf("limit", "must be positive")
	}
	rows, err := s.db.with(adminWork).Query(ctx, `SELECT audit_id, who, at, old, new, coalesce(change, ''), effective_at,
			before, after, changed FROM eco_plan_audit
		WHERE user_id = $1 AND ($2::bigint = 0 OR audit_id < $2)
		ORDER BY audit_id DESC LIMIT $3`, userID, before, limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("plan audit of %s: %w", userID, err))
	}
	out := []report.PlanAuditEntry{}
	var e report.PlanAuditEntry
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.Who, &e.At, &e.Old, &e.New, &e.Change, &e.EffectiveAt, &e.Before, &e.After, &e.Changed}, func() error {
		e.At = e.At.UTC()
		if e.EffectiveAt != nil {
			t := e.EffectiveAt.UTC()
			e.EffectiveAt = &t
		}
		out = append(out, e)
		e.Old, e.New, e.EffectiveAt, e.Before, e.After, e.Changed = nil, nil, nil, nil, nil, nil // the next row's scan must not reuse these
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("plan audit of %s: %w", userID, err))
	}
	return out, nil
}

// QueueAggregation marks the range's days dirty for the aggregate job.
// Days whose raw partition is gone are refused, as the job's backfill
// refuses them (markDaysDirty).
func (s *AnalyticsStore) QueueAggregation(ctx context.Context, r usage.DayRange) (int, error) {
	if err := r.Validate(); err != nil {
		return 0, err
	}
	n, err := markDaysDirty(ctx, s.db.with(adminWork), r.Days())
	return int(n), err
}

// RejectedEvents returns quarantined events, newest first.
func (s *AnalyticsStore) RejectedEvents(ctx context.Context, before int64, limit int) ([]report.RejectedEvent, error) {
	if limit < 1 {
		return nil, usage.FieldErrorf("limit", "must be positive")
	}
	rows, err := s.db.with(adminWork).Query(ctx, `SELECT rejected_id, source, message_id, event_id, field, reason, body, rejected_at
		FROM eco_rejected_events WHERE $1::bigint = 0 OR rejected_id < $1
		ORDER BY rejected_id DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list rejected events: %w", err))
	}
	out := []report.RejectedEvent{}
	var e report.RejectedEvent
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.Source, &e.MessageID, &e.EventID, &e.Field, &e.Reason, &e.Body, &e.RejectedAt}, func() error {
		e.RejectedAt = e.RejectedAt.UTC()
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("list rejected events: %w", err))
	}
	return out, nil
}

// ListLedgerPage returns a page of the overage ledger.
func (s *AnalyticsStore) ListLedgerPage(ctx context.Context, f report.LedgerPage) ([]billing.LedgerEntry, error) {
	if f.Limit < 1 {
		return nil, usage.FieldErrorf("limit", "must be positive")
	}
	var (
		afterP *time.Time
		afterU *string
		afterS int
	)
	if f.After != nil {
		afterP, afterU, afterS = &f.After.PeriodStart, &f.After.UserID, f.After.Seq
		if !usage.IsUUID(*afterU) {
			return nil, usage.FieldErrorf("cursor", "is not a cursor of this list")
		}
	}
	rows, err := s.db.with(adminWork).Query(ctx, `SELECT `+ledgerColumns+ledgerLines+`
		FROM eco_overage_ledger l
		WHERE l.period_start >= $1 AND l.period_start < $2
			AND ($3::timestamptz IS NULL OR (l.period_start, l.user_id, l.seq) > ($3, $4::uuid, $5))
		ORDER BY l.period_start, l.user_id, l.seq LIMIT $6`, f.From, f.To, afterP, afterU, afterS, f.Limit)
	if err != nil {
		return nil, FormatError(fmt.Errorf("list overage ledger: %w", err))
	}
	defer rows.Close()
	out := []billing.LedgerEntry{}
	for rows.Next() {
		var e billing.LedgerEntry
		if err := scanLedger(rows, &e, true); err != nil {
			return nil, FormatError(fmt.Errorf("list overage ledger: %w", err))
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, FormatError(fmt.Errorf("list overage ledger: %w", err))
	}
	return out, nil
}

// RetryLedgerEntry makes a failed ledger row pending again, its attempts
// from zero and its retries counted, and writes the audit row (who, when,
// the row before and after), in one transaction. The next billing run
// looks the row up in Stripe before it sends it again (Retries > 0).
func (s *AnalyticsStore) RetryLedgerEntry(ctx context.Context, ledgerID, who string) (*billing.LedgerEntry, error) {
	if !usage.IsUUID(ledgerID) {
		return nil, usage.FieldErrorf("id", "must be a UUID")
	}
	now := s.db.now()
	var e billing.LedgerEntry
	err := s.db.with(adminWork).BeginFunc(ctx, func(tx pgx.Tx) error {
		var (
			old    string // text, as every jsonb parameter (see overridesJSON)
			status string
		)
		err := tx.QueryRow(ctx, `SELECT to_jsonb(l), l.status FROM eco_overage_ledger l WHERE l.ledger_id = $1 FOR UPDATE`, ledgerID).Scan(&old, &status)
		if err == pgx.ErrNoRows {
			return usage.Errorf(usage.CodeNotFound, "no ledger row %s", ledgerID)
		}
		if err != nil {
			return err
		}
		if status != billing.LedgerFailed {
			return usage.Errorf(usage.CodeConflict, "ledger row %s is %s; only failed rows can be retried", ledgerID, status)
		}
		if err := scanLedger(tx.QueryRow(ctx, `UPDATE eco_overage_ledger l SET status = 'pending', attempts = 0,
				retries = l.retries + 1, lease_owner = NULL, lease_until = NULL, updated_at = $2
			WHERE l.ledger_id = $1 RETURNING `+ledgerColumns+ledgerLines, ledgerID, now), &e, true); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO eco_overage_audit (who, at, ledger_id, action, old, new)
			SELECT $1, $2, $3, 'retry', $4::jsonb, to_jsonb(l) FROM eco_overage_ledger l WHERE l.ledger_id = $3`, who, now, ledgerID, string(old))
		return err
	})
	if err != nil {
		return nil, FormatError(fmt.Errorf("retry ledger row %s: %w", ledgerID, err))
	}
	return &e, nil
}
