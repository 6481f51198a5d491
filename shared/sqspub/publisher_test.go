package sqspub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeSQS records SendMessageBatch calls; fail decides per call and entry
// whether the entry fails (and whether as the sender's fault).
type fakeSQS struct {
	mu    sync.Mutex
	calls []*sqs.SendMessageBatchInput
	fail  func(call int, id string) (failed, senderFault bool)
	err   func(call int) error
	sent  []string // bodies accepted
}

func (f *fakeSQS) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := len(f.calls)
	f.calls = append(f.calls, in)
	if f.err != nil {
		if err := f.err(call); err != nil {
			return nil, err
		}
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		if f.fail != nil {
			if failed, sender := f.fail(call, *e.Id); failed {
				out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: sender})
				continue
			}
		}
		f.sent = append(f.sent, *e.MessageBody)
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

// sentEvents decodes every accepted body and returns the event ids.
func (f *fakeSQS) sentEvents(t *testing.T) []string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, b := range f.sent {
		events, rejected := record.Decode([]byte(b), time.Now(), usage.DefaultBackfillWindow)
		if len(rejected) > 0 {
			t.Fatalf("sent body does not decode: %+v", rejected)
		}
		for _, e := range events {
			ids = append(ids, e.EventID)
		}
	}
	return ids
}

func event(endpoint string) usage.Event {
	return usage.Event{UserID: uuid.NewString(), Endpoint: endpoint, Method: "GET", StatusCode: 200, OccurredAt: time.Now()}
}

func TestPack(t *testing.T) {
	long := "GET /" + strings.Repeat("x", 240)
	tests := []struct {
		name     string
		events   int
		maxBytes int
	}{
		{name: "one", events: 1, maxBytes: MaxPayloadBytes},
		{name: "one message of 100", events: 100, maxBytes: MaxPayloadBytes},
		{name: "many messages", events: 2345, maxBytes: MaxPayloadBytes},
		{name: "byte bound", events: 500, maxBytes: 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []usage.Event
			for range tt.events {
				e := event(long)
				e.EventID = uuid.NewString()
				events = append(events, e)
			}
			batches, tooBig := pack(events, tt.maxBytes)
			if len(tooBig) != 0 {
				t.Fatalf("tooBig = %d", len(tooBig))
			}
			seen := 0
			for _, b := range batches {
				if len(b) == 0 || len(b) > MaxBatchEntries {
					t.Errorf("batch of %d entries", len(b))
				}
				size := 0
				for _, m := range b {
					size += len(m.body)
					if len(m.events) > record.MaxEventsPerMessage || len(m.body) > tt.maxBytes {
						t.Errorf("message of %d events, %d bytes", len(m.events), len(m.body))
					}
					var arr []usage.Event
					if err := json.Unmarshal([]byte(m.body), &arr); err != nil || len(arr) != len(m.events) {
						t.Errorf("body is not the JSON array of its events: %v", err)
					}
					seen += len(m.events)
				}
				if size > tt.maxBytes {
					t.Errorf("batch of %d bytes; limit %d", size, tt.maxBytes)
				}
			}
			if seen != tt.events {
				t.Errorf("packed %d events; want %d", seen, tt.events)
			}
		})
	}
}

func TestPublishFlushOnSizeAndFlush(t *testing.T) {
	f := &fakeSQS{}
	p := newPublisher(f, "q", Options{BatchSize: 10, MaxAge: time.Hour, Logger: quiet})
	ctx := context.Background()
	for range 25 {
		if err := p.Publish(ctx, event("GET /a")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(f.sentEvents(t)); got != 25 {
		t.Errorf("sent %d events; want 25", got)
	}
	if pub, drop := p.Stats(); pub != 25 || drop != 0 {
		t.Errorf("Stats() = %d, %d; want 25, 0", pub, drop)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, event("GET /a")); usage.ErrorCode(err) != usage.CodeUnavailable {
		t.Errorf("Publish after Close = %v; want CodeUnavailable", err)
	}
}

func TestPublishFlushOnAge(t *testing.T) {
	f := &fakeSQS{}
	p := newPublisher(f, "q", Options{BatchSize: 1000, MaxAge: 20 * time.Millisecond, Logger: quiet})
	defer p.Close(context.Background())
	if err := p.Publish(context.Background(), event("GET /a")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.sentEvents(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the aged event was never sent")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPublishBackfillWindow: the publisher refuses an event older than the
// deployment's backfill window, which the record path would quarantine.
func TestPublishBackfillWindow(t *testing.T) {
	old := event("GET /a")
	old.OccurredAt = time.Now().Add(-20 * 24 * time.Hour)
	p := newPublisher(&fakeSQS{}, "q", Options{Logger: quiet})
	defer p.Close(context.Background())
	if err := p.Publish(context.Background(), old); err != nil {
		t.Errorf("Publish(20 days old), default window: %v; want accepted", err)
	}
	week := newPublisher(&fakeSQS{}, "q", Options{Logger: quiet, BackfillWindow: 7 * 24 * time.Hour})
	defer week.Close(context.Background())
	if err := week.Publish(context.Background(), old); usage.ErrorField(err) != "occurred_at" {
		t.Errorf("Publish(20 days old), 7-day window = %v; want an error naming occurred_at", err)
	}
}

func TestPublishInvalid(t *testing.T) {
	p := newPublisher(&fakeSQS{}, "q", Options{Logger: quiet})
	defer p.Close(context.Background())
	e := event("GET /a")
	e.Method = "FETCH"
	if err := p.Publish(context.Background(), e); usage.ErrorField(err) != "method" {
		t.Errorf("Publish(invalid) = %v; want an error naming method", err)
	}
}

func TestRetryFailedEntries(t *testing.T) {
	// Entry "1" fails on the first two calls; a whole call fails once.
	f := &fakeSQS{
		fail: func(call int, id string) (bool, bool) { return id == "1" && call < 2, false },
		err: func(call int) error {
			if call == 2 {
				return errors.New("connection reset")
			}
			return nil
		},
	}
	p := newPublisher(f, "q", Options{BatchSize: 1000, MaxAge: time.Hour, Backoff: time.Millisecond, Logger: quiet})
	ctx := context.Background()
	want := map[string]bool{}
	for range 250 { // three messages in one batch
		e := event("GET /a")
		e.EventID = uuid.NewString()
		want[e.EventID] = true
		if err := p.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.sentEvents(t)
	if len(got) != len(want) {
		t.Fatalf("sent %d events; want %d", len(got), len(want))
	}
	for _, id := range got {
		if !want[id] {
			t.Errorf("unexpected event %s", id)
		}
	}
	if len(f.calls) < 4 {
		t.Errorf("%d calls; want retries", len(f.calls))
	}
	for i, c := range f.calls[1:] {
		if len(c.Entries) != 1 || *c.Entries[0].Id != "1" {
			t.Errorf("retry %d resent %d entries; want only the failed one", i+1, len(c.Entries))
		}
	}
}

func TestFailuresStayBufferedAndCloseCountsThem(t *testing.T) {
	down := true
	var mu sync.Mutex
	f := &fakeSQS{err: func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return errors.New("unavailable")
		}
		return nil
	}}
	p := newPublisher(f, "q", Options{BatchSize: 1000, MaxAge: time.Hour, MaxAttempts: 2, Backoff: time.Millisecond, Logger: quiet})
	ctx := context.Background()
	for range 5 {
		if err := p.Publish(ctx, event("GET /a")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); usage.ErrorCode(err) != usage.CodeUnavailable {
		t.Fatalf("Flush while SQS is down = %v; want CodeUnavailable", err)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush after recovery = %v", err)
	}
	if got := len(f.sentEvents(t)); got != 5 {
		t.Errorf("sent %d events after recovery; want 5", got)
	}
	mu.Lock()
	down = true
	mu.Unlock()
	for range 3 {
		if err := p.Publish(ctx, event("GET /a")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err == nil {
		t.Fatal("Close with unsendable events = nil; want an error")
	}
	if pub, drop := p.Stats(); pub != 5 || drop != 3 {
		t.Errorf("Stats() = %d, %d; want 5, 3", pub, drop)
	}
}

// TestSenderFaultDroppedAndCounted: entries SQS refuses as the sender's
// fault are not retried, are counted as dropped, make Flush fail (they
// were not published), and are logged whole, so that they can be
// replayed.
func TestSenderFaultDroppedAndCounted(t *testing.T) {
	f := &fakeSQS{fail: func(call int, id string) (bool, bool) { return true, true }}
	var log strings.Builder
	p := newPublisher(f, "q", Options{BatchSize: 1000, MaxAge: time.Hour, Backoff: time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	defer p.Close(context.Background())
	var ids []string
	for range 3 {
		e := event("GET /a")
		e.EventID = uuid.NewString()
		ids = append(ids, e.EventID)
		if err := p.Publish(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(context.Background()); usage.ErrorCode(err) != usage.CodeInvalid {
		t.Fatalf("Flush after the queue refused every event = %v; want %s", err, usage.CodeInvalid)
	}
	if pub, drop := p.Stats(); drop != 3 || pub != 0 {
		t.Errorf("published, dropped = %d, %d; want 0, 3", pub, drop)
	}
	if len(f.calls) != 1 {
		t.Errorf("%d calls; a sender fault is not retried", len(f.calls))
	}
	for _, id := range ids {
		if !loggedWhole(t, log.String(), id) {
			t.Errorf("event %s is not logged whole for a replay:\n%s", id, log.String())
		}
	}
}

// loggedWhole reports whether the JSON log holds a "replay this event"
// line with every field of the event id.
func loggedWhole(t *testing.T, log, id string) bool {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var rec struct {
			Msg   string      `json:"msg"`
			Event usage.Event `json:"event"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Event.EventID != id {
			continue
		}
		e := rec.Event
		return strings.Contains(rec.Msg, "replay") && e.UserID != "" && e.Endpoint != "" && e.Method != "" && e.StatusCode != 0 && !e.OccurredAt.IsZero()
	}
	return false
}

// TestSendPerEvent: Send says what became of each event (sent, refused by
// the queue, too large, not sent after the retries, invalid), never
// reports one the queue did not take as sent, logs every one not sent
// whole, and leaves the buffer alone.
func TestSendPerEvent(t *testing.T) {
	var log strings.Builder
	events := make([]usage.Event, 5)
	for i := range events {
		events[i] = event("GET /send")
		events[i].EventID = uuid.NewString()
	}
	events[2].Endpoint = "GET /" + strings.Repeat("x", 250) // larger than the test's message bound
	events[4].StatusCode = 999
	// Each event is a message of its own (a 320-byte bound); the second is
	// refused as the sender's fault, the fourth fails every attempt.
	f := &fakeSQS{}
	f.fail = func(call int, id string) (bool, bool) {
		body := ""
		for _, e := range f.calls[call].Entries {
			if *e.Id == id {
				body = *e.MessageBody
			}
		}
		switch {
		case strings.Contains(body, events[1].EventID):
			return true, true
		case strings.Contains(body, events[3].EventID):
			return true, false
		}
		return false, false
	}
	p := newPublisher(f, "q", Options{BatchSize: 1000, MaxAge: time.Hour, Backoff: time.Millisecond, MaxAttempts: 3,
		Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	p.maxBytes = 320
	defer p.Close(context.Background())
	buffered := event("GET /buffered")
	if err := p.Publish(context.Background(), buffered); err != nil {
		t.Fatal(err)
	}
	errs := p.Send(context.Background(), events)
	want := []string{"", usage.CodeInvalid, usage.CodeInvalid, usage.CodeUnavailable, usage.CodeInvalid}
	for i, err := range errs {
		if usage.ErrorCode(err) != want[i] {
			t.Errorf("event %d: %v; want code %q", i, err, want[i])
		}
	}
	if !strings.Contains(usage.ErrorMessage(errs[1]), "refused this event") || usage.ErrorField(errs[4]) != "status_code" {
		t.Errorf("reasons: %q, %q; want the queue's refusal, and status_code named", usage.ErrorMessage(errs[1]), usage.ErrorField(errs[4]))
	}
	if sent := f.sentEvents(t); len(sent) != 1 || sent[0] != events[0].EventID {
		t.Errorf("the queue got %v; want the first event alone", sent)
	}
	for _, i := range []int{1, 2, 3} {
		if !loggedWhole(t, log.String(), events[i].EventID) {
			t.Errorf("event %d (not sent) is not logged whole", i)
		}
	}
	if pub, drop := p.Stats(); pub != 1 || drop != 4 {
		t.Errorf("published, dropped = %d, %d; want 1, 4", pub, drop)
	}
	p.mu.Lock()
	kept := len(p.buf)
	p.mu.Unlock()
	if kept != 1 {
		t.Errorf("the buffer holds %d events after Send; want the 1 published before", kept)
	}
}

func TestOverflow(t *testing.T) {
	blocked := make(chan struct{})
	f := &fakeSQS{err: func(int) error { <-blocked; return nil }}
	defer close(blocked)
	for _, policy := range []Overflow{Block, Drop} {
		p := newPublisher(f, "q", Options{BatchSize: 1000, BufferSize: 1000, MaxAge: time.Hour, BlockTimeout: 20 * time.Millisecond, Logger: quiet})
		ctx := context.Background()
		for range 1000 {
			if err := p.Publish(ctx, event("GET /a")); err != nil {
				t.Fatal(err)
			}
		}
		p.opts.Overflow = policy
		if err := p.Publish(ctx, event("GET /a")); usage.ErrorCode(err) != usage.CodeUnavailable {
			t.Errorf("policy %d: Publish into a full buffer = %v; want CodeUnavailable", policy, err)
		}
		if _, drop := p.Stats(); drop != 1 {
			t.Errorf("policy %d: dropped = %d; want 1", policy, drop)
		}
	}
}

// hangingSQS never answers its first n calls (a connection whose peer is
// gone): each waits for its context; later calls go to fakeSQS.
type hangingSQS struct {
	*fakeSQS
	mu   sync.Mutex
	hung int
}

func (h *hangingSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	h.mu.Lock()
	hang := h.hung > 0
	h.hung--
	h.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return h.fakeSQS.SendMessageBatch(ctx, in, opts...)
}

// TestCallTimeout: a SendMessageBatch call that never answers is given up
// at CallTimeout and retried, so that a Flush whose context has no
// deadline (the middleware's, with FlushEachRequest) still ends, with the
// events sent.
func TestCallTimeout(t *testing.T) {
	f := &hangingSQS{fakeSQS: &fakeSQS{}, hung: 1}
	p := newPublisher(f, "q", Options{BatchSize: 10, MaxAge: time.Hour, CallTimeout: 50 * time.Millisecond, Backoff: time.Millisecond, Logger: quiet})
	e := event("GET /v1/x")
	if err := p.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Flush(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Flush after a call that never answered: %v; want the retry to send it", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Flush over a call that never answers had not returned after 30 s; want it given up at its 50ms CallTimeout and retried")
	}
	if got := f.sentEvents(t); len(got) != 1 {
		t.Errorf("sent %v; want the event once", got)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Error(err)
	}
}
