package usage

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// EventVersion is the version of the usage event JSON this code writes and
// accepts.
const EventVersion = 1

// Limits on a usage event.
const (
	MaxEndpointBytes = 256
	MaxQuantity      = 1_000_000
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
// Version as EventVersion. It returns a CodeInvalid *Error naming the field.
func (e *Event) Validate(now time.Time, backfill time.Duration) error {
	if e.Version == 0 {
		e.Version = EventVersion
	}
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
	case !validText(e.Endpoint):
		return FieldErrorf("endpoint", "must be printable UTF-8")
	case !httpMethods[e.Method]:
		return FieldErrorf("method", "must be an HTTP method")
	case e.StatusCode < 100 || e.StatusCode > 599:
		return FieldErrorf("status_code", "must be between 100 and 599")
	case e.LatencyMS < 0 || e.LatencyMS > 1<<31-1:
		return FieldErrorf("latency_ms", "must be between 0 and 2147483647")
	case e.RequestBytes < 0:
		return FieldErrorf("request_bytes", "must not be negative")
	case e.ResponseBytes < 0:
		return FieldErrorf("response_bytes", "must not be negative")
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

// validText reports whether s is valid UTF-8 without control characters.
func validText(s string) bool {
	for _, r := range s {
		if r == 0xFFFD || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
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
