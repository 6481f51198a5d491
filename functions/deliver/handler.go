package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nexus/usage/shared/notify"
)

// VisibilityAPI is the part of *sqs.Client that schedules a message's next
// receive.
type VisibilityAPI interface {
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// Limits of the function's work.
const (
	// maxVisibility is SQS's longest visibility timeout: a retry further
	// away is received once more on the way (and hidden again).
	maxVisibility = 12 * time.Hour
	// failureBackoff is how long a message whose handling failed (the
	// database down) waits per receive, up to maxFailureBackoff.
	failureBackoff    = 30 * time.Second
	maxFailureBackoff = 15 * time.Minute
	// sweepGrace is how old an event or a due delivery must be before the
	// sweep takes it from the queue's hands.
	sweepGrace = 30 * time.Second
	// sweepLimit bounds the events and the deliveries of one sweep.
	sweepLimit = 100
	// armRounds bounds the pending batches one sweep arms.
	armRounds = 10
	// workers bounds the messages of a batch handled at once.
	workers = 4
)

// Handler delivers the notification workflow's outbox. It has two
// triggers: batches of the notify queue (an event to fan out, a delivery
// to attempt; SQS's delay and visibility are the retry engine) and a
// schedule every minute that sweeps (arms pending periods, fires what
// recent armings crossed, and takes over what the queue lost or never got:
// an event whose message was not sent after the counters' commit, a retry
// whose message was lost).
type Handler struct {
	Dispatcher *notify.Dispatcher
	Armer      *notify.Armer
	// Visibility, on QueueURL, hides a message until its delivery is due
	// again; nil: it comes back after the queue's visibility timeout.
	Visibility VisibilityAPI
	QueueURL   string
	Logger     *slog.Logger
}

// SweepReport is the scheduled invocation's answer.
type SweepReport struct {
	Armed      int `json:"armed"`
	Fired      int `json:"fired"`
	Events     int `json:"events"`
	Deliveries int `json:"deliveries"`
}

// Handle serves either trigger: an SQS batch (answered with its batch item
// failures), or anything else (the schedule's {"sweep": true}): a sweep.
// A sweep that fails returns the error, so the invocation counts as failed
// (the next one, a minute later, does the work again).
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(raw, &probe); err == nil && len(probe.Records) > 0 && probe.Records[0].EventSource == "aws:sqs" {
		var ev events.SQSEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("decode the SQS batch: %w", err)
		}
		return h.HandleSQS(ctx, ev), nil
	}
	return h.Sweep(ctx)
}

func (h *Handler) log(ctx context.Context) *slog.Logger {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return h.Logger.With("request_id", lc.AwsRequestID)
	}
	return h.Logger
}

// HandleSQS handles a batch of the notify queue, its messages side by
// side. A delivery not due yet, or failed and due again later, is hidden
// until then and reported as a batch item failure, so that SQS delivers it
// again at that time; a message whose handling failed comes back after a
// backoff. A message that cannot be read is dropped (logged): no retry can
// read it.
func (h *Handler) HandleSQS(ctx context.Context, ev events.SQSEvent) events.SQSEventResponse {
	log := h.log(ctx)
	var (
		mu     sync.Mutex
		failed []events.SQSBatchItemFailure
		hide   = map[string]time.Duration{} // receipt handle → visibility
	)
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for _, m := range ev.Records {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			wait := h.handleMessage(ctx, m, log)
			if wait <= 0 {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			hide[m.ReceiptHandle] = min(wait, maxVisibility)
		}()
	}
	wg.Wait()
	h.hide(ctx, hide, log)
	return events.SQSEventResponse{BatchItemFailures: failed}
}

// handleMessage handles one message and returns how long SQS should hide
// it before its next receive (0: done, delete it).
func (h *Handler) handleMessage(ctx context.Context, m events.SQSMessage, log *slog.Logger) time.Duration {
	var msg notify.Message
	if err := json.Unmarshal([]byte(m.Body), &msg); err != nil || (msg.EventID == "") == (msg.DeliveryID == "") {
		log.ErrorContext(ctx, "notify message dropped: it names neither one event nor one delivery", "message_id", m.MessageId, "body", m.Body)
		return 0
	}
	var wait time.Duration
	var err error
	if msg.EventID != "" {
		err = h.Dispatcher.HandleEvent(ctx, msg.EventID)
	} else {
		wait, err = h.Dispatcher.Deliver(ctx, msg.DeliveryID)
	}
	if err != nil {
		receives, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		backoff := failureBackoff << min(max(receives-1, 0), 10)
		log.ErrorContext(ctx, "notify message failed; it comes back later", "message_id", m.MessageId, "event_id", msg.EventID,
			"delivery_id", msg.DeliveryID, "receives", receives, "error", err)
		return min(backoff, maxFailureBackoff)
	}
	return wait
}

// hide sets the messages' visibility, ten per call. A failure is logged:
// the messages then come back after the queue's visibility timeout, and a
// delivery that is not due yet is only hidden again.
func (h *Handler) hide(ctx context.Context, hide map[string]time.Duration, log *slog.Logger) {
	if h.Visibility == nil || h.QueueURL == "" || len(hide) == 0 {
		return
	}
	var entries []types.ChangeMessageVisibilityBatchRequestEntry
	for handle, d := range hide {
		entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(len(entries))),
			ReceiptHandle: aws.String(handle), VisibilityTimeout: int32((d + time.Second - 1) / time.Second)})
	}
	for start := 0; start < len(entries); start += 10 {
		in := &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(h.QueueURL), Entries: entries[start:min(start+10, len(entries))]}
		out, err := h.Visibility.ChangeMessageVisibilityBatch(ctx, in)
		if err == nil && len(out.Failed) > 0 {
			err = fmt.Errorf("%d entries failed, the first: %s", len(out.Failed), aws.ToString(out.Failed[0].Code))
		}
		if err != nil {
			log.WarnContext(ctx, "notify messages not hidden until due; they come back after the queue's visibility timeout", "error", err)
		}
	}
}

// Sweep arms the pending periods, fires what the periods armed lately
// crossed, and hands the dispatcher what the queue did not.
func (h *Handler) Sweep(ctx context.Context) (*SweepReport, error) {
	rep := &SweepReport{}
	var fired []string
	for range armRounds {
		f, n, err := h.Armer.ArmPending(ctx, notify.DefaultArmBatch)
		if err != nil {
			return rep, fmt.Errorf("arm pending periods: %w", err)
		}
		rep.Armed += n
		fired = append(fired, f...)
		if n < notify.DefaultArmBatch {
			break
		}
	}
	f, err := h.Armer.Refire(ctx)
	if err != nil {
		return rep, fmt.Errorf("fire recently armed periods: %w", err)
	}
	fired = append(fired, f...)
	rep.Fired = len(fired)
	for _, id := range fired {
		if err := h.Dispatcher.HandleEvent(ctx, id); err != nil {
			h.log(ctx).WarnContext(ctx, "event fired by the sweep not handled; the next sweep will", "event_id", id, "error", err)
		}
	}
	s, err := h.Dispatcher.Sweep(ctx, sweepGrace, sweepLimit)
	rep.Events, rep.Deliveries = s.Events, s.Deliveries
	if rep.Armed+rep.Fired+rep.Events+rep.Deliveries > 0 {
		h.log(ctx).InfoContext(ctx, "notify sweep", "armed", rep.Armed, "fired", rep.Fired, "events", rep.Events, "deliveries", rep.Deliveries)
	}
	if err != nil {
		return rep, fmt.Errorf("sweep: %w", err)
	}
	return rep, nil
}
