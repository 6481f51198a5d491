package record_test

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// goWords matches what betrays encoding/json or Go in a reason.
var goWords = regexp.MustCompile(`json: |json\.|Go value|Go struct|unmarshal|invalid character|looking for|\b(u?int(8|16|32|64)?|float(32|64)|bool|struct|interface|map)\b|\bstring\b.*\bof type\b|usage\.|time\.|Time\.|parsing time|RawMessage|cannot parse`)

// TestDecodeReasonsInOurWords: a quarantined message's reason says what is
// wrong in our words, naming the byte offset or the field, never with
// encoding/json's text (before: "invalid JSON: invalid character 'h'
// looking for beginning of value", "status_code: must be a JSON number,
// not string", "colour: unknown field").
func TestDecodeReasonsInOurWords(t *testing.T) {
	tests := []struct{ name, body, field, reason string }{
		{"not json", `hello`, "", "invalid JSON at byte 1"},
		{"syntax inside", `{"v":1,"event_id":x}`, "", "invalid JSON at byte 19"},
		{"cut short", `{"v":1,`, "", "invalid JSON at byte 7: it ends too early"},
		{"array syntax", `[` + validEvent + `,]`, "", "invalid JSON at byte " + itoa(len(validEvent)+3)},
		{"empty", ``, "", "the message is empty"},
		{"trailing data", validEvent + ` {}`, "", "the message must hold one JSON value; more follows at byte " + itoa(len(validEvent)+2)},
		{"a number", `42`, "", "the message must hold an event object or an array of events"},
		{"an element not an object", `[7]`, "", "an event must be a JSON object"},
		{"string for integer", withField("status_code", `"200"`), "status_code", "status_code: must be an integer"},
		{"beyond int64", withField("request_bytes", `9223372036854775808`), "request_bytes", "request_bytes: must be an integer in range"},
		{"boolean for integer", withField("quantity", `true`), "quantity", "quantity: must be an integer"},
		{"number for string", withField("endpoint", `5`), "endpoint", "endpoint: must be a string"},
		{"unknown field", withField("colour", `"red"`), "colour", "colour: is not a field of this event"},
		{"bad time", withField("occurred_at", `"yesterday"`), "occurred_at", "occurred_at: must be a date-time (RFC 3339)"},
		{"number for time", withField("occurred_at", `5`), "occurred_at", "occurred_at: must be a date-time (RFC 3339)"},
		{"object for string", withField("endpoint", `{}`), "endpoint", "endpoint: must be a string"},
		{"fraction for integer", withField("latency_ms", `1.5`), "latency_ms", "latency_ms: must be an integer in range"},
		{"array not an object", `[[` + validEvent + `]]`, "", "an event must be a JSON object"},
		{"string message", `"hello"`, "", "the message must hold an event object or an array of events"},
		{"array trailing data", `[` + validEvent + `] x`, "", "the message must hold one JSON value; more follows at byte " + itoa(len(validEvent)+4)},
		{"element unknown field", `[` + withField("colour", `1`) + `]`, "colour", "colour: is not a field of this event"},
		{"unknown field named event", withField("event", `1`), "event", "event: is not a field of this event"},
		{"unknown field named message", `[` + withField("message", `1`) + `]`, "message", "message: is not a field of this event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rejected := record.Decode([]byte(tt.body), decodeNow, usage.DefaultBackfillWindow)
			if len(rejected) != 1 {
				t.Fatalf("Decode(%s) = %d rejections %+v; want 1", tt.body, len(rejected), rejected)
			}
			r := rejected[0]
			if r.Field != tt.field || r.Reason != tt.reason {
				t.Errorf("Decode(%s) rejection field %q reason %q; want %q, %q", tt.body, r.Field, r.Reason, tt.field, tt.reason)
			}
			if goWords.MatchString(r.Reason) {
				t.Errorf("reason %q carries Go's wording", r.Reason)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
