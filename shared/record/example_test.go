package record_test

import (
	"fmt"
	"time"

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
