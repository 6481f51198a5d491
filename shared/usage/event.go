package usage

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// EventVersion is the version of the usage event JSON this code writes and
// accepts.
const EventVersion = 1

// Bounds of a usage event's fields: Validate refuses values outside them,
// naming the field. They are chosen so that no sum the system keeps can
// overflow PostgreSQL's bigint (9,223,372,036,854,775,807 ≈ 9.2 × 10^18)
// within its lifetime. Take a write path ceiling of 10^6 events/s (ten times
// the 100,000/s of docs/capacity.md's scale path, beyond which the raw log
// leaves PostgreSQL), all of it for one user at the maximum quantity:
//
//   - calls (and errors, which count quantity too) of a user and day:
//     86,400 s × 10^6 events/s × MaxQuantity = 8.64 × 10^16, 106 times
//     below the maximum: the live counters, the rollup rows and the per-user
//     daily summary are exact;
//   - calls of a user and month (the month-to-date arrays, a billing
//     period's used calls): 31 × 8.64 × 10^16 = 2.68 × 10^18, 3.4 times below:
//     billing is exact;
//   - a batch: 10,000 events (100 messages of 100) × MaxQuantity = 10^10 calls,
//     × MaxTransferBytes = 1.1 × 10^16 bytes, × MaxLatencyMS = 3.6 × 10^10 ms.
//
// Bytes and latency are not bounded that way: a user-day of the ceiling's
// events at MaxTransferBytes is 9.5 × 10^22 bytes. Every sum of bytes or
// latency (counters, rollups, summaries, analytics) therefore saturates at
// the bigint maximum instead of failing, and so do the analytics sums over
// ranges longer than a month (up to MaxRangeDays of every user, which the
// ceiling could push past the maximum after 106 days): a report shows the
// maximum where the truth is larger, and recording never stops.
const (
	// MaxEndpointBytes is the longest endpoint, in bytes of UTF-8.
	MaxEndpointBytes = 256
	// MaxQuantity is the largest quantity of one event on the queue (1 is
	// the smallest). POST /v1/events may cap it lower.
	MaxQuantity = 1_000_000
	// MaxLatencyMS is the longest latency_ms, one hour: far beyond API
	// Gateway's 30 s and Lambda's 15 min; a longer figure is a broken clock,
	// not a call.
	MaxLatencyMS = 3_600_000
	// MaxTransferBytes is the largest request_bytes and response_bytes of
	// one event, 1 TiB (2^40 = 1,099,511,627,776).
	MaxTransferBytes = 1 << 40
	// MaxFutureSkew is how far in the future an event's time may be.
	MaxFutureSkew = 5 * time.Minute
	// DefaultBackfillWindow is how old an event may be by default.
	DefaultBackfillWindow = 35 * 24 * time.Hour
)

// Event is one metered API call. EventID is chosen by the producer and is
// the idempotency key: the same event delivered twice is stored and counted
// once.
type Event struct {
	Version       int       `json:"v"`
	EventID       string    `json:"event_id"`
	UserID        string    `json:"user_id"`
	APIKeyID      string    `json:"api_key_id,omitempty"`
	Endpoint      string    `json:"endpoint"`
	Method        string    `json:"method"`
	StatusCode    int       `json:"status_code"`
	LatencyMS     int64     `json:"latency_ms"`
	RequestBytes  int64     `json:"request_bytes"`
	ResponseBytes int64     `json:"response_bytes"`
	Quantity      int64     `json:"quantity"`
	OccurredAt    time.Time `json:"occurred_at"`
}

// httpMethods are the methods an event may carry: the standard ones and
// MethodOther, which stands for any other.
var httpMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "OPTIONS": true, "CONNECT": true, "TRACE": true,
	MethodOther: true,
}

// IsUUID reports whether s is a UUID in its canonical textual form.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// Validate checks e against the rules of a usage event at time now, with
// events older than backfill refused. A zero Quantity is read as 1 and a zero
// Version as EventVersion; the ids are set in small letters, their one
// spelling (a UUID in capitals is the same id, and the record path tells
// duplicates apart by the id's text). It returns a CodeInvalid *Error
// naming the field.
func (e *Event) Validate(now time.Time, backfill time.Duration) error {
	if e.Version == 0 {
		e.Version = EventVersion
	}
	e.EventID, e.UserID, e.APIKeyID = strings.ToLower(e.EventID), strings.ToLower(e.UserID), strings.ToLower(e.APIKeyID)
	if e.Quantity == 0 {
		e.Quantity = 1
	}
	switch {
	case e.Version != EventVersion:
		return FieldErrorf("v", "unsupported version %d", e.Version)
	case !IsUUID(e.EventID):
		return FieldErrorf("event_id", "must be a UUID")
	case !IsUUID(e.UserID):
		return FieldErrorf("user_id", "must be a UUID")
	case e.APIKeyID != "" && !IsUUID(e.APIKeyID):
		return FieldErrorf("api_key_id", "must be a UUID")
	case e.Endpoint == "":
		return FieldErrorf("endpoint", "is required")
	case len(e.Endpoint) > MaxEndpointBytes:
		return FieldErrorf("endpoint", "longer than %d bytes", MaxEndpointBytes)
	case textProblem(e.Endpoint) != "":
		return FieldErrorf("endpoint", "%s", textProblem(e.Endpoint))
	case !httpMethods[e.Method]:
		return FieldErrorf("method", "must be an HTTP method")
	case e.StatusCode < 100 || e.StatusCode > 599:
		return FieldErrorf("status_code", "must be between 100 and 599")
	case e.LatencyMS < 0 || e.LatencyMS > MaxLatencyMS:
		return FieldErrorf("latency_ms", "must be between 0 and %d", MaxLatencyMS)
	case e.RequestBytes < 0 || e.RequestBytes > MaxTransferBytes:
		return FieldErrorf("request_bytes", "must be between 0 and %d", int64(MaxTransferBytes))
	case e.ResponseBytes < 0 || e.ResponseBytes > MaxTransferBytes:
		return FieldErrorf("response_bytes", "must be between 0 and %d", int64(MaxTransferBytes))
	case e.Quantity < 1 || e.Quantity > MaxQuantity:
		return FieldErrorf("quantity", "must be between 1 and %d", MaxQuantity)
	case e.OccurredAt.IsZero():
		return FieldErrorf("occurred_at", "is required")
	case e.OccurredAt.After(now.Add(MaxFutureSkew)):
		return FieldErrorf("occurred_at", "more than %s in the future", MaxFutureSkew)
	case e.OccurredAt.Before(now.Add(-backfill)):
		return FieldErrorf("occurred_at", "older than the backfill window of %s", backfill)
	}
	return nil
}

// PrintableRune reports whether r may appear in an event's text: a
// character that shows as itself. It refuses the C0 and C1 controls and
// DEL, U+FFFD (what invalid UTF-8 decodes to), the format characters
// (Unicode category Cf: bidirectional overrides and isolates
// U+202A–U+202E and U+2066–U+2069, zero-width characters U+200B–U+200F,
// U+2060–U+2064 and U+FEFF, the soft hyphen, tags …), the line and
// paragraph separators U+2028 and U+2029, and the noncharacters (U+FDD0–
// U+FDEF and every U+xFFFE and U+xFFFF). NormalizeEndpoint escapes
// exactly these.
func PrintableRune(r rune) bool {
	switch {
	case r == utf8.RuneError, r < 0x20, r >= 0x7f && r <= 0x9f:
		return false
	case r >= 0xfdd0 && r <= 0xfdef, r&0xfffe == 0xfffe:
		return false
	case r == 0x2028, r == 0x2029, unicode.Is(unicode.Cf, r):
		return false
	}
	return true
}

// textProblem says what makes s unfit for an event's text field, or ""
// when nothing does: invalid UTF-8, or the first rune PrintableRune
// refuses, named by its code point and byte offset.
func textProblem(s string) string {
	for i, r := range s {
		if PrintableRune(r) {
			continue
		}
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Sprintf("is not valid UTF-8 at byte %d", i)
			}
		}
		return fmt.Sprintf("must not contain U+%04X, %s (at byte %d)", r, runeKind(r), i)
	}
	return ""
}

// runeKind names the class of a rune PrintableRune refuses.
func runeKind(r rune) string {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return "a control character"
	case r == utf8.RuneError:
		return "the replacement character"
	case r >= 0xfdd0 && r <= 0xfdef, r&0xfffe == 0xfffe:
		return "a noncharacter"
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return "a bidirectional formatting character"
	case r == 0x2028, r == 0x2029:
		return "a line or paragraph separator"
	}
	return "an invisible formatting character"
}

// Publisher queues usage events for the record function. Implementations
// batch; Flush sends everything buffered and must be called before a Lambda
// handler returns.
type Publisher interface {
	// Publish queues e. It may block while the buffer is full; it returns
	// CodeUnavailable if the event could not be queued before ctx ended.
	Publish(ctx context.Context, e Event) error
	// Flush sends every queued event and returns the first error.
	Flush(ctx context.Context) error
}

// Sender sends events to the usage queue at once and says what became of
// each one.
type Sender interface {
	// Send validates and sends the events now, and returns one error per
	// event, in their order: nil for an event the queue accepted;
	// CodeInvalid for one that is invalid or that the queue refused (it
	// will not be accepted as it is); CodeUnavailable for one that could
	// not be sent (sending it again with the same event id is harmless).
	Send(ctx context.Context, events []Event) []error
}
