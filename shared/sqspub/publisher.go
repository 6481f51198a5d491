package sqspub

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/usage"
)

// SQS limits.
const (
	// MaxBatchEntries is the most entries of one SendMessageBatch call.
	MaxBatchEntries = 10
	// MaxPayloadBytes is the most bytes of one message and of all the
	// messages of one SendMessageBatch call.
	MaxPayloadBytes = 256 * 1024
)

// Overflow is what Publish does when the buffer is full.
type Overflow int

const (
	// Block waits for room up to Options.BlockTimeout (or ctx), then
	// refuses the event with CodeUnavailable.
	Block Overflow = iota
	// Drop refuses the event at once with CodeUnavailable.
	Drop
)

// Options tune a Publisher; zero values take the defaults.
type Options struct {
	// BatchSize is how many buffered events trigger a send (default 100).
	BatchSize int
	// MaxAge is how long an event may wait in the buffer before a send
	// (default 5s).
	MaxAge time.Duration
	// BufferSize bounds the events buffered and in flight (default 10 ×
	// BatchSize).
	BufferSize int
	// Overflow is the policy when the buffer is full (default Block).
	Overflow Overflow
	// BlockTimeout bounds Publish's wait under Block (default 1s).
	BlockTimeout time.Duration
	// MaxAttempts bounds the sends of one SendMessageBatch entry within a
	// flush (default 5).
	MaxAttempts int
	// Backoff is the first retry's delay, doubled on each further retry
	// (default 100ms).
	Backoff time.Duration
	// CallTimeout bounds one SendMessageBatch call (default 10s): a call
	// that has not answered by then is given up and retried, as a failed
	// one is. The SDK's HTTP client has no such bound, and a call over a
	// connection whose peer is gone waits out TCP's retransmissions (about
	// 15 minutes), holding every flush behind it; a call given up that
	// reached the queue after all is sent twice, which the record path's
	// dedupe on the event id absorbs.
	CallTimeout time.Duration
	// Logger receives drops and send failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock used to validate events (default time.Now).
	Now func() time.Time
	// BackfillWindow is how old an event may be, the record function's
	// (default usage.DefaultBackfillWindow): an older one is refused here,
	// as the record path would quarantine it.
	BackfillWindow time.Duration
}

// SendMessageBatchAPI is the part of *sqs.Client the publisher uses.
type SendMessageBatchAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// Publisher is a buffering usage.Publisher over an SQS queue. It is safe
// for concurrent use.
type Publisher struct {
	api      SendMessageBatchAPI
	queueURL string
	opts     Options
	log      *slog.Logger
	maxBytes int

	slots chan struct{} // one token per event buffered or in flight

	mu     sync.Mutex
	buf    []usage.Event
	oldest time.Time
	closed bool

	sendMu   sync.Mutex
	kick     chan struct{}
	done     chan struct{}
	loopDone chan struct{}

	published, dropped atomic.Int64

	metricsMu                 sync.Mutex
	reportedPub, reportedDrop int64
	reportedAt                time.Time
}

var (
	_ usage.Publisher = (*Publisher)(nil)
	_ usage.Sender    = (*Publisher)(nil)
)

// New returns a publisher sending to queueURL and starts its background
// flusher; Close stops it.
func New(client *sqs.Client, queueURL string, opts Options) *Publisher {
	return newPublisher(client, queueURL, opts)
}

func newPublisher(api SendMessageBatchAPI, queueURL string, opts Options) *Publisher {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 5 * time.Second
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = 10 * opts.BatchSize
	}
	if opts.BufferSize < opts.BatchSize {
		opts.BufferSize = opts.BatchSize
	}
	if opts.BlockTimeout <= 0 {
		opts.BlockTimeout = time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	if opts.BackfillWindow <= 0 {
		opts.BackfillWindow = usage.DefaultBackfillWindow
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Publisher{
		api: api, queueURL: queueURL, opts: opts, log: log, maxBytes: MaxPayloadBytes,
		slots:    make(chan struct{}, opts.BufferSize),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	go p.loop()
	return p
}

// Publish validates e and buffers it. An empty EventID is filled with a
// UUIDv7 (time-ordered ids keep the database's unique index local). It
// returns CodeInvalid for an invalid event and CodeUnavailable when the
// buffer had no room in time (policy Block) or at all (policy Drop), or the
// publisher is closed; refused events are counted as dropped and logged.
func (p *Publisher) Publish(ctx context.Context, e usage.Event) error {
	if e.EventID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("new event id: %w", err)
		}
		e.EventID = id.String()
	}
	if err := e.Validate(p.opts.Now(), p.opts.BackfillWindow); err != nil {
		n := p.dropped.Add(1)
		p.log.WarnContext(ctx, "usage event dropped", "reason", usage.ErrorMessage(err), "event_id", e.EventID, "user_id", e.UserID, "dropped_total", n)
		p.reportMetrics(ctx, false)
		return err
	}
	e.OccurredAt = e.OccurredAt.UTC()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return p.refuse(ctx, e, "publisher closed")
	}
	if err := p.acquire(ctx, e); err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return p.refuse(ctx, e, "publisher closed")
	}
	if len(p.buf) == 0 {
		p.oldest = p.opts.Now()
	}
	p.buf = append(p.buf, e)
	full := len(p.buf) >= p.opts.BatchSize
	p.mu.Unlock()
	if full {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// acquire takes a buffer slot for one event according to the overflow
// policy.
func (p *Publisher) acquire(ctx context.Context, e usage.Event) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	if p.opts.Overflow == Drop {
		return p.refuse(ctx, e, "buffer full")
	}
	t := time.NewTimer(p.opts.BlockTimeout)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-t.C:
		return p.refuse(ctx, e, "buffer full")
	case <-ctx.Done():
		return p.refuse(ctx, e, "buffer full")
	}
}

func (p *Publisher) refuse(ctx context.Context, e usage.Event, why string) error {
	n := p.dropped.Add(1)
	p.log.WarnContext(ctx, "usage event dropped", "reason", why, "event_id", e.EventID, "user_id", e.UserID, "dropped_total", n)
	p.reportMetrics(ctx, false)
	return usage.Errorf(usage.CodeUnavailable, "usage event not queued: %s", why)
}

// Flush sends every buffered event and returns the first error. Events
// that could not be sent stay buffered for the next flush.
func (p *Publisher) Flush(ctx context.Context) error {
	return p.send(ctx)
}

// Close stops the background flusher and flushes. Events that still could
// not be sent are counted as dropped, logged, and reported in the error.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.done)
	<-p.loopDone
	err := p.send(ctx)
	defer p.reportMetrics(ctx, true)
	p.mu.Lock()
	lost := p.buf
	p.buf = nil
	p.mu.Unlock()
	if len(lost) > 0 {
		for _, e := range lost {
			<-p.slots
			p.lost(ctx, e, "the publisher closed before the event could be sent")
		}
		p.log.ErrorContext(ctx, "usage events lost at close", "events", len(lost), "dropped_total", p.dropped.Load(), "error", err)
		return fmt.Errorf("close usage publisher: %d events not sent: %w", len(lost), err)
	}
	return err
}

// Stats returns how many events were sent and how many were refused or
// lost.
func (p *Publisher) Stats() (published, dropped int64) {
	return p.published.Load(), p.dropped.Load()
}

// loop sends when the buffer reaches BatchSize or its oldest event MaxAge.
func (p *Publisher) loop() {
	defer close(p.loopDone)
	t := time.NewTimer(p.opts.MaxAge)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		case <-t.C:
		}
		p.mu.Lock()
		n, age := len(p.buf), p.opts.Now().Sub(p.oldest)
		p.mu.Unlock()
		if n >= p.opts.BatchSize || (n > 0 && age >= p.opts.MaxAge) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := p.send(ctx); err != nil {
				p.log.Error("usage events not sent; kept for the next flush", "error", err)
			}
			cancel()
		}
		wait := p.opts.MaxAge
		p.mu.Lock()
		if len(p.buf) > 0 {
			wait = max(p.opts.MaxAge-p.opts.Now().Sub(p.oldest), 10*time.Millisecond)
		}
		p.mu.Unlock()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// release frees n buffer slots for sent events and counts them.
func (p *Publisher) release(n int) {
	for range n {
		<-p.slots
	}
	p.published.Add(int64(n))
}
