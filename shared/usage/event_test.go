package usage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nexus/usage/shared/usage"
)

func sampleEvent(now time.Time) usage.Event {
	return usage.Event{
		EventID: "0193a5d2-7c3e-7b1a-9f00-000000000001", UserID: "7b0c8f9e-3f1a-4c8e-9a55-2d9d1d6a1b11",
		Endpoint: "GET /v1/games/{id}", Method: "GET", StatusCode: 200, LatencyMS: 12,
		RequestBytes: 100, ResponseBytes: 2000, OccurredAt: now.Add(-time.Minute),
	}
}

func TestEventValidate(t *testing.T) {
	now := date("2026-11-27T12:00:00Z")
	tests := []struct {
		name  string
		edit  func(e *usage.Event)
		field string
	}{
		{"valid", func(e *usage.Event) {}, ""},
		{"version", func(e *usage.Event) { e.Version = 2 }, "v"},
		{"event id", func(e *usage.Event) { e.EventID = "nope" }, "event_id"},
		{"user id", func(e *usage.Event) { e.UserID = "" }, "user_id"},
		{"api key id", func(e *usage.Event) { e.APIKeyID = "123" }, "api_key_id"},
		{"endpoint missing", func(e *usage.Event) { e.Endpoint = "" }, "endpoint"},
		{"endpoint too long", func(e *usage.Event) { e.Endpoint = strings.Repeat("a", 257) }, "endpoint"},
		{"endpoint control", func(e *usage.Event) { e.Endpoint = "GET /\x00" }, "endpoint"},
		{"method", func(e *usage.Event) { e.Method = "FETCH" }, "method"},
		{"status low", func(e *usage.Event) { e.StatusCode = 99 }, "status_code"},
		{"status high", func(e *usage.Event) { e.StatusCode = 600 }, "status_code"},
		{"latency", func(e *usage.Event) { e.LatencyMS = -1 }, "latency_ms"},
		{"request bytes", func(e *usage.Event) { e.RequestBytes = -1 }, "request_bytes"},
		{"response bytes", func(e *usage.Event) { e.ResponseBytes = -1 }, "response_bytes"},
		{"quantity", func(e *usage.Event) { e.Quantity = 1_000_001 }, "quantity"},
		{"quantity negative", func(e *usage.Event) { e.Quantity = -1 }, "quantity"},
		{"occurred missing", func(e *usage.Event) { e.OccurredAt = time.Time{} }, "occurred_at"},
		{"future", func(e *usage.Event) { e.OccurredAt = now.Add(6 * time.Minute) }, "occurred_at"},
		{"slightly future", func(e *usage.Event) { e.OccurredAt = now.Add(4 * time.Minute) }, ""},
		{"too old", func(e *usage.Event) { e.OccurredAt = now.Add(-36 * 24 * time.Hour) }, "occurred_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEvent(now)
			tt.edit(&e)
			err := e.Validate(now, usage.DefaultBackfillWindow)
			if got := usage.ErrorField(err); got != tt.field {
				t.Errorf("Validate() = %v (field %q); want field %q", err, got, tt.field)
			}
			if err == nil && (e.Quantity != 1 || e.Version != 1) {
				t.Errorf("defaults not applied: quantity %d, version %d", e.Quantity, e.Version)
			}
		})
	}
}
