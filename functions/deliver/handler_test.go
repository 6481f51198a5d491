package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var testNow = time.Date(2031, 3, 20, 10, 5, 0, 0, time.UTC)

// visibility records the visibility changes of messages, by receipt
// handle.
type visibility struct {
	mu   sync.Mutex
	seen map[string]int32
}

func (v *visibility) ChangeMessageVisibilityBatch(_ context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range in.Entries {
		v.seen[*e.ReceiptHandle] = e.VisibilityTimeout
	}
	return &sqs.ChangeMessageVisibilityBatchOutput{}, nil
}

// message is a message of the notify queue with id id (its receipt
// handle rh-id), received receives times.
func message(id, body string, receives int) events.SQSMessage {
	return events.SQSMessage{MessageId: id, ReceiptHandle: "rh-" + id, Body: body, EventSource: "aws:sqs",
		Attributes: map[string]string{"ApproximateReceiveCount": strconv.Itoa(receives)}}
}

// deliveries is a delivery store whose deliveries are named after what
// becomes of them: "due" (leased; the endpoint answers 200), "failing"
// (leased at its first retry step; the endpoint answers 503), "early" (due
// in 5 s), "far" (due in 20 h), "done", "broken" (the store fails); event
// "e" has no deliveries.
func deliveries() *mock.DeliveryStore {
	return &mock.DeliveryStore{
		FanOutFn: func(_ context.Context, id string, _ time.Time) (*notify.Event, bool, []string, error) {
			if id != "e" {
				return nil, false, nil, usage.Errorf(usage.CodeNotFound, "no such event")
			}
			return &notify.Event{ID: id, Type: notify.EventThreshold}, true, nil, nil
		},
		LeaseFn: func(_ context.Context, id string, now time.Time, _ time.Duration) (*notify.Lease, notify.LeaseState, time.Time, error) {
			l := &notify.Lease{Delivery: notify.Delivery{ID: id}, Endpoint: notify.Endpoint{ID: "ep", URL: "https://hooks.example.com/"},
				Event: notify.Event{ID: "e", Type: notify.EventThreshold, At: now}, Attempt: 1}
			switch id {
			case "due":
				return l, notify.Leased, time.Time{}, nil
			case "failing":
				l.Delivery.RetryStep, l.Attempt = 1, 2
				return l, notify.Leased, time.Time{}, nil
			case "early":
				return nil, notify.NotDue, now.Add(5 * time.Second), nil
			case "far":
				return nil, notify.NotDue, now.Add(20 * time.Hour), nil
			case "done":
				return nil, notify.Done, time.Time{}, nil
			}
			return nil, 0, time.Time{}, errors.New("database down")
		},
		FinishFn: func(context.Context, notify.Finished) (bool, error) { return false, nil },
	}
}

// newHandler is the handler over the stores on testNow, its endpoints
// answering 200.
func newHandler(store notify.DeliveryStore, arm notify.ArmStore, vis VisibilityAPI) *Handler {
	now := func() time.Time { return testNow }
	d, err := notify.NewDispatcher(notify.DispatcherConfig{Store: store, Now: now, Logger: quiet,
		Sender: mock.SenderFn(func(context.Context, notify.Request) notify.Result {
			return notify.Result{Outcome: notify.OutcomeDelivered, StatusCode: 200}
		})})
	if err != nil {
		panic(err) // the configuration above is valid
	}
	return &Handler{Dispatcher: d, Armer: &notify.Armer{Store: arm, Now: now}, Visibility: vis, QueueURL: "q", Logger: quiet}
}

// TestHandleSQS: a batch's messages are acknowledged when their work is
// done (an event fanned out, a delivery delivered or done, a message no
// retry can read), and reported as batch item failures hidden until their
// delivery is due again otherwise: a delivery not due yet until it is (at
// most SQS's 12 hours), a failed attempt for its retry's wait (5 min at
// the first retry), a message whose handling failed for a backoff that
// doubles with its receives.
func TestHandleSQS(t *testing.T) {
	vis := &visibility{seen: map[string]int32{}}
	store := deliveries()
	failing := false
	d := store.FinishFn
	store.FinishFn = func(ctx context.Context, f notify.Finished) (bool, error) {
		if f.DeliveryID == "failing" {
			failing = f.Status == notify.StatusPending && f.RetryStep == 2
		}
		return d(ctx, f)
	}
	h := newHandler(store, nil, vis)
	sent := map[string]bool{}
	var mu sync.Mutex
	store.LeaseFn = func(next func(context.Context, string, time.Time, time.Duration) (*notify.Lease, notify.LeaseState, time.Time, error)) func(context.Context, string, time.Time, time.Duration) (*notify.Lease, notify.LeaseState, time.Time, error) {
		return func(ctx context.Context, id string, now time.Time, lf time.Duration) (*notify.Lease, notify.LeaseState, time.Time, error) {
			l, st, due, err := next(ctx, id, now, lf)
			if l != nil {
				l.Endpoint.URL = "https://hooks.example.com/" + id
			}
			return l, st, due, err
		}
	}(store.LeaseFn)
	c := h.Dispatcher.Config()
	c.Sender = mock.SenderFn(func(_ context.Context, r notify.Request) notify.Result {
		mu.Lock()
		defer mu.Unlock()
		sent[r.URL] = true
		if r.URL == "https://hooks.example.com/failing" {
			return notify.Result{Outcome: notify.OutcomeFailed, StatusCode: 503}
		}
		return notify.Result{Outcome: notify.OutcomeDelivered, StatusCode: 200}
	})
	dispatcher, err := notify.NewDispatcher(c)
	if err != nil {
		t.Fatal(err)
	}
	h.Dispatcher = dispatcher
	ev := events.SQSEvent{Records: []events.SQSMessage{
		message("event", `{"event_id":"e"}`, 1),
		message("due", `{"delivery_id":"due"}`, 1),
		message("done", `{"delivery_id":"done"}`, 2),
		message("early", `{"delivery_id":"early"}`, 1),
		message("far", `{"delivery_id":"far"}`, 1),
		message("failing", `{"delivery_id":"failing"}`, 2),
		message("broken", `{"delivery_id":"broken"}`, 3),
		message("unreadable", `{"event_id":"e","delivery_id":"due"}`, 1),
		message("garbage", `{`, 1),
	}}
	resp := h.HandleSQS(context.Background(), ev)
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	want := map[string]int32{"rh-early": 5, "rh-far": 12 * 3600, "rh-failing": 300, "rh-broken": 120}
	if diff := cmp.Diff(want, vis.seen); diff != "" {
		t.Errorf("visibility (-want +got):\n%s", diff)
	}
	wantFailed := map[string]bool{"early": true, "far": true, "failing": true, "broken": true}
	if len(failed) != len(wantFailed) {
		t.Errorf("batch item failures %v; want %v", failed, wantFailed)
	}
	for _, id := range failed {
		if !wantFailed[id] {
			t.Errorf("batch item failures %v; want %v", failed, wantFailed)
		}
	}
	if !sent["https://hooks.example.com/due"] || !sent["https://hooks.example.com/failing"] || len(sent) != 2 || !failing {
		t.Errorf("sent %v (the failing delivery pending at its next step: %v); want the due and the failing deliveries attempted once", sent, failing)
	}
}

// TestHandleSweep: the schedule's invocation arms the pending periods,
// hands the events they and the recent armings fired to the dispatcher,
// and sweeps what the queue lost; its answer counts each. A failing sweep
// fails the invocation.
func TestHandleSweep(t *testing.T) {
	store := deliveries()
	var handled []string
	fanOut := store.FanOutFn
	store.FanOutFn = func(ctx context.Context, id string, now time.Time) (*notify.Event, bool, []string, error) {
		handled = append(handled, id)
		return fanOut(ctx, "e", now)
	}
	store.WaitingFn = func(context.Context, time.Time, bool, int) ([]string, error) { return []string{"lost"}, nil }
	store.OverdueFn = func(_ context.Context, before time.Time, _ int) ([]string, error) {
		if !before.Equal(testNow.Add(-sweepGrace)) {
			t.Errorf("overdue before %v; want %s before now", before, sweepGrace)
		}
		return []string{"done"}, nil
	}
	arm := &mock.ArmStore{
		PendingFn: func(context.Context, int) ([]notify.PendingDay, error) { return nil, nil },
		RefireFn:  func(context.Context, time.Time, time.Time) ([]string, error) { return []string{"refired"}, nil },
	}
	h := newHandler(store, arm, nil)
	out, err := h.Handle(context.Background(), json.RawMessage(`{"sweep":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if rep, ok := out.(*SweepReport); !ok || *rep != (SweepReport{Fired: 1, Events: 1, Deliveries: 1}) {
		t.Errorf("Handle(sweep) = %#v; want 1 fired, 1 event, 1 delivery", out)
	}
	if diff := cmp.Diff([]string{"refired", "lost"}, handled); diff != "" {
		t.Errorf("events handled (-want +got):\n%s", diff)
	}

	arm.RefireFn = func(context.Context, time.Time, time.Time) ([]string, error) { return nil, errors.New("database down") }
	if _, err := h.Handle(context.Background(), json.RawMessage(`{"sweep":true}`)); err == nil {
		t.Error("a sweep whose refire failed: no error")
	}
}

// TestHandleRoutesSQS: an SQS batch is answered with its batch item
// failures.
func TestHandleRoutesSQS(t *testing.T) {
	h := newHandler(deliveries(), nil, nil)
	raw, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{message("early", `{"delivery_id":"early"}`, 1)}})
	out, err := h.Handle(context.Background(), raw)
	resp, ok := out.(events.SQSEventResponse)
	if err != nil || !ok || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "early" {
		t.Errorf("Handle(SQS batch) = %#v, %v; want the early delivery failed", out, err)
	}
}
