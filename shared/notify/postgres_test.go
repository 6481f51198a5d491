package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
	"github.com/nexus/usage/shared/webhook"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// queue records what the dispatcher queues.
type queue struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (q *queue) Send(_ context.Context, msgs []notify.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, msgs...)
	return nil
}

func (q *queue) take() []notify.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.msgs
	q.msgs = nil
	return m
}

// receiver is a webhook endpoint answering with the statuses of answers,
// then 200; it verifies every request's signature with secret.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	answers []int
	secret  string
	got     []http.Header
	bodies  []string
	bad     atomic.Int32
	clk     *testkit.Clock
}

func newReceiver(t *testing.T, clk *testkit.Clock, answers ...int) *receiver {
	r := &receiver{t: t, answers: answers, clk: clk}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := webhook.Verify(r.secret, req.Header, body, r.clk.Now(), 0); err != nil {
			r.bad.Add(1)
			t.Errorf("received a webhook whose signature does not verify: %v", err)
		}
		r.got = append(r.got, req.Header.Clone())
		r.bodies = append(r.bodies, string(body))
		status := http.StatusOK
		if len(r.answers) > 0 {
			status, r.answers = r.answers[0], r.answers[1:]
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("answer " + http.StatusText(status)))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }

// stack is the dispatcher and the armer over a test database, with the
// record path that raises the events.
type stack struct {
	db      *postgres.DB
	clk     *testkit.Clock
	store   *postgres.NotifyStore
	events  *postgres.EventStore
	service *notify.Service
	queue   *queue
	d       *notify.Dispatcher
	armer   *notify.Armer
}

func newStack(t *testing.T, allowPrivate bool) *stack {
	t.Helper()
	db := pgtest.NewDB(t)
	clk := testkit.NewClock(time.Now().UTC().Truncate(time.Second))
	db.Now = clk.Now
	s := &stack{db: db, clk: clk, store: postgres.NewNotifyStore(db), events: postgres.NewEventStore(db), queue: &queue{}}
	s.service = &notify.Service{Store: s.store, Queue: s.queue, AllowPrivate: true, Now: clk.Now}
	d, err := notify.NewDispatcher(notify.DispatcherConfig{Store: s.store, Sender: webhook.New(webhook.Options{AllowPrivate: allowPrivate}),
		Queue: s.queue, Now: clk.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s.d = d
	s.armer = &notify.Armer{Store: s.store, Now: clk.Now}
	return s
}

// endpoint makes an endpoint of user ("" for the platform's) at url and
// gives r its secret.
func (s *stack) endpoint(t *testing.T, user, url string, r *receiver) *notify.Endpoint {
	t.Helper()
	e, err := s.service.CreateEndpoint(context.Background(), notify.Owner{Admin: true}, user, notify.EndpointInput{URL: &url})
	if err != nil {
		t.Fatal(err)
	}
	if r != nil {
		r.secret = e.Secret
	}
	return e
}

// cross records calls of a new free user until its 80 % event is raised
// (arming it first), without queueing anything (the record function's
// after-commit step never ran), and returns the user and the event.
func (s *stack) cross(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	user := uuid.NewString()
	if _, err := s.events.RecordBatch(ctx, s.clk.Now(), calls(user, 10), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.armer.ArmPending(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.events.RecordBatch(ctx, s.clk.Now(), calls(user, 800), nil); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := s.db.Pool.QueryRow(ctx, `SELECT event_id::text FROM eco_notify_outbox WHERE user_id = $1::uuid`, user).Scan(&id); err != nil {
		t.Fatalf("no event raised: %v", err)
	}
	return user, id
}

// handle handles the event's queue message: fans it out and attempts its
// deliveries.
func (s *stack) handle(t *testing.T, eventID string) {
	t.Helper()
	if err := s.d.HandleEvent(context.Background(), eventID); err != nil {
		t.Fatalf("HandleEvent(%s): %v", eventID, err)
	}
}

// deliver handles a delivery's queue message: attempts it if due.
func (s *stack) deliver(t *testing.T, deliveryID string) time.Duration {
	t.Helper()
	wait, err := s.d.Deliver(context.Background(), deliveryID)
	if err != nil {
		t.Fatalf("Deliver(%s): %v", deliveryID, err)
	}
	return wait
}

// sweepReport is what a minute's sweep did.
type sweepReport struct{ Armed, Fired, Events, Deliveries int }

// sweep is the deliver function's minute: arm the pending periods, fire
// what the armings crossed and hand those events to the dispatcher, then
// the dispatcher's sweep past a 30 s grace.
func (s *stack) sweep(ctx context.Context) (sweepReport, error) {
	var rep sweepReport
	fired, n, err := s.armer.ArmPending(ctx, notify.DefaultArmBatch)
	if err != nil {
		return rep, err
	}
	refired, err := s.armer.Refire(ctx)
	if err != nil {
		return rep, err
	}
	fired = append(fired, refired...)
	rep.Armed, rep.Fired = n, len(fired)
	for _, id := range fired {
		if err := s.d.HandleEvent(ctx, id); err != nil {
			return rep, err
		}
	}
	d, err := s.d.Sweep(ctx, 30*time.Second, 100)
	rep.Events, rep.Deliveries = d.Events, d.Deliveries
	return rep, err
}

func calls(user string, n int) []usage.Event {
	out := make([]usage.Event, n)
	for i := range out {
		id, _ := uuid.NewV7()
		out[i] = usage.Event{Version: 1, EventID: id.String(), UserID: user, Endpoint: "GET /v1/games", Method: "GET",
			StatusCode: 200, Quantity: 1, OccurredAt: time.Now().UTC()}
	}
	return out
}

func (s *stack) deliveries(t *testing.T, f notify.DeliveryFilter) []notify.Delivery {
	t.Helper()
	d, err := s.store.Deliveries(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDispatcherRetriesUntilRecovered: an endpoint that answers 503 twice
// and then 200 gets the event three times, with the same webhook-id and
// body, at the schedule's times (5 s, then 5 min after): the retry is
// queued with its delay, Deliver says how long until the next attempt is
// due (the queue message's visibility), a delivery asked for early waits
// again without an attempt, and the log holds the three attempts; the
// endpoint's failure streak ends with the delivery.
func TestDispatcherRetriesUntilRecovered(t *testing.T) {
	s := newStack(t, true)
	ctx := context.Background()
	r := newReceiver(t, s.clk, 503, 503)
	s.endpoint(t, "", r.srv.URL, r)
	_, eventID := s.cross(t)

	if err := s.d.HandleEvent(ctx, eventID); err != nil {
		t.Fatalf("HandleEvent: %v", err)
	}
	retry := s.queue.take()
	if r.count() != 1 || len(retry) != 1 || retry[0].DeliveryID == "" || retry[0].Delay != 5*time.Second {
		t.Fatalf("after the first attempt: %d requests, queued %+v; want 1 and the delivery's retry in 5 s", r.count(), retry)
	}
	// Received before it is due: hidden until then, no attempt.
	if wait, err := s.d.Deliver(ctx, retry[0].DeliveryID); err != nil || wait != 5*time.Second || r.count() != 1 {
		t.Fatalf("early receive: wait %v, %v, %d requests; want it hidden 5 s, no attempt", wait, err, r.count())
	}
	s.clk.Add(5 * time.Second)
	if wait, err := s.d.Deliver(ctx, retry[0].DeliveryID); err != nil || wait != 5*time.Minute || r.count() != 2 {
		t.Fatalf("second attempt: wait %v, %v, %d requests; want it failed and hidden 5 min", wait, err, r.count())
	}
	s.clk.Add(5 * time.Minute)
	if wait, err := s.d.Deliver(ctx, retry[0].DeliveryID); err != nil || wait != 0 || r.count() != 3 {
		t.Fatalf("third attempt: wait %v, %v, %d requests; want it delivered", wait, err, r.count())
	}
	ds := s.deliveries(t, notify.DeliveryFilter{})
	if len(ds) != 1 || ds[0].Status != notify.StatusDelivered || ds[0].Attempts != 3 || len(ds[0].Log) != 3 {
		t.Fatalf("deliveries %+v; want one, delivered at the third attempt", ds)
	}
	for i, want := range []int{503, 503, 200} {
		if a := ds[0].Log[i]; a.StatusCode == nil || *a.StatusCode != want || a.Attempt != i+1 {
			t.Errorf("attempt %d: %+v; want status %d", i+1, a, want)
		}
	}
	if !strings.HasPrefix(ds[0].Log[0].Answer, "answer Service Unavailable") || ds[0].Log[0].Outcome != notify.OutcomeFailed {
		t.Errorf("first attempt's log %+v", ds[0].Log[0])
	}
	for i := 1; i < 3; i++ {
		if r.got[i].Get(webhook.HeaderID) != r.got[0].Get(webhook.HeaderID) || r.bodies[i] != r.bodies[0] {
			t.Errorf("attempt %d sent webhook-id %s and body %s; want the first's", i+1, r.got[i].Get(webhook.HeaderID), r.bodies[i])
		}
	}
	if id := r.got[0].Get(webhook.HeaderID); id != "msg_"+eventID {
		t.Errorf("webhook-id %s; want msg_%s", id, eventID)
	}
	var body struct {
		Type string          `json:"type"`
		Data notify.Crossing `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.bodies[0]), &body); err != nil || body.Type != notify.EventThreshold ||
		body.Data.ThresholdCalls != 800 || body.Data.UsedCalls != 810 {
		t.Errorf("body %s (%v); want the 80 %% event at 810 calls", r.bodies[0], err)
	}
	eps, _ := s.store.Endpoints(ctx, notify.EndpointFilter{})
	if eps[0].FailingSince != nil {
		t.Errorf("endpoint failing since %v after a delivery; want nil", eps[0].FailingSince)
	}
}

// TestDispatcherRedeliveredMessagesOnce: the event's message delivered
// twice at once and again later, and its delivery's message redelivered
// after the delivery succeeded, send the webhook once: one delivery per
// endpoint (created once), leased by one attempt at a time.
func TestDispatcherRedeliveredMessagesOnce(t *testing.T) {
	s := newStack(t, true)
	ctx := context.Background()
	r := newReceiver(t, s.clk)
	s.endpoint(t, "", r.srv.URL, r)
	_, eventID := s.cross(t)
	msg := notify.Message{EventID: eventID}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.d.HandleEvent(ctx, msg.EventID); err != nil {
				t.Errorf("redelivered event message: %v", err)
			}
		}()
	}
	wg.Wait()
	s.handle(t, msg.EventID)
	ds := s.deliveries(t, notify.DeliveryFilter{})
	if r.count() != 1 || len(ds) != 1 || ds[0].Attempts != 1 {
		t.Fatalf("9 copies of the event's message: %d requests, deliveries %+v; want one request, one delivery, one attempt", r.count(), ds)
	}
	if wait, err := s.d.Deliver(ctx, ds[0].ID); err != nil || wait != 0 || r.count() != 1 {
		t.Errorf("the delivered delivery's message again: wait %v, %v, %d requests; want it acknowledged, nothing sent", wait, err, r.count())
	}
}

// TestDispatcherAfterCrash: the record transaction committed the counters
// and the event, and the record function died before it queued anything:
// the minute's sweep finds the event (older than its grace) and delivers
// it, once; the next sweep finds nothing to do. A period the record path
// left pending (no arming ran) is armed by the sweep, and its crossing
// delivered too.
func TestDispatcherAfterCrash(t *testing.T) {
	s := newStack(t, true)
	ctx := context.Background()
	r := newReceiver(t, s.clk)
	s.endpoint(t, "", r.srv.URL, r)
	_, eventID := s.cross(t)
	// A second user's calls, never armed: only pending days.
	other := uuid.NewString()
	if _, err := s.events.RecordBatch(ctx, s.clk.Now(), calls(other, 1000), nil); err != nil {
		t.Fatal(err)
	}
	rep, err := s.sweep(ctx)
	if err != nil || rep.Armed != 1 || rep.Fired != 2 || r.count() != 2 {
		t.Fatalf("first sweep: %+v, %v, %d requests; want the pending user armed, its 80 %% and 100 %% events fired and delivered", rep, err, r.count())
	}
	s.clk.Add(31 * time.Second)
	rep, err = s.sweep(ctx)
	if err != nil || rep.Events != 1 || r.count() != 3 {
		t.Fatalf("sweep past the grace: %+v, %v, %d requests; want the crashed batch's event delivered", rep, err, r.count())
	}
	s.clk.Add(time.Minute)
	rep, err = s.sweep(ctx)
	if err != nil || rep != (sweepReport{}) || r.count() != 3 {
		t.Fatalf("next sweep: %+v, %v, %d requests; want nothing to do", rep, err, r.count())
	}
	ids := map[string]bool{}
	for _, h := range r.got {
		ids[h.Get(webhook.HeaderID)] = true
	}
	if len(ids) != 3 || !ids["msg_"+eventID] {
		t.Errorf("webhook-ids %v; want three events, the crashed batch's among them", ids)
	}
}

// TestDispatcherReplay: a delivery that failed for good is replayed by its
// owner: one more attempt at once, with the same webhook-id, logged as a
// replay and not retried; an endpoint's failed deliveries since a time
// are replayed together.
func TestDispatcherReplay(t *testing.T) {
	s := newStack(t, true)
	ctx := context.Background()
	r := newReceiver(t, s.clk, 500)
	user, eventID := s.cross(t)
	e := s.endpoint(t, user, r.srv.URL, r)
	s.d = withSchedule(t, s.d, notify.Schedule{}) // no retries: the first failure is final
	s.handle(t, eventID)
	ds := s.deliveries(t, notify.DeliveryFilter{})
	if len(ds) != 1 || ds[0].Status != notify.StatusFailed || r.count() != 1 || len(s.queue.take()) != 0 {
		t.Fatalf("deliveries %+v after one failure without retries", ds)
	}
	owner := notify.Owner{UserID: user}
	if _, err := s.service.Replay(ctx, notify.Owner{UserID: uuid.NewString()}, notify.ReplayRequest{DeliveryID: ds[0].ID}); usage.ErrorCode(err) != usage.CodeNotFound {
		t.Errorf("another user's replay: %v; want not found", err)
	}
	n, err := s.service.Replay(ctx, owner, notify.ReplayRequest{DeliveryID: ds[0].ID})
	queued := s.queue.take()
	if err != nil || n != 1 || len(queued) != 1 || queued[0].DeliveryID != ds[0].ID {
		t.Fatalf("replay: %d, %v, queued %+v", n, err, queued)
	}
	s.deliver(t, queued[0].DeliveryID)
	ds = s.deliveries(t, notify.DeliveryFilter{EndpointID: &e.ID})
	if r.count() != 2 || ds[0].Status != notify.StatusDelivered || ds[0].Replays != 1 || len(ds[0].Log) != 2 || !ds[0].Log[1].Replay {
		t.Fatalf("after the replay: %d requests, %+v; want it delivered by a replayed attempt", r.count(), ds[0])
	}
	if r.got[1].Get(webhook.HeaderID) != r.got[0].Get(webhook.HeaderID) || r.bodies[1] != r.bodies[0] {
		t.Error("the replay sent another webhook-id or body")
	}
	if _, err := s.service.Replay(ctx, owner, notify.ReplayRequest{DeliveryID: ds[0].ID}); err != nil {
		t.Errorf("replaying a delivered delivery: %v", err)
	}
	s.queue.take()
	// All failed since a time: a second failed delivery of the endpoint.
	_, event2 := s.crossFor(t, user)
	r.mu.Lock()
	r.answers = []int{500}
	r.mu.Unlock()
	s.handle(t, event2)
	n, err = s.service.Replay(ctx, owner, notify.ReplayRequest{EndpointID: e.ID, Since: s.clk.Now().Add(-time.Hour)})
	if err != nil || n != 1 {
		t.Fatalf("replay the endpoint's failed deliveries: %d, %v; want 1", n, err)
	}
	for _, m := range s.queue.take() {
		s.deliver(t, m.DeliveryID)
	}
	if failed := s.deliveries(t, notify.DeliveryFilter{EndpointID: &e.ID, Status: ptr(notify.StatusFailed)}); len(failed) != 0 {
		t.Errorf("failed deliveries after the replay: %+v", failed)
	}
}

// TestDispatcherAttemptLogBounded: a delivery replayed again and again
// keeps and shows its latest notify.LoggedAttempts attempts, while
// Attempts counts them all: its log cannot outgrow the table or an
// answer of the API.
func TestDispatcherAttemptLogBounded(t *testing.T) {
	s := newStack(t, true)
	ctx := context.Background()
	r := newReceiver(t, s.clk, 500)
	user, eventID := s.cross(t)
	s.endpoint(t, user, r.srv.URL, r)
	s.d = withSchedule(t, s.d, notify.Schedule{})
	s.handle(t, eventID)
	id := s.deliveries(t, notify.DeliveryFilter{})[0].ID
	const replays = notify.LoggedAttempts + 5
	for range replays {
		if _, err := s.service.Replay(ctx, notify.Owner{UserID: user}, notify.ReplayRequest{DeliveryID: id}); err != nil {
			t.Fatal(err)
		}
		for _, m := range s.queue.take() {
			s.deliver(t, m.DeliveryID)
		}
	}
	d := s.deliveries(t, notify.DeliveryFilter{})[0]
	if d.Attempts != 1+replays || r.count() != 1+replays {
		t.Fatalf("%d attempts, %d requests; want %d", d.Attempts, r.count(), 1+replays)
	}
	if len(d.Log) != notify.LoggedAttempts || d.Log[0].Attempt != 1+replays-notify.LoggedAttempts+1 || d.Log[len(d.Log)-1].Attempt != 1+replays {
		t.Errorf("log of %d attempts, %d to %d; want the latest %d, %d to %d", len(d.Log), d.Log[0].Attempt, d.Log[len(d.Log)-1].Attempt,
			notify.LoggedAttempts, 1+replays-notify.LoggedAttempts+1, 1+replays)
	}
	var kept int
	if err := s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_webhook_attempts WHERE delivery_id = $1::uuid`, id).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != notify.LoggedAttempts {
		t.Errorf("%d attempts kept; want %d", kept, notify.LoggedAttempts)
	}
}

// crossFor raises user's 100 % event (its 80 % one was raised before).
func (s *stack) crossFor(t *testing.T, user string) (string, string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.events.RecordBatch(ctx, s.clk.Now(), calls(user, 200), nil); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := s.db.Pool.QueryRow(ctx, `SELECT event_id::text FROM eco_notify_outbox WHERE user_id = $1::uuid
		AND (data->>'threshold_percent')::int = 100`, user).Scan(&id); err != nil {
		t.Fatalf("no 100 %% event: %v", err)
	}
	return user, id
}

// TestDispatcherPrivateAddressRefused: outside the local stack an endpoint
// at a private, loopback or link-local address is refused when it is
// made, and an endpoint whose address became one (a host name resolved or
// rebound there) is refused at the connection: the attempt is logged as
// refused, not retried, and nothing reaches the address.
func TestDispatcherPrivateAddressRefused(t *testing.T) {
	s := newStack(t, false)
	ctx := context.Background()
	strict := &notify.Service{Store: s.store, Now: s.clk.Now}
	for _, u := range []string{"https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://169.254.169.254/latest/meta-data",
		"https://[::1]/hook", "https://localhost/hook", "http://hooks.example.com/"} {
		if _, err := strict.CreateEndpoint(ctx, notify.Owner{Admin: true}, "", notify.EndpointInput{URL: &u}); usage.ErrorField(err) != "url" {
			t.Errorf("endpoint %s: %v; want refused naming url", u, err)
		}
	}
	r := newReceiver(t, s.clk)
	s.endpoint(t, "", r.srv.URL, r) // made as the local stack may; sent as AWS does
	_, eventID := s.cross(t)
	s.handle(t, eventID)
	ds := s.deliveries(t, notify.DeliveryFilter{})
	if r.count() != 0 || len(ds) != 1 || ds[0].Status != notify.StatusFailed || len(ds[0].Log) != 1 ||
		ds[0].Log[0].Outcome != notify.OutcomeRefused || !strings.Contains(ds[0].Log[0].Answer, "127.0.0.1") || len(s.queue.take()) != 0 {
		t.Fatalf("%d requests reached the loopback receiver; deliveries %+v; want none, the attempt refused and not retried", r.count(), ds)
	}
}

// TestDispatcherDisablesFailingEndpoint: an endpoint that has failed every
// attempt for ENDPOINT_DISABLE_AFTER is disabled at its next failure, with
// a webhook.endpoint.disabled event raised once, which reaches the
// platform's endpoint; its deliveries stop.
func TestDispatcherDisablesFailingEndpoint(t *testing.T) {
	s := newStack(t, true)
	ctx := context.Background()
	dead := newReceiver(t, s.clk, 500, 500, 500, 500)
	platform := newReceiver(t, s.clk)
	user, eventID := s.cross(t)
	e := s.endpoint(t, user, dead.srv.URL, dead)
	s.endpoint(t, "", platform.srv.URL, platform)
	s.handle(t, eventID)
	s.queue.take()
	// Failing for five days: the next failure disables it.
	s.clk.Add(notify.DefaultDisableAfter)
	_, event2 := s.crossFor(t, user)
	s.handle(t, event2)
	eps, err := s.store.Endpoint(ctx, e.ID)
	if err != nil || eps.Enabled || !strings.HasPrefix(eps.DisabledReason, "every delivery failed since") {
		t.Fatalf("endpoint %+v, %v; want it disabled", eps, err)
	}
	msgs := s.queue.take()
	var disabled string
	for _, m := range msgs {
		if m.EventID != "" {
			disabled = m.EventID
		}
	}
	if disabled == "" {
		t.Fatalf("queued %+v; want the endpoint's disabled event", msgs)
	}
	before := platform.count()
	s.handle(t, disabled)
	if platform.count() != before+1 || !strings.Contains(platform.bodies[before], `"type":"webhook.endpoint.disabled"`) ||
		!strings.Contains(platform.bodies[before], e.ID) {
		t.Fatalf("platform endpoint got %v; want the disabled event", platform.bodies[before:])
	}
	var n int
	if err := s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_notify_outbox WHERE event_type = 'webhook.endpoint.disabled'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d disabled events, %v; want 1", n, err)
	}
	// Its pending retries end without an attempt.
	for _, m := range msgs {
		if m.DeliveryID != "" {
			s.clk.Add(time.Hour)
			s.deliver(t, m.DeliveryID)
		}
	}
	if dead.count() != 2 {
		t.Errorf("the disabled endpoint got %d requests; want the 2 before it was disabled", dead.count())
	}
}

// TestEndpointChangesNotLost: changes of one endpoint made at the same
// time are all kept. Two rotations at once each answer a secret that signs
// afterwards (the later one's as the secret, the earlier one's as the
// previous); an owner's change made while a delivery's outcome disables
// the endpoint leaves it disabled. Before, each change read the endpoint,
// then wrote every field back: the first rotation's secret was
// overwritten and never signed, and a change re-enabled an endpoint that
// the dispatcher had just disabled.
func TestEndpointChangesNotLost(t *testing.T) {
	s := newStack(t, true)
	ctx := context.Background()
	admin := notify.Owner{Admin: true}
	e := s.endpoint(t, "", "https://hooks.example.com/x", nil)
	for round := range 20 {
		var (
			wg  sync.WaitGroup
			got [2]*notify.Endpoint
			ers [2]error
		)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], ers[i] = s.service.RotateSecret(ctx, admin, e.ID, time.Hour)
			}()
		}
		wg.Wait()
		if ers[0] != nil || ers[1] != nil {
			t.Fatal(ers)
		}
		now, err := s.store.Endpoint(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range got {
			if g.Secret != now.Secret && g.Secret != now.PreviousSecret {
				t.Fatalf("round %d: rotation %d answered a secret that no longer signs (secret %.12s…, previous %.12s…, answered %.12s…)",
					round, i, now.Secret, now.PreviousSecret, g.Secret)
			}
		}
	}
	// A change of the description while the endpoint is being disabled.
	for round := range 20 {
		if _, err := s.db.Pool.Exec(ctx, `UPDATE eco_webhook_endpoints SET enabled = true, disabled_reason = '', failing_since = NULL WHERE endpoint_id = $1`, e.ID); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			d := fmt.Sprintf("round %d", round)
			if _, err := s.service.UpdateEndpoint(ctx, admin, e.ID, notify.EndpointInput{Description: &d}); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := s.db.Pool.Exec(ctx, `UPDATE eco_webhook_endpoints SET enabled = false, disabled_reason = 'every delivery failed' WHERE endpoint_id = $1`, e.ID); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		now, err := s.store.Endpoint(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if now.Enabled || now.Description != fmt.Sprintf("round %d", round) {
			t.Fatalf("round %d: enabled %v, description %q; want the endpoint disabled and the description changed", round, now.Enabled, now.Description)
		}
	}
}
