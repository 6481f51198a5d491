package notify

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/usage"
)

// Dispatcher delivers the outbox: it fans events out to the endpoints
// that want them and to the bus, attempts each delivery with a lease (so
// that a redelivered queue message never sends it twice at once), retries
// failures on Schedule through the queue, and disables an endpoint that
// failed every attempt for DisableAfter. Delivery is at least once: a
// receiver deduplicates on the event's id (webhook-id).
type Dispatcher struct {
	c DispatcherConfig // defaults filled in
}

// DispatcherConfig is what a Dispatcher is built from.
type DispatcherConfig struct {
	Store  DeliveryStore
	Sender Sender
	// Bus, when set, receives every event too.
	Bus Publisher
	// Queue carries retries and events raised here; nil leaves them to
	// Sweep.
	Queue Queue
	// Schedule (DefaultSchedule when nil), DisableAfter
	// (DefaultDisableAfter when zero).
	Schedule     Schedule
	DisableAfter time.Duration
	// Workers bounds the attempts of one fan-out, or of one sweep's
	// overdue deliveries, at once (DefaultDispatchWorkers when zero).
	Workers int
	// Now is the clock (required); Logger logs the attempts (nil:
	// slog.Default(), as every service here).
	Now    func() time.Time
	Logger *slog.Logger
	// NewID makes the id of an event raised here (EventEndpointDisabled;
	// default: NewID, a UUIDv7).
	NewID func() string
}

// DefaultDispatchWorkers is how many attempts of one fan-out (or sweep)
// run at once
// unless DispatcherConfig.Workers says otherwise.
const DefaultDispatchWorkers = 4

// NewDispatcher returns the Dispatcher c describes, its defaults filled
// in, or a CodeInvalid error saying what is wrong: no store, sender or
// clock, or a negative setting (as record.New, rollup.New and
// billing.New do).
func NewDispatcher(c DispatcherConfig) (*Dispatcher, error) {
	switch {
	case c.Store == nil:
		return nil, usage.Errorf(usage.CodeInvalid, "notify: a delivery store is required")
	case c.Sender == nil:
		return nil, usage.Errorf(usage.CodeInvalid, "notify: a sender is required")
	case c.Now == nil:
		return nil, usage.Errorf(usage.CodeInvalid, "notify: a clock is required")
	case c.DisableAfter < 0:
		return nil, usage.NegativeSetting("notify", "the time before disabling an endpoint", c.DisableAfter, DefaultDisableAfter)
	case c.Workers < 0:
		return nil, usage.NegativeSetting("notify", "the workers", c.Workers, DefaultDispatchWorkers)
	}
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule
	}
	c.DisableAfter = cmp.Or(c.DisableAfter, DefaultDisableAfter)
	c.Workers = cmp.Or(c.Workers, DefaultDispatchWorkers)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	if c.NewID == nil {
		c.NewID = NewID
	}
	return &Dispatcher{c: c}, nil
}

// Config returns the settings d delivers with, defaults filled in.
func (d *Dispatcher) Config() DispatcherConfig { return d.c }

// NewID returns a new id: a UUIDv7 (time-ordered).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// leaseFor is an attempt's lease: its timeout and a margin for the
// writes around it.
const leaseFor = AttemptTimeout + 15*time.Second

// HandleEvent fans the event out and attempts its deliveries now, then
// puts it on the bus. A delivery that failed is queued for its retry. A
// second call (a redelivered message) creates no delivery twice and
// sends none that is delivered, failed for good, or being attempted.
func (d *Dispatcher) HandleEvent(ctx context.Context, eventID string) error {
	ev, published, ids, err := d.c.Store.FanOut(ctx, eventID, d.c.Now().UTC())
	if err != nil {
		return err
	}
	retries, _, errs := d.deliverAll(ctx, ids)
	d.enqueue(ctx, retries)
	if d.c.Bus != nil && !published {
		if err := d.c.Bus.Publish(ctx, *ev); err != nil {
			errs = append(errs, err)
		} else if err := d.c.Store.MarkPublished(ctx, eventID, d.c.Now().UTC()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deliverAll attempts the deliveries ids, Workers at once, and returns
// the retries to queue, how many were handled and the errors of the
// others.
func (d *Dispatcher) deliverAll(ctx context.Context, ids []string) ([]Message, int, []error) {
	var (
		retries []Message
		handled int
		errs    []error
		mu      sync.Mutex
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, d.c.Workers)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			wait, err := d.Deliver(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			handled++
			if wait > 0 {
				retries = append(retries, Message{DeliveryID: id, Delay: min(wait, MaxQueueDelay)})
			}
		}()
	}
	wg.Wait()
	return retries, handled, errs
}

// deadlineRetry is how soon a delivery comes back when the invocation's
// deadline left no time to attempt it.
const deadlineRetry = time.Second

// Deliver attempts the delivery if it is due, and returns how long until
// it should be looked at again (0: never: delivered or failed for good).
// An attempt starts only when it can end and be recorded (leaseFor)
// before ctx's deadline (the invocation's): else the delivery is left
// alone, neither leased nor sent, and comes back in deadlineRetry, so
// that endpoints that hung earlier in an invocation never have a later
// attempt cut short, nor the invocation's answer lost.
func (d *Dispatcher) Deliver(ctx context.Context, deliveryID string) (time.Duration, error) {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < leaseFor {
		return deadlineRetry, nil
	}
	now := d.c.Now().UTC()
	l, st, due, err := d.c.Store.Lease(ctx, deliveryID, now, leaseFor)
	if err != nil {
		if usage.ErrorCode(err) == usage.CodeNotFound {
			return 0, nil
		}
		return 0, err
	}
	switch st {
	case Done:
		return 0, nil
	case Busy:
		return leaseFor, nil
	case NotDue:
		return max(due.Sub(now), time.Second), nil
	}
	body, err := l.Event.Body()
	if err != nil {
		return 0, err
	}
	attemptCtx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	res := d.c.Sender.Send(attemptCtx, Request{URL: l.Endpoint.URL, MessageID: l.Event.MessageID(), Timestamp: now,
		Body: body, Secrets: l.Endpoint.Secrets(now)})
	cancel()
	at := d.c.Now().UTC()
	f := Finished{DeliveryID: deliveryID, EndpointID: l.Endpoint.ID,
		Attempt: Attempt{Attempt: l.Attempt, At: now, Outcome: res.Outcome, Answer: clip(res.Answer, MaxAnswer),
			LatencyMS: res.Latency.Milliseconds(), Replay: l.Delivery.RetryStep >= ReplayStep},
		DisableBefore: at.Add(-d.c.DisableAfter)}
	if res.StatusCode != 0 {
		code := res.StatusCode
		f.Attempt.StatusCode = &code
	}
	var wait time.Duration
	switch {
	case res.Outcome == OutcomeDelivered:
		f.Status = StatusDelivered
	case res.Outcome == OutcomeRefused:
		f.Status = StatusFailed
	default:
		if w, ok := d.c.Schedule.After(l.Delivery.RetryStep); ok {
			next := at.Add(w)
			f.Status, f.NextAttemptAt, f.RetryStep, wait = StatusPending, &next, l.Delivery.RetryStep+1, w
		} else {
			f.Status = StatusFailed
		}
	}
	if res.Outcome != OutcomeDelivered {
		f.DisabledEventID = d.c.NewID()
	}
	disabled, err := d.c.Store.Finish(ctx, f)
	if err != nil {
		return 0, err
	}
	log := d.c.Logger.With("delivery_id", deliveryID, "event_id", l.Event.ID, "endpoint_id", l.Endpoint.ID, "attempt", l.Attempt)
	if res.Outcome == OutcomeDelivered {
		log.InfoContext(ctx, "webhook delivered", "status", res.StatusCode, "latency_ms", res.Latency.Milliseconds())
	} else {
		log.WarnContext(ctx, "webhook attempt failed", "outcome", res.Outcome, "status", res.StatusCode, "answer", f.Attempt.Answer,
			"next_attempt_at", f.NextAttemptAt)
	}
	if disabled {
		log.ErrorContext(ctx, "webhook endpoint disabled: every attempt failed", "failing_for", d.c.DisableAfter.String())
		if err := d.raise(ctx, f.DisabledEventID); err != nil {
			log.ErrorContext(ctx, "raise the endpoint's disabled event; the sweep will", "error", err)
		}
	}
	return wait, nil
}

// raise fans an event raised here out: through the queue, or at once.
func (d *Dispatcher) raise(ctx context.Context, eventID string) error {
	if d.c.Queue != nil {
		if err := d.c.Queue.Send(ctx, []Message{{EventID: eventID}}); err == nil {
			return nil
		}
	}
	return d.HandleEvent(ctx, eventID)
}

// enqueue queues msgs; a failure is logged, and Sweep finds them.
func (d *Dispatcher) enqueue(ctx context.Context, msgs []Message) {
	if d.c.Queue == nil || len(msgs) == 0 {
		return
	}
	if err := d.c.Queue.Send(ctx, msgs); err != nil {
		d.c.Logger.WarnContext(ctx, "notify messages not queued; the sweep will find them", "messages", len(msgs), "error", err)
	}
}

// SweepReport says what a sweep did.
type SweepReport struct {
	Events     int `json:"events"`
	Deliveries int `json:"deliveries"`
}

// Sweep finds what the queue lost or never got (an event whose message
// was not sent after the counters' commit, a retry whose message was
// lost): events raised more than grace ago and not fanned out (or not
// published), and deliveries due more than grace ago; it handles up to
// limit of each now, the deliveries side by side (Workers at once), so
// that endpoints that hang do not hold the others behind them. The deliver function runs it every minute.
func (d *Dispatcher) Sweep(ctx context.Context, grace time.Duration, limit int) (SweepReport, error) {
	var rep SweepReport
	before := d.c.Now().UTC().Add(-grace)
	events, err := d.c.Store.Waiting(ctx, before, d.c.Bus != nil, limit)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, id := range events {
		if err := d.HandleEvent(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Events++
	}
	due, err := d.c.Store.Overdue(ctx, before, limit)
	if err != nil {
		return rep, errors.Join(append(errs, err)...)
	}
	retries, n, derrs := d.deliverAll(ctx, due)
	rep.Deliveries = n
	errs = append(errs, derrs...)
	d.enqueue(ctx, retries)
	return rep, errors.Join(errs...)
}
