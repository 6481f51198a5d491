package record

import (
	"bytes"
	"io"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/nexus/usage/shared/usage"
)

// decodeFast decodes a message body that holds what producers send: one
// event object, or an array of 1 to MaxEventsPerMessage of them, every
// event valid. It reports ok only for such a body, with exactly the events
// the strict decoder (decodeStrict, then Validate) makes of it, and leaves
// everything else (any malformed, unusual or invalid input) to that
// decoder, which words the reasons; FuzzDecodeFast holds the two to the
// same result.
//
// It reads the body with a jsontext.Decoder (the tokenizer of the JSON v2
// proposal) straight into the events' fields, about five times as fast as
// encoding/json's reflection over json.RawMessage. It accepts a strict
// subset of what encoding/json accepts: member names spelt exactly as the
// event's fields (encoding/json also matches other cases), no member
// twice, valid UTF-8, integers written as integers, and occurred_at decoded
// by time.Time's own UnmarshalJSON as encoding/json does (which reads the
// literal unescaped).
func decodeFast(body []byte, now time.Time, backfill time.Duration) (events []usage.Event, ok bool) {
	// Duplicate names are told by fastEvent, which knows every name it
	// takes; the decoder's own check hashes every name of every object.
	dec := jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(true))
	switch dec.PeekKind() {
	case '{':
		e, ok := fastEvent(dec)
		if !ok {
			return nil, false
		}
		events = []usage.Event{e}
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return nil, false
		}
		events = make([]usage.Event, 0, min(len(body)/128+1, MaxEventsPerMessage))
		for dec.PeekKind() == '{' {
			if len(events) == MaxEventsPerMessage {
				return nil, false
			}
			e, ok := fastEvent(dec)
			if !ok {
				return nil, false
			}
			events = append(events, e)
		}
		if tok, err := dec.ReadToken(); err != nil || tok.Kind() != ']' || len(events) == 0 {
			return nil, false
		}
	default:
		return nil, false
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, false // more follows the value
	}
	for i := range events {
		if events[i].Validate(now, backfill) != nil {
			return nil, false
		}
		events[i].OccurredAt = events[i].OccurredAt.UTC()
	}
	return events, true
}

// fastEvent reads one event object from dec; ok is false for anything
// decodeFast leaves to the strict decoder, a member named twice included.
// Invalid UTF-8 is an error of dec itself.
func fastEvent(dec *jsontext.Decoder) (e usage.Event, ok bool) {
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return e, false
	}
	var seen uint16 // a bit for each member read
	for dec.PeekKind() == '"' {
		name, err := dec.ReadValue()
		if err != nil {
			return e, false
		}
		// The raw name: an escaped spelling is left to the strict decoder.
		var s *string
		var n *int64
		var i *int
		var bit uint16
		switch string(name) {
		case `"v"`:
			i, bit = &e.Version, 1<<0
		case `"event_id"`:
			s, bit = &e.EventID, 1<<1
		case `"user_id"`:
			s, bit = &e.UserID, 1<<2
		case `"api_key_id"`:
			s, bit = &e.APIKeyID, 1<<3
		case `"endpoint"`:
			s, bit = &e.Endpoint, 1<<4
		case `"method"`:
			s, bit = &e.Method, 1<<5
		case `"status_code"`:
			i, bit = &e.StatusCode, 1<<6
		case `"latency_ms"`:
			n, bit = &e.LatencyMS, 1<<7
		case `"request_bytes"`:
			n, bit = &e.RequestBytes, 1<<8
		case `"response_bytes"`:
			n, bit = &e.ResponseBytes, 1<<9
		case `"quantity"`:
			n, bit = &e.Quantity, 1<<10
		case `"occurred_at"`:
			bit = 1 << 11
		default:
			return e, false
		}
		if seen&bit != 0 {
			return e, false
		}
		seen |= bit
		if bit == 1<<11 {
			v, err := dec.ReadValue()
			if err != nil || e.OccurredAt.UnmarshalJSON(v) != nil {
				return e, false
			}
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return e, false
		}
		switch {
		case v.Kind() == 'n':
			// null leaves the field as it is, as encoding/json does; no
			// member comes twice, so that is its zero value.
		case s != nil:
			if *s, ok = fastString(v); !ok {
				return e, false
			}
		case n != nil:
			if *n, ok = fastInt(v); !ok {
				return e, false
			}
		default:
			x, ok := fastInt(v)
			if !ok || int64(int(x)) != x {
				return e, false
			}
			*i = int(x)
		}
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return e, false
	}
	return e, true
}

// fastString returns the text of a JSON string value.
func fastString(v jsontext.Value) (string, bool) {
	if v.Kind() != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), true
	}
	b, err := jsontext.AppendUnquote(nil, v)
	return string(b), err == nil
}

// fastInt returns the value of a JSON number written as an integer that
// fits an int64, what strconv.ParseInt accepts, as encoding/json reads
// integers; fractions and exponents are left to the strict decoder.
func fastInt(v jsontext.Value) (int64, bool) {
	if v.Kind() != '0' {
		return 0, false
	}
	neg := v[0] == '-'
	digits := v
	if neg {
		digits = v[1:]
	}
	if len(digits) == 0 || len(digits) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case !neg && u <= 1<<63-1:
		return int64(u), true
	case neg && u <= 1<<63:
		return int64(-u), true
	}
	return 0, false
}
