package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Event types. A webhook endpoint subscribes to some of them (none: all).
const (
	// EventThreshold: a percent or calls rule was reached (Crossing).
	EventThreshold = "usage.threshold.reached"
	// EventOverage: an overage rule was reached (Crossing).
	EventOverage = "usage.overage.reached"
	// EventQuota: a hard quota was reached (Crossing).
	EventQuota = "usage.quota.reached"
	// EventEndpointDisabled: an endpoint failed every delivery for
	// DisableAfter and was disabled (EndpointDisabled). It goes to the
	// platform's endpoints and to the owner's other endpoints.
	EventEndpointDisabled = "webhook.endpoint.disabled"
)

// EventTypes are the event types, in the order the API lists them.
var EventTypes = []string{EventThreshold, EventOverage, EventQuota, EventEndpointDisabled}

// KnownEventType reports whether t is one of EventTypes.
func KnownEventType(t string) bool { return slices.Contains(EventTypes, t) }

// Event is one entry of the outbox: raised once, delivered to every
// endpoint that wants it with the same id, which receivers deduplicate
// on (Standard Webhooks' webhook-id).
type Event struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	UserID string `json:"user_id,omitempty"`
	// At is when the event was raised: the webhook's timestamp field.
	At time.Time `json:"at"`
	// Data is the event's data as the outbox holds it (Crossing,
	// EndpointDisabled).
	Data json.RawMessage `json:"data"`
}

// EndpointDisabled is the data of EventEndpointDisabled.
type EndpointDisabled struct {
	EndpointID   string    `json:"endpoint_id"`
	UserID       string    `json:"user_id,omitempty"`
	URL          string    `json:"url"`
	FailingSince time.Time `json:"failing_since"`
	DisabledAt   time.Time `json:"disabled_at"`
	LastError    string    `json:"last_error"`
}

// payload is a webhook's body: the Standard Webhooks payload structure.
type payload struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Body is the webhook body of e: {"type", "timestamp", "data"}, the same
// bytes for every endpoint and every attempt (data is compacted, keys in
// the order the outbox holds them).
func (e Event) Body() ([]byte, error) {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	b, err := json.Marshal(payload{Type: e.Type, Timestamp: e.At.UTC(), Data: data})
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return b, nil
}

// MessageID is the webhook-id of e: its id with the msg_ prefix Standard
// Webhooks' examples use.
func (e Event) MessageID() string { return "msg_" + e.ID }
