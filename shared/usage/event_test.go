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
		{"latency too long", func(e *usage.Event) { e.LatencyMS = usage.MaxLatencyMS + 1 }, "latency_ms"},
		{"latency longest", func(e *usage.Event) { e.LatencyMS = usage.MaxLatencyMS }, ""},
		{"request bytes", func(e *usage.Event) { e.RequestBytes = -1 }, "request_bytes"},
		{"request bytes huge", func(e *usage.Event) { e.RequestBytes = 9223372036854775807 }, "request_bytes"},
		{"request bytes most", func(e *usage.Event) { e.RequestBytes = usage.MaxTransferBytes }, ""},
		{"response bytes", func(e *usage.Event) { e.ResponseBytes = -1 }, "response_bytes"},
		{"response bytes huge", func(e *usage.Event) { e.ResponseBytes = usage.MaxTransferBytes + 1 }, "response_bytes"},
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

// TestEventValidateInvisibleEndpoint: an endpoint with a character that
// does not show as itself (bidirectional overrides and isolates, zero-width
// and other format characters, separators, noncharacters, controls,
// invalid UTF-8) is refused, naming the field and the code point.
func TestEventValidateInvisibleEndpoint(t *testing.T) {
	now := date("2026-11-27T12:00:00Z")
	tests := []struct {
		name, endpoint, want string
	}{
		{"right-to-left override", "GET /v1/\u202egames", "U+202E, a bidirectional formatting character"},
		{"left-to-right embedding", "GET /\u202a", "U+202A"},
		{"first strong isolate", "GET /\u2068x", "U+2068, a bidirectional"},
		{"pop directional isolate", "GET /\u2069", "U+2069"},
		{"zero-width space", "GET /v1/ga\u200bmes", "U+200B, an invisible formatting character"},
		{"right-to-left mark", "GET /\u200f", "U+200F"},
		{"word joiner", "GET /\u2060", "U+2060"},
		{"invisible plus", "GET /\u2064", "U+2064"},
		{"byte order mark", "\ufeffGET /", "U+FEFF"},
		{"soft hyphen", "GET /ga\u00admes", "U+00AD"},
		{"tag character", "GET /\U000e0041", "U+E0041"},
		{"line separator", "GET /\u2028", "U+2028, a line or paragraph separator"},
		{"noncharacter", "GET /\ufdd0", "U+FDD0, a noncharacter"},
		{"plane noncharacter", "GET /\U0001fffe", "U+1FFFE, a noncharacter"},
		{"C1 control", "GET /\u0085", "U+0085, a control character"},
		{"DEL", "GET /\x7f", "U+007F, a control character"},
		{"replacement character", "GET /\ufffd", "U+FFFD"},
		{"invalid UTF-8", "GET /\xff", "not valid UTF-8 at byte 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEvent(now)
			e.Endpoint = tt.endpoint
			err := e.Validate(now, usage.DefaultBackfillWindow)
			if usage.ErrorField(err) != "endpoint" || !strings.HasPrefix(usage.ErrorMessage(err), "endpoint: ") ||
				!strings.Contains(usage.ErrorMessage(err), tt.want) {
				t.Errorf("Validate(endpoint %+q) = %q; want endpoint refused with %q", tt.endpoint, usage.ErrorMessage(err), tt.want)
			}
		})
	}
	for _, ok := range []string{"GET /v1/jeux/{id}/éàü", "GET /v1/名前", "GET /v1/emoji/😀", "GET /v1/a-b_c~d"} {
		e := sampleEvent(now)
		e.Endpoint = ok
		if err := e.Validate(now, usage.DefaultBackfillWindow); err != nil {
			t.Errorf("Validate(endpoint %q) = %v; want accepted", ok, err)
		}
	}
}
