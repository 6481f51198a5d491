package record_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// What the Recorder's tests share, over the store's simulation
// (record_test.go) and over PostgreSQL (postgres_test.go, batch_test.go,
// hostile_test.go).

// newRecorder returns a Recorder writing through store on the clock now,
// with the default backfill window.
func newRecorder(tb testing.TB, store record.EventStore, now func() time.Time) *record.Recorder {
	tb.Helper()
	r, err := record.New(record.Config{Store: store, Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// recorderAt returns a Recorder writing through store with its clock
// standing at now and the default backfill window.
func recorderAt(t *testing.T, store record.EventStore, now time.Time) *record.Recorder {
	t.Helper()
	return newRecorder(t, store, func() time.Time { return now })
}

// recordOK records msgs with r and fails the test unless the batch was
// recorded (its messages acknowledged).
func recordOK(t *testing.T, r *record.Recorder, msgs []record.Message) *record.BatchResult {
	t.Helper()
	res, err := r.Record(context.Background(), msgs)
	if err != nil {
		t.Fatalf("Record() = %v; want the batch recorded", err)
	}
	return res
}

// mixedBatch returns the messages of testdata/mixed_batch.json, an SQS
// batch of the usage queue written for recordNow: an array of two valid
// events and one with an invalid method, a valid event alone, a body that
// is not JSON, an event with an unknown field, and one too old. The
// record function's handler tests read the same file.
func mixedBatch(t *testing.T) []record.Message {
	t.Helper()
	b, err := os.ReadFile("testdata/mixed_batch.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Records []struct {
			MessageID string `json:"messageId"`
			Body      string `json:"body"`
		}
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	msgs := make([]record.Message, len(ev.Records))
	for i, m := range ev.Records {
		msgs[i] = record.Message{ID: m.MessageID, Body: []byte(m.Body)}
	}
	return msgs
}

// hostileEvent returns a valid event of user at now minus ago.
func hostileEvent(user string, now time.Time, ago time.Duration) usage.Event {
	id, _ := uuid.NewV7()
	return usage.Event{Version: 1, EventID: id.String(), UserID: user, Endpoint: "GET /v1/games/{id}", Method: "GET",
		StatusCode: 200, LatencyMS: 10, RequestBytes: 100, ResponseBytes: 1000, Quantity: 1, OccurredAt: now.Add(-ago)}
}

// messagesOf makes one message per element of msgs, each the JSON of its
// events (an object for one event, an array for more), ids m0, m1, …
// after prefix.
func messagesOf(prefix string, msgs ...[]usage.Event) []record.Message {
	out := make([]record.Message, len(msgs))
	for i, m := range msgs {
		var body []byte
		if len(m) == 1 {
			body, _ = json.Marshal(m[0])
		} else {
			body, _ = json.Marshal(m)
		}
		out[i] = record.Message{ID: fmt.Sprintf("%sm%d", prefix, i), Body: body}
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
