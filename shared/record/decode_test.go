package record_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

var decodeNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const validEvent = `{"v":1,"event_id":"0195f3a0-0000-7000-8000-000000000001","user_id":"6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5","endpoint":"GET /v1/games/{id}","method":"GET","status_code":200,"latency_ms":12,"request_bytes":100,"response_bytes":2048,"occurred_at":"2026-03-10T11:59:00Z"}`

func withField(field, value string) string {
	// Replace the value of an existing field, or add one.
	i := strings.Index(validEvent, `"`+field+`":`)
	if i < 0 {
		return strings.TrimSuffix(validEvent, "}") + `,"` + field + `":` + value + `}`
	}
	j := i + len(field) + 3
	k := j
	for depth := 0; k < len(validEvent); k++ {
		c := validEvent[k]
		if c == '"' {
			k = j + 1 + strings.IndexByte(validEvent[j+1:], '"')
			if c == validEvent[j] {
				k++
				break
			}
		}
		if depth == 0 && (c == ',' || c == '}') {
			break
		}
	}
	return validEvent[:j] + value + validEvent[k:]
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		events     int
		fields     []string // the Field of each rejection, in order
		reasonHave string
	}{
		{name: "one event", body: validEvent, events: 1},
		{name: "array", body: "[" + validEvent + "," + strings.Replace(validEvent, "0001", "0002", 1) + "]", events: 2},
		{name: "whitespace around", body: " \n[" + validEvent + "]\n ", events: 1},
		{name: "version 0 defaults", body: strings.Replace(validEvent, `"v":1,`, ``, 1), events: 1},
		{name: "unknown field", body: withField("colour", `"red"`), fields: []string{"colour"}, reasonHave: "is not a field of this event"},
		{name: "wrong type", body: withField("status_code", `"200"`), fields: []string{"status_code"}, reasonHave: "status_code"},
		{name: "bad time", body: withField("occurred_at", `"yesterday"`), fields: []string{"occurred_at"}},
		{name: "trailing data", body: validEvent + `{}`, fields: []string{""}, reasonHave: "more follows at byte"},
		{name: "trailing data after array", body: "[" + validEvent + "] x", fields: []string{""}},
		{name: "not json", body: `hello`, fields: []string{""}, reasonHave: "invalid JSON"},
		{name: "empty", body: ``, fields: []string{""}},
		{name: "empty array", body: `[]`, fields: []string{""}, reasonHave: "empty"},
		{name: "number", body: `42`, fields: []string{""}},
		// null is no event: nothing of it is at fault but the whole.
		{name: "null", body: `null`, fields: []string{""}, reasonHave: "must hold an event object or an array of events"},
		{name: "null in an array", body: "[ null ," + validEvent + "]", events: 1, fields: []string{""}, reasonHave: "an event must be a JSON object"},
		{name: "too many", body: "[" + strings.Repeat(validEvent+",", 100) + validEvent + "]", fields: []string{""}, reasonHave: "more than 100"},
		// A member named twice (encoding/json would keep the last) makes the
		// event ambiguous: whose call it is, how many it counts.
		{name: "member twice", body: strings.Replace(validEvent, `"v":1,`, `"v":1,"user_id":"11111111-1111-4111-8111-111111111111",`, 1), fields: []string{"user_id"}, reasonHave: "user_id: is given twice"},
		{name: "member twice in another case", body: strings.TrimSuffix(validEvent, "}") + `,"quantity":5,"Quantity":7}`, fields: []string{"quantity"}},
		{name: "member twice in an array", body: "[" + validEvent + "," + strings.TrimSuffix(strings.Replace(validEvent, "0001", "0002", 1), "}") + `,"quantity":5,"quantity":7}]`, events: 1, fields: []string{"quantity"}},
		{name: "member twice, escaped", body: strings.Replace(validEvent, `"v":1,`, `"v":1,"event\u005fid":"0195f3a0-0000-7000-8000-000000000009",`, 1), fields: []string{"event_id"}},
		{name: "bad version", body: withField("v", `2`), fields: []string{"v"}},
		{name: "bad event id", body: withField("event_id", `"x"`), fields: []string{"event_id"}},
		{name: "bad user id", body: withField("user_id", `"x"`), fields: []string{"user_id"}},
		{name: "bad method", body: withField("method", `"FETCH"`), fields: []string{"method"}},
		{name: "bad status", body: withField("status_code", `99`), fields: []string{"status_code"}},
		{name: "negative latency", body: withField("latency_ms", `-1`), fields: []string{"latency_ms"}},
		{name: "quantity too big", body: withField("quantity", `1000001`), fields: []string{"quantity"}},
		{name: "future", body: withField("occurred_at", `"2026-03-10T12:06:00Z"`), fields: []string{"occurred_at"}},
		{name: "too old", body: withField("occurred_at", `"2026-02-01T00:00:00Z"`), fields: []string{"occurred_at"}},
		{
			name:   "mixed array",
			body:   "[" + validEvent + "," + withField("method", `"FETCH"`) + "," + withField("nope", `1`) + "," + `7` + "]",
			events: 1, fields: []string{"method", "nope", ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, rejected := record.Decode([]byte(tt.body), decodeNow, usage.DefaultBackfillWindow)
			if len(events) != tt.events {
				t.Errorf("Decode() = %d events; want %d (rejections %+v)", len(events), tt.events, rejected)
			}
			if len(rejected) != len(tt.fields) {
				t.Fatalf("Decode() = %d rejections %+v; want %d", len(rejected), rejected, len(tt.fields))
			}
			for i, r := range rejected {
				if r.Field != tt.fields[i] {
					t.Errorf("rejection %d field = %q; want %q (reason %q)", i, r.Field, tt.fields[i], r.Reason)
				}
				if r.Field != "" && !strings.Contains(r.Reason, r.Field) {
					t.Errorf("rejection %d reason %q does not name the field %q", i, r.Reason, r.Field)
				}
				if r.Reason == "" || r.Body == "" && tt.body != "" {
					t.Errorf("rejection %d = %+v; want a reason and the body", i, r)
				}
				if r.Source != record.RejectionSourceRecord {
					t.Errorf("rejection %d source = %q", i, r.Source)
				}
			}
			if tt.reasonHave != "" && !strings.Contains(rejected[0].Reason, tt.reasonHave) {
				t.Errorf("reason %q does not contain %q", rejected[0].Reason, tt.reasonHave)
			}
			for _, e := range events {
				if e.Version != 1 || e.Quantity != 1 || e.OccurredAt.Location() != time.UTC {
					t.Errorf("event not normalised: %+v", e)
				}
			}
		})
	}
}

// TestDecodeOutOfRange: values outside the bounds on the queue are refused,
// each naming its field, at their position in the message; the bounds
// themselves are accepted.
func TestDecodeOutOfRange(t *testing.T) {
	tests := []struct{ field, value string }{
		{"request_bytes", `9223372036854775807`},
		{"response_bytes", `9223372036854775807`},
		{"request_bytes", `1099511627777`},
		{"latency_ms", `3600001`},
		{"latency_ms", `2147483647`},
		{"quantity", `1000001`},
		{"status_code", `600`},
		{"request_bytes", `9223372036854775808`}, // past int64: a type error, still named
	}
	for _, tt := range tests {
		body := "[" + validEvent + "," + withField(tt.field, tt.value) + "]"
		events, rejected := record.Decode([]byte(body), decodeNow, usage.DefaultBackfillWindow)
		if len(events) != 1 || len(rejected) != 1 {
			t.Fatalf("%s = %s: %d events, rejections %+v; want the other event and one rejection", tt.field, tt.value, len(events), rejected)
		}
		r := rejected[0]
		if r.Field != tt.field || !strings.HasPrefix(r.Reason, tt.field+": ") || r.Position != 1 {
			t.Errorf("%s = %s: rejection %+v; want field %s named in the reason, position 1", tt.field, tt.value, r, tt.field)
		}
	}
	most := `{"v":1,"event_id":"0195f3a0-0000-7000-8000-000000000001","user_id":"6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5","endpoint":"GET /v1/games/{id}","method":"GET","status_code":599,"latency_ms":3600000,"request_bytes":1099511627776,"response_bytes":1099511627776,"quantity":1000000,"occurred_at":"2026-03-10T11:59:00Z"}`
	events, rejected := record.Decode([]byte(most), decodeNow, usage.DefaultBackfillWindow)
	if len(events) != 1 || len(rejected) != 0 {
		t.Fatalf("Decode(%s) = %d events, %+v; want the event at every bound accepted", most, len(events), rejected)
	}
	if e := events[0]; e.Quantity != usage.MaxQuantity || e.LatencyMS != usage.MaxLatencyMS ||
		e.RequestBytes != usage.MaxTransferBytes || e.ResponseBytes != usage.MaxTransferBytes {
		t.Errorf("event = %+v; want every bound", e)
	}
}

func TestDecodeRejectionKeepsEventID(t *testing.T) {
	_, rejected := record.Decode([]byte(withField("method", `"FETCH"`)), decodeNow, usage.DefaultBackfillWindow)
	if len(rejected) != 1 || rejected[0].EventID != "0195f3a0-0000-7000-8000-000000000001" {
		t.Fatalf("rejections = %+v; want the event id kept", rejected)
	}
	_, rejected = record.Decode([]byte(withField("status_code", `"x"`)), decodeNow, usage.DefaultBackfillWindow)
	if len(rejected) != 1 || rejected[0].EventID != "0195f3a0-0000-7000-8000-000000000001" {
		t.Fatalf("rejections = %+v; want the event id kept", rejected)
	}
}

func TestDecodeSafeText(t *testing.T) {
	body := "{\"event_id\":\"a\x00b\", \xff}"
	_, rejected := record.Decode([]byte(body), decodeNow, usage.DefaultBackfillWindow)
	if len(rejected) != 1 {
		t.Fatalf("rejections = %+v", rejected)
	}
	if r := rejected[0]; !utf8.ValidString(r.Body) || strings.Contains(r.Body, "\x00") {
		t.Errorf("body %q is not storable text", r.Body)
	}
}

// FuzzDecode checks that every input either decodes into valid events or
// yields rejections with a reason, that nothing is lost (a body yields at
// least one of either), that rejections are storable text, and that a
// reason is in our words: it starts with the field it names, and past that
// name (which an unknown field takes from the input) it carries none of
// encoding/json's or Go's text.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(validEvent))
	f.Add([]byte("[" + validEvent + "," + withField("method", `"X"`) + "]"))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`null`))
	f.Add([]byte("\xff\x00"))
	f.Add([]byte(withField("status_code", `"200"`)))
	f.Add([]byte(withField("json: x", `1`)))
	f.Add([]byte(`{"v":1,`))
	f.Add([]byte(validEvent + ` {}`))
	f.Add([]byte(`[7]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, rejected := record.Decode(body, decodeNow, usage.DefaultBackfillWindow)
		if len(events)+len(rejected) == 0 {
			t.Fatalf("Decode(%q) returned nothing", body)
		}
		if len(events) > record.MaxEventsPerMessage {
			t.Fatalf("Decode(%q) returned %d events", body, len(events))
		}
		for _, e := range events {
			if err := e.Validate(decodeNow, usage.DefaultBackfillWindow); err != nil {
				t.Fatalf("Decode(%q) returned an invalid event: %v", body, err)
			}
		}
		for _, r := range rejected {
			if r.Reason == "" {
				t.Fatalf("Decode(%q) rejected without a reason: %+v", body, r)
			}
			words := r.Reason
			if r.Field != "" {
				var ok bool
				if words, ok = strings.CutPrefix(r.Reason, r.Field+": "); !ok {
					t.Fatalf("Decode(%q) reason %q does not start with its field %q", body, r.Reason, r.Field)
				}
			}
			if goWords.MatchString(words) {
				t.Fatalf("Decode(%q) reason %q carries Go's wording", body, r.Reason)
			}
			for _, s := range []string{r.Body, r.Reason, r.Field, r.EventID} {
				if !utf8.ValidString(s) || strings.Contains(s, "\x00") {
					t.Fatalf("Decode(%q) rejection text %q is not storable", body, s)
				}
			}
		}
	})
}
