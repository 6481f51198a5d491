package mock

import (
	"context"
	"time"

	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

var _ record.EventStore = (*EventStore)(nil)

// EventStore is a record.EventStore.
type EventStore struct {
	RecordBatchFn func(ctx context.Context, now time.Time, events []usage.Event, rejected []record.Rejection) (int64, error)
}

// RecordBatch calls RecordBatchFn.
func (s *EventStore) RecordBatch(ctx context.Context, now time.Time, events []usage.Event, rejected []record.Rejection) (int64, error) {
	return s.RecordBatchFn(ctx, now, events, rejected)
}

var (
	_ usage.Publisher = (*Publisher)(nil)
	_ usage.Sender    = (*Publisher)(nil)
)

// Publisher is a usage.Publisher and a usage.Sender.
type Publisher struct {
	PublishFn func(ctx context.Context, e usage.Event) error
	FlushFn   func(ctx context.Context) error
	SendFn    func(ctx context.Context, events []usage.Event) []error
}

// Send calls SendFn.
func (p *Publisher) Send(ctx context.Context, events []usage.Event) []error {
	return p.SendFn(ctx, events)
}

// Publish calls PublishFn.
func (p *Publisher) Publish(ctx context.Context, e usage.Event) error { return p.PublishFn(ctx, e) }

// Flush calls FlushFn.
func (p *Publisher) Flush(ctx context.Context) error { return p.FlushFn(ctx) }
