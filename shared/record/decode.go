package record

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nexus/usage/shared/usage"
)

// MaxEventsPerMessage is the most events one queue message may carry.
const MaxEventsPerMessage = 100

// RejectionSourceRecord is the Source of events refused by the record
// function.
const RejectionSourceRecord = "record"

// Rejection is a message, or one event of a message, that could not be
// recorded, kept with the reason so that nothing is dropped silently.
// Rejections are quarantined (stored) and the message is acknowledged:
// redelivering invalid input cannot make it valid.
type Rejection struct {
	// Source names the component that refused the input ("record").
	Source string
	// MessageID is the queue message that carried the input.
	MessageID string
	// Position is the event's index in the message's array: 0 for a
	// message holding one event object and for a message refused as a
	// whole. With MessageID it is the rejection's key, so that a
	// redelivered message is quarantined once.
	Position int
	// EventID is the event's id when one could be read, else "".
	EventID string
	// Field names the field at fault, "" when the message as a whole is
	// malformed.
	Field string
	// Reason says what is wrong; it starts with the field name if there is
	// one.
	Reason string
	// Body is the raw input: the whole message body, or the event's own
	// JSON when one event of an array is refused.
	Body string
}

// EventStore records usage events.
type EventStore interface {
	// RecordBatch writes the events and the rejections of a batch in one
	// transaction, received at now: the caller's clock, the one the
	// events were validated against, is the events' receipt and the
	// rejections' time, picks the generations of the event key store that
	// remember the ids (usage.KeyGenerations), and is when the batch's
	// notification thresholds are crossed. An event whose event id was
	// stored before, within DedupeWindow of its first receipt and whatever
	// its occurred_at, is a duplicate and skipped, and so is an event id
	// repeated inside the batch (the first one wins); the live counters and
	// dirty days move only by the events actually inserted. A rejection
	// already stored (same source, MessageID and Position) is not stored
	// again. It returns how many events were inserted.
	//
	// On error nothing was written. CodeUnavailable means the database
	// could not be reached or was busy and a retry may succeed; CodeInvalid
	// means the database refused a value of the batch (the message, in our
	// words, names the field when it can, and so does ErrorField), which a
	// smaller batch without that event would not hit; any other code is a
	// failure the store cannot attribute.
	RecordBatch(ctx context.Context, now time.Time, events []usage.Event, rejected []Rejection) (inserted int64, err error)
}

// Decode reads a queue message body holding one event object or a JSON
// array of up to MaxEventsPerMessage events, and validates every event at
// time now with the given backfill window. Decoding is strict: unknown
// fields, wrongly typed values, a field named twice (in any case) and data
// after the JSON value are refused.
//
// Each event is judged alone, so one invalid event of an array is returned
// as a Rejection (with its own JSON as Body and its index in the array as
// Position) while the others are returned as events, in their order in the
// array. A body that is not a JSON object or array at all yields a single
// Rejection holding the whole body. Every input yields at least one event
// or one rejection. The rejections' MessageID is left for the caller.
//
// Bodies as producers send them (valid events, every field spelt as
// documented) take a fast path (decodeFast); anything else is decoded by
// encoding/json, strictly, which words the reasons. Both give the same
// result for every input the fast path takes.
func Decode(body []byte, now time.Time, backfill time.Duration) ([]usage.Event, []Rejection) {
	if events, ok := decodeFast(body, now, backfill); ok {
		return events, nil
	}
	return decodeSlow(body, now, backfill)
}

// decodeSlow is Decode with encoding/json, for every input.
func decodeSlow(body []byte, now time.Time, backfill time.Duration) ([]usage.Event, []Rejection) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var raws []json.RawMessage
		if err := decodeStrict(body, &raws, "message"); err != nil {
			return nil, []Rejection{reject(body, "", "", usage.ErrorMessage(err))}
		}
		switch {
		case len(raws) == 0:
			return nil, []Rejection{reject(body, "", "", "the message holds an empty array of events")}
		case len(raws) > MaxEventsPerMessage:
			return nil, []Rejection{reject(body, "", "", fmt.Sprintf("the message holds %d events, more than %d", len(raws), MaxEventsPerMessage))}
		}
		events := make([]usage.Event, 0, len(raws))
		var rejected []Rejection
		for i, raw := range raws {
			e, rej := decodeEvent(raw, "event", now, backfill)
			if rej != nil {
				rej.Position = i
				rejected = append(rejected, *rej)
				continue
			}
			events = append(events, e)
		}
		return events, rejected
	}
	e, rej := decodeEvent(body, "message", now, backfill)
	if rej != nil {
		return nil, []Rejection{*rej}
	}
	return []usage.Event{e}, nil
}

// decodeEvent decodes and validates one event object: a whole message
// (what is "message") or an element of its array ("event").
func decodeEvent(raw []byte, what string, now time.Time, backfill time.Duration) (usage.Event, *Rejection) {
	var e usage.Event
	if err := decodeStrict(raw, &e, what); err != nil {
		r := reject(raw, eventIDOf(raw), usage.ErrorField(err), usage.ErrorMessage(err))
		return usage.Event{}, &r
	}
	if bytes.Equal(bytes.Trim(raw, " \t\r\n"), []byte("null")) {
		// null decodes as an event with every field zero, which Validate
		// would refuse for its event_id: the fault is the whole's.
		r := reject(raw, "", "", usage.ErrorMessage(notAnEvent(what)))
		return usage.Event{}, &r
	}
	if f := NamedTwice(raw); f != "" {
		r := reject(raw, eventIDOf(raw), f, f+": is given twice")
		return usage.Event{}, &r
	}
	if err := e.Validate(now, backfill); err != nil {
		r := reject(raw, e.EventID, usage.ErrorField(err), usage.ErrorMessage(err))
		return usage.Event{}, &r
	}
	e.OccurredAt = e.OccurredAt.UTC()
	return e, nil
}

// decodeStrict decodes exactly one JSON value of data into v, refusing
// unknown fields and trailing data. Its error is the rejection's reason in
// our words, a CodeInvalid *Error naming the field at fault, or no field
// when the input as a whole (what: "message", "event") is at fault:
//
//	invalid JSON at byte 12
//	invalid JSON at byte 40: it ends too early
//	the event must hold one JSON value; more follows at byte 310
//	status_code: must be an integer
//	colour: is not a field of this event
//	occurred_at: must be a date-time (RFC 3339)
func decodeStrict(data []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeReason(err, len(data), what)
	}
	off := dec.InputOffset()
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		off += int64(len(data[off:]) - len(bytes.TrimLeft(data[off:], " \t\r\n")))
		return usage.Errorf(usage.CodeInvalid, "the %s must hold one JSON value; more follows at byte %d", what, off+1)
	}
	return nil
}

// decodeReason words a decoding error of an input of size bytes (what:
// "message", "event") as decodeStrict documents.
func decodeReason(err error, size int, what string) error {
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return usage.Errorf(usage.CodeInvalid, "the %s is empty", what)
	case usage.IsTimeError(err):
		// time.Time decodes itself, and its errors name no field;
		// occurred_at is an event's one time.
		return usage.FieldErrorf("occurred_at", "must be a date-time (RFC 3339)")
	case errors.As(err, &te) && te.Field == "":
		return notAnEvent(what)
	}
	// JSONError words the rest; "event" is what an unknown field is not a
	// field of ("colour: is not a field of this event"). Invalid JSON is
	// the input's as a whole, whatever a field might be called: the
	// rejection names no field.
	e := usage.JSONError(err, size, "event")
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
		return usage.Errorf(usage.CodeInvalid, "%s", strings.TrimPrefix(usage.ErrorMessage(e), "event: "))
	}
	return e
}

// notAnEvent is the reason for a JSON value that is no event object: a
// whole message (what: "message") or an element of its array ("event").
func notAnEvent(what string) error {
	if what == "message" {
		return usage.Errorf(usage.CodeInvalid, "the message must hold an event object or an array of events")
	}
	return usage.Errorf(usage.CodeInvalid, "an event must be a JSON object")
}

// eventFields are the JSON names of an event's fields.
var eventFields = func() []string {
	t := reflect.TypeFor[usage.Event]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return names
}()

// NamedTwice returns the field of an event that the JSON object raw names
// more than once, or "" when it names none twice (or raw is no object).
// encoding/json keeps the last of the values and matches names without
// regard to case ("Quantity" is quantity), so an event such as
// {"user_id": A, …, "USER_ID": B} would be recorded as B's call with
// nothing said about A: whose call it is, or how many calls, is not the
// producer's to leave to the decoder. Names that are no field of an event
// are not counted.
func NamedTwice(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	seen := make(map[string]bool, len(eventFields))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		name, _ := t.(string)
		for _, f := range eventFields {
			if !strings.EqualFold(f, name) {
				continue
			}
			if seen[f] {
				return f
			}
			seen[f] = true
			break
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// eventIDOf reads the event_id of a malformed event, best effort.
func eventIDOf(raw []byte) string {
	var probe struct {
		EventID any `json:"event_id"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return ""
	}
	if s, ok := probe.EventID.(string); ok && len(s) <= 64 {
		return s
	}
	return ""
}

// reject builds a Rejection whose text is safe to store in a PostgreSQL
// text column: valid UTF-8 without NUL characters, so that storing the
// quarantine can never fail on the input it quarantines.
func reject(body []byte, eventID, field, reason string) Rejection {
	return Rejection{
		Source:  RejectionSourceRecord,
		EventID: SafeText(eventID),
		Field:   SafeText(field),
		Reason:  SafeText(reason),
		Body:    SafeText(string(body)),
	}
}

// SafeText returns s as valid UTF-8 without NUL characters (each replaced
// by U+FFFD), the text PostgreSQL accepts.
func SafeText(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
