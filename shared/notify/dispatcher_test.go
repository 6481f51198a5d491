package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

// fakeDeliveries is a DeliveryStore of one event and its deliveries, in
// memory, as the real one judges leases.
type fakeDeliveries struct {
	mu        sync.Mutex
	event     notify.Event
	endpoints map[string]*notify.Endpoint
	d         map[string]*notify.Delivery
	leased    map[string]time.Time
	finished  []notify.Finished
	published bool
	// overdue is what Overdue answers.
	overdue []string
}

func (f *fakeDeliveries) FanOut(_ context.Context, id string, now time.Time) (*notify.Event, bool, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != f.event.ID {
		return nil, false, nil, usage.Errorf(usage.CodeNotFound, "no event")
	}
	var ids []string
	for _, e := range f.endpoints {
		if _, ok := f.d[e.ID]; !ok && e.Enabled {
			f.d[e.ID] = &notify.Delivery{ID: e.ID, EventID: id, EndpointID: e.ID, Status: notify.StatusPending, NextAttemptAt: &now}
		}
		if d := f.d[e.ID]; d != nil && d.Status == notify.StatusPending {
			ids = append(ids, d.ID)
		}
	}
	ev := f.event
	return &ev, f.published, ids, nil
}

func (f *fakeDeliveries) MarkPublished(context.Context, string, time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = true
	return nil
}

func (f *fakeDeliveries) Waiting(context.Context, time.Time, bool, int) ([]string, error) {
	return nil, nil
}
func (f *fakeDeliveries) Overdue(context.Context, time.Time, int) ([]string, error) {
	return f.overdue, nil
}

func (f *fakeDeliveries) Lease(_ context.Context, id string, now time.Time, leaseFor time.Duration) (*notify.Lease, notify.LeaseState, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.d[id]
	switch {
	case d == nil || d.Status != notify.StatusPending:
		return nil, notify.Done, time.Time{}, nil
	case d.NextAttemptAt != nil && d.NextAttemptAt.After(now):
		return nil, notify.NotDue, *d.NextAttemptAt, nil
	case f.leased[id].After(now):
		return nil, notify.Busy, time.Time{}, nil
	}
	f.leased[id] = now.Add(leaseFor)
	d.Attempts++
	return &notify.Lease{Delivery: *d, Endpoint: *f.endpoints[d.EndpointID], Event: f.event, Attempt: d.Attempts}, notify.Leased, time.Time{}, nil
}

func (f *fakeDeliveries) Finish(_ context.Context, fin notify.Finished) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finished = append(f.finished, fin)
	d := f.d[fin.DeliveryID]
	d.Status, d.NextAttemptAt, d.RetryStep = fin.Status, fin.NextAttemptAt, fin.RetryStep
	delete(f.leased, fin.DeliveryID)
	e := f.endpoints[fin.EndpointID]
	if fin.Attempt.Outcome == notify.OutcomeDelivered {
		e.FailingSince = nil
		return false, nil
	}
	if e.FailingSince == nil {
		at := fin.Attempt.At
		e.FailingSince = &at
	}
	if e.Enabled && !e.FailingSince.After(fin.DisableBefore) {
		e.Enabled = false
		return true, nil
	}
	return false, nil
}

// sender answers with outcomes in turn, then delivered.
type sender struct {
	mu       sync.Mutex
	outcomes []string
	got      []notify.Request
}

func (s *sender) Send(_ context.Context, r notify.Request) notify.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
	o := notify.OutcomeDelivered
	if len(s.outcomes) > 0 {
		o, s.outcomes = s.outcomes[0], s.outcomes[1:]
	}
	code := 200
	if o != notify.OutcomeDelivered {
		code = 503
	}
	return notify.Result{Outcome: o, StatusCode: code, Answer: o}
}

type msgs struct{ sent []notify.Message }

func (m *msgs) Send(_ context.Context, ms []notify.Message) error {
	m.sent = append(m.sent, ms...)
	return nil
}

type bus struct{ got []notify.Event }

func (b *bus) Publish(_ context.Context, e notify.Event) error { b.got = append(b.got, e); return nil }

func newDispatch(outcomes ...string) (*notify.Dispatcher, *fakeDeliveries, *sender, *msgs, *bus, *time.Time) {
	now := t0
	store := &fakeDeliveries{event: notify.Event{ID: "ev", Type: notify.EventThreshold, At: t0, Data: json.RawMessage(`{}`)},
		endpoints: map[string]*notify.Endpoint{"ep": {ID: "ep", URL: "https://a.example.com/", Secret: "whsec_x", Enabled: true}},
		d:         map[string]*notify.Delivery{}, leased: map[string]time.Time{}}
	s, q, b := &sender{outcomes: outcomes}, &msgs{}, &bus{}
	d, err := notify.NewDispatcher(notify.DispatcherConfig{Store: store, Sender: s, Queue: q, Bus: b, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NewID: func() string { return "disabled-ev" }})
	if err != nil {
		panic(err) // the configuration above is valid
	}
	return d, store, s, q, b, &now
}

// TestNewDispatcher: a dispatcher is made only from a store, a sender, a
// clock and settings it can run with, its defaults filled in; each
// refusal is CodeInvalid and says what is wrong.
func TestNewDispatcher(t *testing.T) {
	ok := notify.DispatcherConfig{Store: &fakeDeliveries{}, Sender: &sender{}, Now: time.Now}
	d, err := notify.NewDispatcher(ok)
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Config(); c.DisableAfter != notify.DefaultDisableAfter || c.Workers != notify.DefaultDispatchWorkers ||
		len(c.Schedule) != len(notify.DefaultSchedule) || c.Logger == nil || c.NewID == nil {
		t.Errorf("defaults: %+v", c)
	}
	for _, tt := range []struct {
		name string
		edit func(*notify.DispatcherConfig)
		want string
	}{
		{"no store", func(c *notify.DispatcherConfig) { c.Store = nil }, "a delivery store is required"},
		{"no sender", func(c *notify.DispatcherConfig) { c.Sender = nil }, "a sender is required"},
		{"no clock", func(c *notify.DispatcherConfig) { c.Now = nil }, "a clock is required"},
		{"negative disable after", func(c *notify.DispatcherConfig) { c.DisableAfter = -time.Hour }, "before disabling an endpoint must be 0"},
		{"negative workers", func(c *notify.DispatcherConfig) { c.Workers = -1 }, "the workers must be 0 (the default, 4) or more, not -1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			d, err := notify.NewDispatcher(c)
			if d != nil || usage.ErrorCode(err) != usage.CodeInvalid || !strings.Contains(usage.ErrorMessage(err), tt.want) {
				t.Errorf("NewDispatcher = %v, %v; want a CodeInvalid error saying %q", d, err, tt.want)
			}
		})
	}
}

// withSchedule returns a dispatcher like d retrying on schedule.
func withSchedule(t *testing.T, d *notify.Dispatcher, schedule notify.Schedule) *notify.Dispatcher {
	t.Helper()
	c := d.Config()
	c.Schedule = schedule
	d, err := notify.NewDispatcher(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDispatcherRetrySchedule: a failure waits the schedule's next step,
// a message received early waits the rest, the schedule's end fails the
// delivery for good; the bus gets the event once.
func TestDispatcherRetrySchedule(t *testing.T) {
	d, store, s, q, b, now := newDispatch(notify.OutcomeFailed, notify.OutcomeFailed, notify.OutcomeFailed)
	d = withSchedule(t, d, notify.Schedule{5 * time.Second, time.Minute})
	ctx := context.Background()
	if err := d.HandleEvent(ctx, "ev"); err != nil {
		t.Fatal(err)
	}
	if len(q.sent) != 1 || q.sent[0] != (notify.Message{DeliveryID: "ep", Delay: 5 * time.Second}) || len(b.got) != 1 {
		t.Fatalf("queued %+v, bus %d; want the retry in 5 s and the event on the bus", q.sent, len(b.got))
	}
	if wait, _ := d.Deliver(ctx, "ep"); wait != 5*time.Second || len(s.got) != 1 {
		t.Errorf("received early: wait %s after %d sends; want 5s, no attempt", wait, len(s.got))
	}
	*now = now.Add(5 * time.Second)
	if wait, _ := d.Deliver(ctx, "ep"); wait != time.Minute {
		t.Errorf("second failure: wait %s; want 1m", wait)
	}
	*now = now.Add(time.Minute)
	if wait, _ := d.Deliver(ctx, "ep"); wait != 0 || store.d["ep"].Status != notify.StatusFailed {
		t.Errorf("third failure: wait %s, %+v; want failed for good", wait, store.d["ep"])
	}
	if err := d.HandleEvent(ctx, "ev"); err != nil || len(b.got) != 1 || len(s.got) != 3 {
		t.Errorf("again: %v, bus %d, sends %d; want nothing more", err, len(b.got), len(s.got))
	}
	for i, f := range store.finished {
		if f.Attempt.Attempt != i+1 {
			t.Errorf("attempt %d numbered %d", i+1, f.Attempt.Attempt)
		}
	}
}

// TestDispatcherRefusedAndDisabled: a refused address is not retried; a
// failure past DisableAfter disables the endpoint and raises its event.
func TestDispatcherRefusedAndDisabled(t *testing.T) {
	d, store, _, q, _, _ := newDispatch(notify.OutcomeRefused)
	ctx := context.Background()
	if err := d.HandleEvent(ctx, "ev"); err != nil {
		t.Fatal(err)
	}
	if store.d["ep"].Status != notify.StatusFailed || len(q.sent) != 0 {
		t.Fatalf("refused: %+v, queued %+v; want failed, no retry", store.d["ep"], q.sent)
	}

	d, store, _, q, _, now := newDispatch(notify.OutcomeFailed, notify.OutcomeFailed)
	long := now.Add(-notify.DefaultDisableAfter)
	store.endpoints["ep"].FailingSince = &long
	if err := d.HandleEvent(ctx, "ev"); err != nil {
		t.Fatal(err)
	}
	if store.endpoints["ep"].Enabled || len(q.sent) != 2 || q.sent[0] != (notify.Message{EventID: "disabled-ev"}) {
		t.Errorf("endpoint %+v, queued %+v; want it disabled and its event queued", store.endpoints["ep"], q.sent)
	}
}

// TestDispatcherSignsWithBothSecrets: during a rotation's overlap a
// request carries both secrets, the id msg_<event> and the attempt's time.
func TestDispatcherSignsWithBothSecrets(t *testing.T) {
	d, store, s, _, _, now := newDispatch()
	until := now.Add(time.Hour)
	store.endpoints["ep"].PreviousSecret, store.endpoints["ep"].PreviousExpiresAt = "whsec_old", &until
	if err := d.HandleEvent(context.Background(), "ev"); err != nil {
		t.Fatal(err)
	}
	r := s.got[0]
	if len(r.Secrets) != 2 || r.Secrets[0] != "whsec_x" || r.MessageID != "msg_ev" || !r.Timestamp.Equal(*now) {
		t.Errorf("request %+v", r)
	}
}

// hanging is a sender whose endpoints hang: each attempt waits until
// workers attempts are in flight at once, or for wait.
type hanging struct {
	mu             sync.Mutex
	inFlight, most int
	workers        int
	wait           time.Duration
	all            chan struct{}
	closed         bool
}

func (h *hanging) Send(ctx context.Context, _ notify.Request) notify.Result {
	h.mu.Lock()
	h.inFlight++
	h.most = max(h.most, h.inFlight)
	if h.inFlight >= h.workers && !h.closed {
		h.closed = true
		close(h.all)
	}
	h.mu.Unlock()
	select {
	case <-h.all:
	case <-time.After(h.wait):
	case <-ctx.Done():
	}
	h.mu.Lock()
	h.inFlight--
	h.mu.Unlock()
	return notify.Result{Outcome: notify.OutcomeFailed, Answer: "no answer within 15s"}
}

// TestDispatcherSweepSideBySide: the sweep attempts its overdue deliveries
// side by side, Workers at once, as a fan-out does, so that one tenant's
// hanging endpoints (15 s each) do not hold every other overdue delivery
// behind them one after the other.
func TestDispatcherSweepSideBySide(t *testing.T) {
	d, store, _, _, _, now := newDispatch()
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		store.endpoints[id] = &notify.Endpoint{ID: id, URL: "https://" + id + ".example.com/", Secret: "whsec_x", Enabled: true}
		at := now.Add(-time.Hour)
		store.d[id] = &notify.Delivery{ID: id, EventID: "ev", EndpointID: id, Status: notify.StatusPending, NextAttemptAt: &at}
		store.overdue = append(store.overdue, id)
	}
	c := d.Config()
	h := &hanging{workers: c.Workers, wait: 300 * time.Millisecond, all: make(chan struct{})}
	c.Sender = h
	d, err := notify.NewDispatcher(c)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := d.Sweep(context.Background(), 30*time.Second, 100)
	if err != nil || rep.Deliveries != 8 {
		t.Fatalf("Sweep = %+v, %v; want 8 deliveries attempted", rep, err)
	}
	if h.most != c.Workers {
		t.Errorf("at most %d attempts at once; want %d (Workers)", h.most, c.Workers)
	}
}

// TestDispatcherNoAttemptPastDeadline: an attempt starts only when it can
// end and be recorded before the invocation's deadline; else the delivery
// is neither leased nor sent, and comes back in a second (a queue message
// for a fan-out), for an invocation with the time to attempt it.
func TestDispatcherNoAttemptPastDeadline(t *testing.T) {
	for _, tt := range []struct {
		name  string
		left  time.Duration
		sends int
	}{
		{"time for an attempt", time.Minute, 1},
		{"less than an attempt and its writes", 20 * time.Second, 0},
		{"nearly out", time.Second, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, store, s, q, _, _ := newDispatch()
			ctx, cancel := context.WithTimeout(context.Background(), tt.left)
			defer cancel()
			if err := d.HandleEvent(ctx, "ev"); err != nil {
				t.Fatal(err)
			}
			if len(s.got) != tt.sends {
				t.Fatalf("%d sends; want %d", len(s.got), tt.sends)
			}
			if tt.sends > 0 {
				return
			}
			if store.d["ep"].Attempts != 0 || len(store.finished) != 0 {
				t.Errorf("delivery %+v, finished %+v; want it neither leased nor finished", store.d["ep"], store.finished)
			}
			if len(q.sent) != 1 || q.sent[0] != (notify.Message{DeliveryID: "ep", Delay: time.Second}) {
				t.Errorf("queued %+v; want the delivery back in a second", q.sent)
			}
			if wait, err := d.Deliver(ctx, "ep"); err != nil || wait != time.Second || len(s.got) != 0 {
				t.Errorf("Deliver = %s, %v after %d sends; want 1s, no send", wait, err, len(s.got))
			}
		})
	}
}
