package notify

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"
)

// DefaultArmBatch bounds the pending days one ArmPending arms.
const DefaultArmBatch = 500

// Armer arms users' periods: for each pending day (written by the record
// path with the counters, for a user whose period was not armed under the
// current versions) it reads the user's terms and rules, turns the rules
// into the period's thresholds (Thresholds) and writes them, firing what
// the period has crossed already. Arming is idempotent: a threshold keeps
// its event id, and one that fired stays fired.
type Armer struct {
	Store ArmStore
	// Now is the clock (required).
	Now func() time.Time
}

// ArmPending arms up to limit pending days (DefaultArmBatch when 0) and
// returns the events fired and how many periods it armed.
func (a *Armer) ArmPending(ctx context.Context, limit int) ([]string, int, error) {
	if limit <= 0 {
		limit = DefaultArmBatch
	}
	days, err := a.Store.Pending(ctx, limit)
	if err != nil || len(days) == 0 {
		return nil, 0, err
	}
	return a.Arm(ctx, days)
}

// Arm arms the periods of days.
func (a *Armer) Arm(ctx context.Context, days []PendingDay) ([]string, int, error) {
	var users []string
	seen := map[string]bool{}
	for _, d := range days {
		if !seen[d.UserID] {
			seen[d.UserID] = true
			users = append(users, d.UserID)
		}
	}
	st, err := a.Store.ArmingState(ctx, users)
	if err != nil {
		return nil, 0, err
	}
	now := a.Now().UTC()
	type key struct {
		user string
		day  time.Time
	}
	done := map[key]bool{}
	var arms []Arming
	for _, d := range days {
		ut := st.Users[d.UserID]
		if ut == nil {
			return nil, 0, fmt.Errorf("arm %s: no terms read", d.UserID)
		}
		pd := PeriodOfDay(ut.Sub.PeriodAnchor, d.Day)
		if done[key{d.UserID, pd.FirstDay}] {
			continue
		}
		done[key{d.UserID, pd.FirstDay}] = true
		// The terms in force now, or at the period's start for a period
		// to come, or at its last instant for one that is over.
		at := now
		if at.Before(pd.Period.Start) {
			at = pd.Period.Start
		} else if !at.Before(pd.Period.End) {
			at = pd.Period.End.Add(-time.Nanosecond)
		}
		th := Thresholds(ut.Sub, ut.Rules, pd.Period, at)
		ids := make([]string, len(th))
		for i := range ids {
			ids[i] = NewID()
		}
		arms = append(arms, Arming{UserID: d.UserID, Days: pd, Epoch: st.Epoch, UserVersion: ut.Version, Thresholds: th, EventIDs: ids})
	}
	fired, err := a.Store.Arm(ctx, arms, now)
	if err != nil {
		return nil, 0, err
	}
	return fired, len(arms), nil
}

// RefireWindow is how far back the sweep fires the periods armed: every
// record transaction that ran beside an arming has committed by then.
const RefireWindow = 5 * time.Minute

// Refire fires what the open periods armed in the last RefireWindow have
// crossed (notify_fire): a record transaction that found a period armed
// without thresholds ahead, while an arming was adding one, and committed
// after the arming looked at the counters, is counted here.
func (a *Armer) Refire(ctx context.Context) ([]string, error) {
	now := a.Now().UTC()
	return a.Store.Refire(ctx, now.Add(-RefireWindow), now)
}

// Recorded is the record path's side of the workflow, after a batch's
// transaction committed: it queues the events the batch fired and, when
// the batch left pending days, arms them (and queues what that fires).
// Nothing here can lose a crossing: the events are in the outbox and the
// pending days in their table, both committed with the counters; a
// failure is logged and the deliver function's sweep does it within a
// minute.
type Recorded struct {
	Armer *Armer
	// Queue is the notify queue; nil leaves the events to the sweep.
	Queue Queue
	// Logger logs what the batch's caller cannot act on (nil:
	// slog.Default(), as every service here).
	Logger *slog.Logger
}

func (r *Recorded) logger() *slog.Logger { return cmp.Or(r.Logger, slog.Default()) }

// After handles a committed batch that fired events and left pending
// days pending.
func (r *Recorded) After(ctx context.Context, fired []string, pending int) {
	if pending > 0 && r.Armer != nil {
		more, n, err := r.Armer.ArmPending(ctx, 0)
		if err != nil {
			r.logger().WarnContext(ctx, "arming after the batch failed; the sweep will arm", "pending", pending, "error", err)
		} else if n > 0 {
			r.logger().InfoContext(ctx, "usage periods armed", "periods", n, "fired", len(more))
		}
		fired = append(fired, more...)
	}
	if len(fired) == 0 || r.Queue == nil {
		return
	}
	msgs := make([]Message, len(fired))
	for i, id := range fired {
		msgs[i] = Message{EventID: id}
	}
	if err := r.Queue.Send(ctx, msgs); err != nil {
		r.logger().WarnContext(ctx, "notification events not queued; the sweep will deliver them", "events", len(fired), "error", err)
		return
	}
	r.logger().InfoContext(ctx, "usage thresholds reached", "events", len(fired))
}
