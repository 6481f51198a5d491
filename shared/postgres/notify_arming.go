package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

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
