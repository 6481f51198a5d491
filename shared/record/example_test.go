package record_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// ExampleDecode reads a message of two events, one of them invalid: the
// valid one is recorded, the other becomes a rejection naming its field,
// and neither costs the other anything.
func ExampleDecode() {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	body := []byte(`[
		{"event_id":"0190c0de-0000-7000-8000-000000000001","user_id":"3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607",
		 "endpoint":"GET /v1/games/{id}","method":"GET","status_code":200,"latency_ms":12,
		 "occurred_at":"2026-03-10T11:59:58Z"},
		{"event_id":"0190c0de-0000-7000-8000-000000000002","user_id":"3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607",
		 "endpoint":"GET /v1/games/{id}","method":"GET","status_code":200,"latency_ms":-5,
		 "occurred_at":"2026-03-10T11:59:59Z"}]`)
	events, rejected := record.Decode(body, now, usage.DefaultBackfillWindow)
	for _, e := range events {
		fmt.Println("event", e.EventID, e.Endpoint, e.StatusCode)
	}
	for _, r := range rejected {
		fmt.Printf("rejected: position %d, field %s\n", r.Position, r.Field)
	}
	// Output:
	// event 0190c0de-0000-7000-8000-000000000001 GET /v1/games/{id} 200
	// rejected: position 1, field latency_ms
}

// ExampleNew builds a Recorder over a store (a mock here, that says what
// it is given; postgres.NewEventStore in the record function) and records
// a batch of two messages: the valid event and the quarantine of the
// message that is not JSON go to the store in one call, at the Recorder's
// clock.
func ExampleNew() {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	store := &mock.EventStore{RecordBatchFn: func(_ context.Context, at time.Time, events []usage.Event, rejected []record.Rejection) (int64, error) {
		fmt.Printf("store: %d event, %d rejection, at %s\n", len(events), len(rejected), at.Format(time.RFC3339))
		return int64(len(events)), nil
	}}
	r, err := record.New(record.Config{Store: store, Now: func() time.Time { return now }})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := r.Record(context.Background(), []record.Message{
		{ID: "m1", Body: []byte(`{"event_id":"0190c0de-0000-7000-8000-000000000001","user_id":"3f1d2c4b-5a6e-4f70-8a91-b2c3d4e5f607",
			"endpoint":"GET /v1/games/{id}","method":"GET","status_code":200,"latency_ms":12,"occurred_at":"2026-03-10T11:59:58Z"}`)},
		{ID: "m2", Body: []byte(`hello`)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("inserted %d, quarantined %s: %s\n", res.Inserted, res.Rejected[0].MessageID, res.Rejected[0].Reason)
	// Output:
	// store: 1 event, 1 rejection, at 2026-03-10T12:00:00Z
	// inserted 1, quarantined m2: invalid JSON at byte 1
}
