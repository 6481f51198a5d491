package record

import (
	"cmp"
	"context"
	"encoding/json"
	"time"

	"github.com/nexus/usage/shared/usage"
)

// Message is one queue message as the record path receives it.
type Message struct {
	ID   string
	Body []byte
	// AcceptedAt is when the queue accepted the message: SQS's
	// SentTimestamp, or the first acceptance of a message moved back from
	// the dead-letter queue. Zero when unknown.
	AcceptedAt time.Time
}

// AcceptedAtAttribute is the SQS message attribute (a Number, Unix
// milliseconds) that carries a message's first acceptance by the queue
// when it is moved back from the dead-letter queue, whose move gives it a
// new SentTimestamp.
const AcceptedAtAttribute = "NexusAcceptedAt"

// MaxQueueDelay bounds how long before its recording a message's
// acceptance may count. An event's age is judged at its message's
// acceptance, not at its recording, so that an event accepted inside the
// backfill window and held up by an outage is not quarantined as too old:
// it may be recorded up to the window plus MaxQueueDelay after it
// occurred. Four days is how long the usage queue keeps a message
// (MessageRetentionPeriod), and what must outlast the window (the memory
// of event ids, raw retention) outlasts it by BackfillMargin, more than
// MaxQueueDelay plus the clocks' skews (TestMaxQueueDelayInsideMargin).
const MaxQueueDelay = 4 * 24 * time.Hour

// judgedAt is the time m's events are judged at: its acceptance, taken as
// now when unknown or later than now (a queue clock ahead of ours never
// makes an event younger than our clock says), and as MaxQueueDelay ago
// when older.
func judgedAt(m Message, now time.Time) time.Time {
	switch t := m.AcceptedAt; {
	case t.IsZero() || t.After(now):
		return now
	case t.Before(now.Add(-MaxQueueDelay)):
		return now.Add(-MaxQueueDelay)
	default:
		return t
	}
}

// BatchResult is what Recorder.Record did with a batch of messages.
type BatchResult struct {
	// Events counts the valid events the messages held.
	Events int
	// Inserted counts the events stored and counted.
	Inserted int64
	// Duplicates counts the valid events skipped because their event id
	// was stored before or came earlier in the batch.
	Duplicates int64
	// Rejected is the quarantine written with the batch: the input
	// refused on decoding, then the events the store refused.
	Rejected []Rejection
	// Refused counts the rejections (the last ones of Rejected) of events
	// that passed validation but whose values the store refused.
	Refused int
	// Writes counts the store calls: 1, more when the batch was split.
	Writes int
}

// Recorder is the record path: it decodes and validates the messages of a
// queue batch and writes them through an EventStore, so that one bad
// event never stops the others.
//
// The batch is one store call: the valid events with the quarantine of the
// invalid input. When the store refuses it for a reason that belongs to the
// data (CodeInvalid: a value the database refuses that validation let
// through), the batch is split in halves, recursively, until the refused
// events stand alone; each is quarantined with the store's reason, and every
// other part is written. An error the store cannot attribute (any other
// code but CodeUnavailable) is split the same way, but when both halves of a
// part fail with such errors the fault is not one event's and the batch
// fails; so does a single event failing so, and any CodeUnavailable error:
// the queue redelivers the batch. Everything is idempotent under
// redelivery: parts already written are duplicates the second time, and
// rejections are keyed by message and position.
//
// A Recorder is made by New, which checks its Config; the zero value is
// not usable.
type Recorder struct {
	cfg Config
}

// Config is what a Recorder records with (New).
type Config struct {
	// Store is where the batches are written (required).
	Store EventStore
	// Now is the clock (required) of the record path: events are validated
	// against it (an event's age is judged at its message's AcceptedAt,
	// within MaxQueueDelay of Now) and the store records the batch at it.
	Now func() time.Time
	// Backfill is how old an event may be: usage.DefaultBackfillWindow
	// when zero, never negative. (How long the store remembers event ids,
	// usage.MaxBackfillWindow, bounds it in a deployment: the record
	// function's configuration checks that.)
	Backfill time.Duration
}

// New returns the Recorder c describes, its zero Backfill set to the
// default, or a CodeInvalid error saying what is wrong: no store, no
// clock, or a negative backfill window (as rollup.New and billing.New
// do).
func New(c Config) (*Recorder, error) {
	switch {
	case c.Store == nil:
		return nil, usage.Errorf(usage.CodeInvalid, "record: a store is required")
	case c.Now == nil:
		return nil, usage.Errorf(usage.CodeInvalid, "record: a clock is required")
	case c.Backfill < 0:
		return nil, usage.NegativeSetting("record", "the backfill window", c.Backfill, usage.DefaultBackfillWindow)
	}
	c.Backfill = cmp.Or(c.Backfill, usage.DefaultBackfillWindow)
	return &Recorder{cfg: c}, nil
}

// Config returns the settings r records with, defaults filled in.
func (r *Recorder) Config() Config { return r.cfg }

// origin is where an event came from: the message and its position in it.
type origin struct {
	messageID string
	position  int
}

// Record records the batch at one reading of the clock: the time the
// events are judged at is the time every store call of the batch, the
// split's included, records them at. On error the batch must be
// redelivered whole: some of its parts may have been written, which a
// redelivery finds as duplicates. The result is nil then.
func (r *Recorder) Record(ctx context.Context, msgs []Message) (*BatchResult, error) {
	now, backfill := r.cfg.Now(), r.cfg.Backfill
	var (
		events   []usage.Event
		origins  []origin
		rejected []Rejection
	)
	for _, m := range msgs {
		evs, rej := Decode(m.Body, judgedAt(m, now), backfill)
		for i := range rej {
			rej[i].MessageID = m.ID
		}
		// Decode returns the events in their order in the message; their
		// positions are those no rejection holds.
		taken := make(map[int]bool, len(rej))
		for _, x := range rej {
			taken[x.Position] = true
		}
		pos := 0
		for range evs {
			for taken[pos] {
				pos++
			}
			origins = append(origins, origin{m.ID, pos})
			pos++
		}
		events = append(events, evs...)
		rejected = append(rejected, rej...)
	}

	res := &BatchResult{Events: len(events)}
	res.Writes++
	n, err := r.cfg.Store.RecordBatch(ctx, now, events, rejected)
	if err == nil {
		res.Inserted = n
		res.Duplicates = int64(len(events)) - n
		res.Rejected = rejected
		return res, nil
	}
	if !splittable(err) || len(events) == 0 {
		return nil, err
	}

	// Split: the events alone first, then the whole quarantine at once.
	s := &split{store: r.cfg.Store, now: now, events: events, origins: origins}
	if err := s.write(ctx, 0, len(events), err); err != nil {
		return nil, err
	}
	rejected = append(rejected, s.refused...)
	res.Writes += s.writes + 1
	if _, err := r.cfg.Store.RecordBatch(ctx, now, nil, rejected); err != nil {
		return nil, err
	}
	res.Inserted = s.inserted
	res.Duplicates = int64(len(events)-len(s.refused)) - s.inserted
	res.Rejected = rejected
	res.Refused = len(s.refused)
	return res, nil
}

// splittable reports whether err may belong to some events of the batch:
// every code but CodeUnavailable.
func splittable(err error) bool { return usage.ErrorCode(err) != usage.CodeUnavailable }

// attributed reports whether err belongs to the data by its code alone.
func attributed(err error) bool { return usage.ErrorCode(err) == usage.CodeInvalid }

// split finds the events a store refuses by bisection.
type split struct {
	store    EventStore
	now      time.Time
	events   []usage.Event
	origins  []origin
	inserted int64
	refused  []Rejection
	writes   int
}

// write handles events[lo:hi], whose write failed with err: a single event
// is quarantined, a larger part is halved and each half written, and
// halves that fail are handled in turn. It returns the error that must
// send the batch back to the queue, if any.
func (s *split) write(ctx context.Context, lo, hi int, err error) error {
	if hi-lo == 1 {
		if !attributed(err) && lo == 0 && hi == len(s.events) {
			return err // one event, no evidence that it is the cause
		}
		s.refused = append(s.refused, s.rejection(lo, err))
		return nil
	}
	mid := lo + (hi-lo)/2
	halves := [2][2]int{{lo, mid}, {mid, hi}}
	var errs [2]error
	for i, h := range halves {
		s.writes++
		n, err := s.store.RecordBatch(ctx, s.now, s.events[h[0]:h[1]], nil)
		if err != nil && !splittable(err) {
			return err
		}
		s.inserted += n
		errs[i] = err
	}
	if errs[0] != nil && errs[1] != nil && !attributed(errs[0]) && !attributed(errs[1]) {
		return errs[0]
	}
	for i, h := range halves {
		if errs[i] == nil {
			continue
		}
		if err := s.write(ctx, h[0], h[1], errs[i]); err != nil {
			return err
		}
	}
	return nil
}

// rejection quarantines events[i] with the store's reason.
func (s *split) rejection(i int, err error) Rejection {
	e := s.events[i]
	body, _ := json.Marshal(e)
	reason, field := usage.ErrorMessage(err), usage.ErrorField(err)
	if !attributed(err) {
		reason, field = "the database could not store this event, though the rest of its batch was stored", ""
	}
	return reject(body, e.EventID, field, reason).at(s.origins[i].messageID, s.origins[i].position)
}

// at returns r with its message id and position set.
func (r Rejection) at(messageID string, position int) Rejection {
	r.MessageID, r.Position = messageID, position
	return r
}
