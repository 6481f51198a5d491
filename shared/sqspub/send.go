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
	"github.com/nexus/usage/shared/usage"
)

// send sends the whole buffer; what fails goes back to its front.
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
	for _, e := range tooBig {
		<-p.slots
		n := p.dropped.Add(1)
		p.log.ErrorContext(ctx, "usage event dropped", "reason", "larger than an SQS message", "event_id", e.EventID, "dropped_total", n)
	}
	var firstErr error
	var unsent []usage.Event
	for _, b := range batches {
		failed, err := p.sendBatch(ctx, b)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		for _, m := range failed {
			unsent = append(unsent, m.events...)
		}
	}
	if len(unsent) > 0 {
		p.mu.Lock()
		p.buf = append(unsent, p.buf...)
		p.oldest = p.opts.Now()
		p.mu.Unlock()
	}
	return firstErr
}

// sendBatch sends one batch, retrying the entries SQS reports as failed,
// and returns the messages still unsent after MaxAttempts. Messages that
// SQS refuses as the sender's fault are dropped, counted and logged.
func (p *Publisher) sendBatch(ctx context.Context, batch []message) (failed []message, err error) {
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
		out, err := p.api.SendMessageBatch(ctx, in)
		if err != nil {
			lastErr = fmt.Errorf("send usage message batch: %w", err)
			continue
		}
		for _, s := range out.Successful {
			id := aws.ToString(s.Id)
			if m, ok := pending[id]; ok {
				delete(pending, id)
				p.release(len(m.events))
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
				for range m.events {
					<-p.slots
				}
				n := p.dropped.Add(int64(len(m.events)))
				p.log.ErrorContext(ctx, "usage events dropped", "reason", "refused by SQS", "code", aws.ToString(f.Code),
					"message", aws.ToString(f.Message), "events", len(m.events), "dropped_total", n)
			}
		}
	}
	for i := 0; i < len(batch); i++ {
		if m, ok := pending[strconv.Itoa(i)]; ok {
			failed = append(failed, m)
		}
	}
	if len(failed) > 0 {
		if lastErr == nil {
			lastErr = errors.New("send usage message batch: entries neither sent nor failed")
		}
		return failed, fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "usage events not sent"), lastErr)
	}
	return nil, nil
}
