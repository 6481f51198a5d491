package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixtureNow is the instant the sample batch was written for.
var fixtureNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// newRecorder returns a Recorder writing through store with its clock
// standing at now, with the given backfill window (0: the default).
func newRecorder(t *testing.T, store record.EventStore, now time.Time, backfill time.Duration) *record.Recorder {
	t.Helper()
	r, err := record.New(record.Config{Store: store, Now: func() time.Time { return now }, Backfill: backfill})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newHandler returns a handler recording through store as newRecorder
// does.
func newHandler(t *testing.T, store record.EventStore, now time.Time, backfill time.Duration) *Handler {
	t.Helper()
	return &Handler{Recorder: newRecorder(t, store, now, backfill), Logger: quiet}
}

// loadEvent reads an SQS batch of the usage queue from the record
// workflow's testdata (shared/record, whose tests record the same batch
// into PostgreSQL).
func loadEvent(t *testing.T, name string) events.SQSEvent {
	t.Helper()
	b, err := os.ReadFile("../../shared/record/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestHandleMixedBatch: one call to the store per batch, with the valid
// events of every message and the quarantine of the invalid ones, each
// rejection naming its message and field; every message is acknowledged.
func TestHandleMixedBatch(t *testing.T) {
	var calls int
	var got struct {
		ids      []string
		rejected []record.Rejection
	}
	h := newHandler(t, &mock.EventStore{RecordBatchFn: func(_ context.Context, _ time.Time, events []usage.Event, rejected []record.Rejection) (int64, error) {
		calls++
		for _, e := range events {
			got.ids = append(got.ids, e.EventID)
		}
		got.rejected = rejected
		return int64(len(events)), nil
	}}, fixtureNow, 0)
	resp, err := h.Handle(context.Background(), loadEvent(t, "mixed_batch.json"))
	if err != nil || len(resp.BatchItemFailures) != 0 || calls != 1 {
		t.Fatalf("Handle() = %+v, %v after %d store calls; want every message acknowledged after one", resp, err, calls)
	}
	wantIDs := []string{"0195f3a0-0000-7000-8000-000000000001", "0195f3a0-0000-7000-8000-000000000003", "0195f3a0-0000-7000-8000-000000000004"}
	if diff := cmp.Diff(wantIDs, got.ids); diff != "" {
		t.Errorf("events recorded (-want +got):\n%s", diff)
	}
	type quarantined struct {
		MessageID      string
		Position       int
		EventID, Field string
	}
	var q []quarantined
	for _, r := range got.rejected {
		q = append(q, quarantined{r.MessageID, r.Position, r.EventID, r.Field})
		if r.Source != record.RejectionSourceRecord || r.Reason == "" || r.Body == "" {
			t.Errorf("rejection %+v lacks its source, reason or body", r)
		}
	}
	want := []quarantined{
		{"m-valid-array", 1, "0195f3a0-0000-7000-8000-000000000002", "method"},
		{"m-not-json", 0, "", ""},
		{"m-unknown-field", 0, "0195f3a0-0000-7000-8000-000000000005", "colour"},
		{"m-too-old", 0, "0195f3a0-0000-7000-8000-000000000006", "occurred_at"},
	}
	if diff := cmp.Diff(want, q); diff != "" {
		t.Errorf("quarantine (-want +got):\n%s", diff)
	}
}

// TestHandleBackfillWindow: events are judged at the handler's clock
// against its backfill window, 35 days unless set.
func TestHandleBackfillWindow(t *testing.T) {
	ev := loadEvent(t, "mixed_batch.json")
	for _, tt := range []struct {
		backfill time.Duration
		accepted int
	}{{0, 3}, {24 * time.Hour, 2}, {500 * 24 * time.Hour, 4}} {
		var n int
		h := newHandler(t, &mock.EventStore{RecordBatchFn: func(_ context.Context, _ time.Time, events []usage.Event, _ []record.Rejection) (int64, error) {
			n = len(events)
			return int64(n), nil
		}}, fixtureNow, tt.backfill)
		if _, err := h.Handle(context.Background(), ev); err != nil || n != tt.accepted {
			t.Errorf("backfill %v: %d events accepted, %v; want %d", tt.backfill, n, err, tt.accepted)
		}
	}
}

func TestHandleStoreFailureFailsEveryMessage(t *testing.T) {
	ev := loadEvent(t, "mixed_batch.json")
	var calls int
	h := newHandler(t, &mock.EventStore{RecordBatchFn: func(_ context.Context, _ time.Time, events []usage.Event, rejected []record.Rejection) (int64, error) {
		calls++
		if len(events) != 3 || len(rejected) != 4 {
			t.Errorf("RecordBatch got %d events, %d rejections; want 3, 4", len(events), len(rejected))
		}
		return 0, usage.Errorf(usage.CodeUnavailable, "database unavailable")
	}}, fixtureNow, 0)
	resp, err := h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range resp.BatchItemFailures {
		got = append(got, f.ItemIdentifier)
	}
	// Nothing was written, the quarantine included: every message is retried.
	want := []string{"m-valid-array", "m-valid-one", "m-not-json", "m-unknown-field", "m-too-old"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batch item failures (-want +got):\n%s", diff)
	}
	if calls != 1 {
		t.Errorf("RecordBatch called %d times; want one call per batch", calls)
	}
}
