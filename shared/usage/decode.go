package usage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
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
	// transaction. An event whose event id was stored before, within
	// DedupeWindow of its first receipt and whatever its occurred_at, is a
	// duplicate and skipped, and so is an event id repeated inside the
	// batch (the first one wins); the live counters and dirty days move
	// only by the events actually inserted. A rejection already stored
	// (same source, MessageID and Position) is not stored again. It
	// returns how many events were inserted.
	//
	// On error nothing was written. CodeUnavailable means the database
	// could not be reached or was busy and a retry may succeed; CodeInvalid
	// means the database refused a value of the batch (the message, in our
	// words, names the field when it can, and so does ErrorField), which a
	// smaller batch without that event would not hit; any other code is a
	// failure the store cannot attribute.
	RecordBatch(ctx context.Context, events []Event, rejected []Rejection) (inserted int64, err error)
}

// Decode reads a queue message body holding one event object or a JSON
// array of up to MaxEventsPerMessage events, and validates every event at
// time now with the given backfill window. Decoding is strict: unknown
// fields, wrongly typed values and data after the JSON value are refused.
//
// Each event is judged alone, so one invalid event of an array is returned
// as a Rejection (with its own JSON as Body and its index in the array as
// Position) while the others are returned as events, in their order in the
// array. A body that is not a JSON object or array at all yields a single
// Rejection holding the whole body. Every input yields at least one event
// or one rejection. The rejections' MessageID is left for the caller.
func Decode(body []byte, now time.Time, backfill time.Duration) ([]Event, []Rejection) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var raws []json.RawMessage
		if err := decodeStrict(body, &raws); err != nil {
			return nil, []Rejection{reject(body, "", "", jsonReason(err))}
		}
		switch {
		case len(raws) == 0:
			return nil, []Rejection{reject(body, "", "", "the message holds an empty array of events")}
		case len(raws) > MaxEventsPerMessage:
			return nil, []Rejection{reject(body, "", "", fmt.Sprintf("the message holds %d events, more than %d", len(raws), MaxEventsPerMessage))}
		}
		events := make([]Event, 0, len(raws))
		var rejected []Rejection
		for i, raw := range raws {
			e, rej := decodeEvent(raw, now, backfill)
			if rej != nil {
				rej.Position = i
				rejected = append(rejected, *rej)
				continue
			}
			events = append(events, e)
		}
		return events, rejected
	}
	e, rej := decodeEvent(body, now, backfill)
	if rej != nil {
		return nil, []Rejection{*rej}
	}
	return []Event{e}, nil
}

// decodeEvent decodes and validates one event object.
func decodeEvent(raw []byte, now time.Time, backfill time.Duration) (Event, *Rejection) {
	var e Event
	if err := decodeStrict(raw, &e); err != nil {
		field := ""
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field = te.Field
		} else if f, ok := unknownField(err); ok {
			field = f
		} else if strings.Contains(err.Error(), "parsing time") {
			// time.Time's own UnmarshalJSON errors carry no field.
			field = "occurred_at"
		}
		reason := jsonReason(err)
		if field != "" && !strings.HasPrefix(reason, field+": ") {
			reason = field + ": " + reason
		}
		r := reject(raw, eventIDOf(raw), field, reason)
		return Event{}, &r
	}
	if err := e.Validate(now, backfill); err != nil {
		r := reject(raw, e.EventID, ErrorField(err), ErrorMessage(err))
		return Event{}, &r
	}
	e.OccurredAt = e.OccurredAt.UTC()
	return e, nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the message is empty")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// unknownField returns the field named by encoding/json's unknown field
// error.
func unknownField(err error) (string, bool) {
	const prefix = `json: unknown field "`
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return "", false
	}
	name := strings.TrimSuffix(strings.TrimPrefix(msg, prefix), `"`)
	return name, true
}

// jsonReason turns a decoding error into a reason without the "json: "
// prefix of encoding/json.
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%s: must be a JSON %s, not %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return fmt.Sprintf("must be a JSON object or array of events, not %s", te.Value)
	}
	if f, ok := unknownField(err); ok {
		return fmt.Sprintf("%s: unknown field", f)
	}
	return "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "number"
	case k == "struct":
		return "object"
	case k == "slice":
		return "array"
	}
	return k
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
