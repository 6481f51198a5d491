package postgres_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/usage"
)

// notifyFixture is a database with the record path and the armer of the
// notification workflow, collecting the events the record path's commits
// report (EventStore.AfterCommit).
type notifyFixture struct {
	db     *postgres.DB
	events *postgres.EventStore
	store  *postgres.NotifyStore
	armer  *notify.Armer

	mu      sync.Mutex
	fired   []string
	pending int
}

func newNotifyFixture(t *testing.T) *notifyFixture {
	t.Helper()
	f := &notifyFixture{db: MustOpenDB(t)}
	f.store = postgres.NewNotifyStore(f.db)
	f.armer = &notify.Armer{Store: f.store, Now: f.db.Now}
	f.events = postgres.NewEventStore(f.db).AfterCommit(func(_ context.Context, fired []string, pending int) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.fired = append(f.fired, fired...)
		f.pending += pending
	})
	return f
}

// take returns the events and pending days reported since the last take.
func (f *notifyFixture) take() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fired, pending := f.fired, f.pending
	f.fired, f.pending = nil, 0
	return fired, pending
}

// calls returns n events of one call each of user at at.
func calls(user string, n int, at time.Time) []usage.Event {
	out := make([]usage.Event, n)
	for i := range out {
		id, _ := uuid.NewV7()
		out[i] = usage.Event{Version: 1, EventID: id.String(), UserID: user, Endpoint: "GET /v1/games", Method: "GET",
			StatusCode: 200, Quantity: 1, OccurredAt: at}
	}
	return out
}

func (f *notifyFixture) record(t *testing.T, events []usage.Event) int64 {
	t.Helper()
	n, err := f.events.RecordBatch(context.Background(), f.db.Now(), events, nil)
	if err != nil {
		t.Fatalf("RecordBatch: %v", err)
	}
	return n
}

func (f *notifyFixture) arm(t *testing.T) []string {
	t.Helper()
	fired, _, err := f.armer.ArmPending(context.Background(), 0)
	if err != nil {
		t.Fatalf("ArmPending: %v", err)
	}
	return fired
}

// outboxRow is an outbox event as the tests read it.
type outboxRow struct {
	ID, Type, User string
	Data           notify.Crossing
}

func (f *notifyFixture) outbox(t *testing.T, user string) []outboxRow {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(), `SELECT event_id::text, event_type, user_id::text, data::text
		FROM eco_notify_outbox WHERE user_id = $1::uuid ORDER BY (data->>'threshold_calls')::bigint, (data->'period'->>'start')`, user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var data string
		if err := rows.Scan(&r.ID, &r.Type, &r.User, &data); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(data), &r.Data); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNotifyCrossingsOnce follows a free user (1,000 included calls, the
// plan's 80 % and 100 % rules) through its period: its first batch finds
// the period unarmed and leaves it pending, arming fires nothing below
// 800, the batch that reaches 800 raises the 80 % event in its own
// transaction, its redelivery raises nothing, 1,000 raises the 100 %
// event and nothing after does; late events of the month before arm that
// period and raise its own 80 % event, once.
func TestNotifyCrossingsOnce(t *testing.T) {
	f := newNotifyFixture(t)
	user := uuid.NewString()
	now := time.Now().UTC()
	if f.record(t, calls(user, 500, now)) != 500 {
		t.Fatal("first batch not recorded whole")
	}
	if fired, pending := f.take(); len(fired) != 0 || pending != 1 {
		t.Fatalf("first batch: fired %v, %d days pending; want none fired, 1 pending (the period is not armed)", fired, pending)
	}
	if fired := f.arm(t); len(fired) != 0 {
		t.Fatalf("arming at 500 calls fired %v; want nothing below 800", fired)
	}
	f.record(t, calls(user, 299, now))
	if fired, pending := f.take(); len(fired) != 0 || pending != 0 {
		t.Fatalf("at 799: fired %v, %d pending; want nothing", fired, pending)
	}
	crossing := calls(user, 1, now)
	f.record(t, crossing)
	fired80, _ := f.take()
	if len(fired80) != 1 {
		t.Fatalf("the 800th call fired %v; want one event", fired80)
	}
	if n := f.record(t, crossing); n != 0 {
		t.Fatalf("redelivered batch inserted %d", n)
	}
	if fired, _ := f.take(); len(fired) != 0 {
		t.Fatalf("the redelivery fired %v; want nothing", fired)
	}
	f.record(t, calls(user, 200, now))
	fired100, _ := f.take()
	f.record(t, calls(user, 100, now))
	if more, _ := f.take(); len(fired100) != 1 || len(more) != 0 {
		t.Fatalf("1,000th call fired %v, the next 100 %v; want one event, then none", fired100, more)
	}
	got := f.outbox(t, user)
	if len(got) != 2 || got[0].ID != fired80[0] || got[1].ID != fired100[0] {
		t.Fatalf("outbox %+v; want the 80 %% and 100 %% events", got)
	}
	for i, want := range []struct {
		pct, calls int64
	}{{80, 800}, {100, 1000}} {
		d := got[i].Data
		if got[i].Type != notify.EventThreshold || d.ThresholdPercent == nil || *d.ThresholdPercent != want.pct ||
			d.ThresholdCalls != want.calls || d.UsedCalls != want.calls || d.IncludedCalls != 1000 || d.PlanID != usage.PlanFree ||
			d.Rule.Scope != "plan" || d.CrossedAt.IsZero() {
			t.Errorf("event %d: %s %+v; want %d %% at %d calls", i, got[i].Type, d, want.pct, want.calls)
		}
	}

	// Late events of the month before: that period arms and crosses once.
	last := usage.PeriodAt(usage.DefaultPeriodAnchor, now).Start.Add(-time.Hour)
	f.record(t, calls(user, 900, last))
	if fired, pending := f.take(); len(fired) != 0 || pending != 1 {
		t.Fatalf("late batch: fired %v, %d pending; want its period pending", fired, pending)
	}
	late := f.arm(t)
	f.record(t, calls(user, 10, last))
	if again := f.arm(t); len(late) != 1 || len(again) != 0 {
		t.Fatalf("arming the month before fired %v, then %v; want one event, then none", late, again)
	}
	got = f.outbox(t, user)
	if len(got) != 3 || got[0].ID != late[0] || !got[0].Data.Period.Contains(last) || got[0].Data.UsedCalls != 900 {
		t.Errorf("outbox after the late events: %+v; want the month before's 80 %% event at 900 calls", got)
	}
}

// TestNotifyConcurrentBatchesCrossOnce records batches of one armed user
// from many connections at once, none of which crosses a threshold alone
// and all of which cross it together: the threshold is raised exactly
// once, by the batch that committed last, with every batch's calls
// counted. (Without the period's lock each batch saw the others' calls
// uncommitted, and the crossing was never raised.)
func TestNotifyConcurrentBatchesCrossOnce(t *testing.T) {
	f := newNotifyFixture(t)
	user := uuid.NewString()
	now := time.Now().UTC()
	f.record(t, calls(user, 1, now))
	f.arm(t)
	f.take()
	for round, r := range []struct {
		writers, each int
		pct           int64
	}{{8, 110, 80}, {8, 30, 100}} {
		batches := make([][]usage.Event, r.writers)
		for i := range batches {
			batches[i] = calls(user, r.each, now)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, b := range batches {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := f.events.RecordBatch(context.Background(), f.db.Now(), b, nil); err != nil {
					t.Errorf("RecordBatch: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		fired, _ := f.take()
		if len(fired) != 1 {
			t.Fatalf("round %d: %d batches crossing %d %% together fired %v; want exactly one event", round, r.writers, r.pct, fired)
		}
	}
	// 80 %: only all eight batches reach 800 (1 + 8 × 110 = 881), so the
	// batch that committed last raised it, having seen the other seven.
	// 100 %: any four of the eight reach it (881 + 4 × 30 = 1,001).
	got := f.outbox(t, user)
	if len(got) != 2 || *got[0].Data.ThresholdPercent != 80 || *got[1].Data.ThresholdPercent != 100 ||
		got[0].Data.UsedCalls != 881 || got[1].Data.UsedCalls < 1000 || got[1].Data.UsedCalls > 1121 {
		t.Errorf("outbox %+v; want 80 %% at 881 calls and 100 %% between 1,000 and 1,121", got)
	}
}

// TestNotifyRearm: a user's own rule, added after its period was armed,
// bumps the user's version, so the next batch finds the period stale and
// leaves it pending; arming again adds the rule's threshold and fires it
// at once when usage is past it, and the events that fired before stay
// fired (not raised again). A plan's rule changed by an admin bumps the
// epoch: every user of the plan re-arms at its next batch.
func TestNotifyRearm(t *testing.T) {
	f := newNotifyFixture(t)
	ctx := context.Background()
	user := uuid.NewString()
	now := time.Now().UTC()
	f.record(t, calls(user, 850, now))
	if fired := f.arm(t); len(fired) != 1 {
		t.Fatalf("arming at 850 fired %v; want the 80 %% event", fired)
	}
	f.take()
	own := notify.Rule{ID: notify.NewID(), UserID: user, Kind: notify.KindCalls, Value: 840, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := f.store.CreateRule(ctx, own); err != nil {
		t.Fatal(err)
	}
	f.record(t, calls(user, 1, now))
	if fired, pending := f.take(); len(fired) != 0 || pending != 1 {
		t.Fatalf("after a rule change: fired %v, %d pending; want the period pending", fired, pending)
	}
	fired := f.arm(t)
	got := f.outbox(t, user)
	if len(fired) != 1 || len(got) != 2 || got[1].ID != fired[0] || got[1].Data.Rule.ID != own.ID || got[1].Data.UsedCalls != 851 {
		t.Fatalf("re-arming fired %v, outbox %+v; want the new rule's event alone at 851", fired, got)
	}

	// A plan rule changed: the epoch moves, the next batch re-arms; the
	// 80 % rule, now 50 %, fired this period already and stays fired.
	rules, err := f.store.Rules(ctx, notify.RuleFilter{PlanID: ptr(usage.PlanFree)})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rules, func(r notify.Rule) bool { return r.Value == 80 })
	rules[i].Value = 50
	if err := f.store.UpdateRule(ctx, rules[i]); err != nil {
		t.Fatal(err)
	}
	f.record(t, calls(user, 1, now))
	if _, pending := f.take(); pending != 1 {
		t.Fatalf("after a plan rule change: %d pending; want the period pending", pending)
	}
	if fired := f.arm(t); len(fired) != 0 || len(f.outbox(t, user)) != 2 {
		t.Errorf("re-arming after the plan rule change fired %v; want nothing (it fired this period)", fired)
	}
}
