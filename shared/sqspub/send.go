package sqspub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/usage"
)

// send sends the whole buffer; what fails goes back to its front. Events
// the queue refuses (the sender's fault: they cannot be sent as they are)
// are dropped, counted and logged whole, and make it return a CodeInvalid
// error, unless a send failed, whose error it returns first.
func (p *Publisher) send(ctx context.Context) error {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	p.mu.Lock()
	events := p.buf
	p.buf = nil
	p.mu.Unlock()
	if len(events) == 0 {
		return nil
	}
	defer p.reportMetrics(ctx, false)
	batches, tooBig := pack(events, p.maxBytes)
	refused := len(tooBig)
	for _, i := range tooBig {
		<-p.slots
		p.lost(ctx, events[i], "larger than an SQS message")
	}
	var firstErr error
	var unsent []usage.Event
	for _, b := range batches {
		o := p.sendBatch(ctx, b)
		for _, m := range o.sent {
			p.release(len(m.events))
		}
		for _, r := range o.refused {
			for _, e := range r.events {
				<-p.slots
				p.lost(ctx, e, r.reason)
			}
			refused += len(r.events)
		}
		if o.err != nil && firstErr == nil {
			firstErr = o.err
		}
		for _, m := range o.unsent {
			unsent = append(unsent, m.events...)
		}
	}
	if len(unsent) > 0 {
		p.mu.Lock()
		p.buf = append(unsent, p.buf...)
		p.oldest = p.opts.Now()
		p.mu.Unlock()
	}
	if firstErr == nil && refused > 0 {
		firstErr = usage.Errorf(usage.CodeInvalid, "%d usage events refused by the queue, not sent (logged whole for a replay)", refused)
	}
	return firstErr
}

// Send implements usage.Sender: it validates events and sends them at
// once, not through the buffer (which keeps its events), with the
// publisher's retries, and reports each event's fate: nil when the queue
// took it; CodeInvalid when it is invalid or the queue refused it (too
// large, or refused as the sender's fault); CodeUnavailable when it could
// not be sent after the retries (sending it again with the same event id
// is harmless). An event without an id gets a UUIDv7. Every event not sent
// is counted as dropped; those the queue refused or that could not be sent
// are logged whole, so that they can be replayed.
func (p *Publisher) Send(ctx context.Context, events []usage.Event) []error {
	errs := make([]error, len(events))
	now := p.opts.Now()
	valid := make([]usage.Event, 0, len(events))
	at := make([]int, 0, len(events)) // valid[j] is events[at[j]]
	for i, e := range events {
		if e.EventID == "" {
			id, err := uuid.NewV7()
			if err != nil {
				errs[i] = fmt.Errorf("new event id: %w", err)
				continue
			}
			e.EventID = id.String()
		}
		if err := e.Validate(now, p.opts.BackfillWindow); err != nil {
			n := p.dropped.Add(1)
			p.log.WarnContext(ctx, "usage event dropped", "reason", usage.ErrorMessage(err), "event_id", e.EventID, "user_id", e.UserID, "dropped_total", n)
			errs[i] = err
			continue
		}
		e.OccurredAt = e.OccurredAt.UTC()
		valid = append(valid, e)
		at = append(at, i)
	}
	defer p.reportMetrics(ctx, false)
	batches, tooBig := pack(valid, p.maxBytes)
	for _, j := range tooBig {
		p.lost(ctx, valid[j], "larger than an SQS message")
		errs[at[j]] = usage.FieldErrorf("event", "is larger than a queue message (%d bytes)", p.maxBytes)
	}
	for _, b := range batches {
		o := p.sendBatch(ctx, b)
		for _, m := range o.sent {
			p.published.Add(int64(len(m.events)))
		}
		for _, r := range o.refused {
			for k, e := range r.events {
				p.lost(ctx, e, r.reason)
				errs[at[r.pos[k]]] = usage.Errorf(usage.CodeInvalid, "the usage queue refused this event: %s", r.reason)
			}
		}
		for _, m := range o.unsent {
			for k, e := range m.events {
				p.lost(ctx, e, "the usage queue could not be reached")
				errs[at[m.pos[k]]] = fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable,
					"the usage queue could not be reached; send this event again with the same event_id"), o.err)
			}
		}
	}
	return errs
}

// lost counts an event that was not sent and logs it whole, at error
// level, so that it can be replayed into the queue from the log.
func (p *Publisher) lost(ctx context.Context, e usage.Event, reason string) {
	n := p.dropped.Add(1)
	p.log.ErrorContext(ctx, "usage event not published; replay this event", "event", e, "reason", reason, "dropped_total", n)
}

// refusedMessage is a message the queue refused as the sender's fault.
type refusedMessage struct {
	message
	reason string
}

// batchOutcome is what became of the messages of one batch.
type batchOutcome struct {
	sent    []message
	refused []refusedMessage
	// unsent are still failing after MaxAttempts (or ctx ended); err says
	// why.
	unsent []message
	err    error
}

// sendBatch sends one batch, retrying the entries SQS reports as failed
// for reasons not the sender's, up to MaxAttempts with backoff. Entries
// refused as the sender's fault are not retried.
func (p *Publisher) sendBatch(ctx context.Context, batch []message) batchOutcome {
	var o batchOutcome
	pending := map[string]message{}
	for i, m := range batch {
		pending[strconv.Itoa(i)] = m
	}
	var lastErr error
	for attempt := 0; attempt < p.opts.MaxAttempts && len(pending) > 0; attempt++ {
		if attempt > 0 {
			d := p.opts.Backoff << (attempt - 1)
			d += time.Duration(rand.Int64N(int64(d)/2 + 1))
			select {
			case <-time.After(d):
			case <-ctx.Done():
				lastErr = ctx.Err()
				attempt = p.opts.MaxAttempts
				continue
			}
		}
		in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(p.queueURL)}
		for i := 0; i < len(batch); i++ {
			id := strconv.Itoa(i)
			if m, ok := pending[id]; ok {
				in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(m.body)})
			}
		}
		call, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
		out, err := p.api.SendMessageBatch(call, in)
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("send usage message batch: %w", err)
			continue
		}
		for _, s := range out.Successful {
			id := aws.ToString(s.Id)
			if m, ok := pending[id]; ok {
				delete(pending, id)
				o.sent = append(o.sent, m)
			}
		}
		for _, f := range out.Failed {
			id := aws.ToString(f.Id)
			m, ok := pending[id]
			if !ok {
				continue
			}
			lastErr = fmt.Errorf("send usage message: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
			if f.SenderFault {
				delete(pending, id)
				reason := "refused by SQS: " + aws.ToString(f.Code)
				if msg := aws.ToString(f.Message); msg != "" {
					reason += ": " + msg
				}
				o.refused = append(o.refused, refusedMessage{message: m, reason: reason})
			}
		}
	}
	for i := 0; i < len(batch); i++ {
		if m, ok := pending[strconv.Itoa(i)]; ok {
			o.unsent = append(o.unsent, m)
		}
	}
	if len(o.unsent) > 0 {
		if lastErr == nil {
			lastErr = errors.New("send usage message batch: entries neither sent nor failed")
		}
		o.err = fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "usage events not sent"), lastErr)
	}
	return o
}
