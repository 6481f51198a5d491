package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

// eventResult is the outcome of one event of POST /v1/events.
type eventResult struct {
	Index   int    `json:"index"`
	EventID string `json:"event_id,omitempty"`
	Status  string `json:"status"`
	Param   string `json:"param,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// postEvents validates each event on its own and queues the valid ones
// under the caller's identity.
func (h *Handler) postEvents(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	if h.Publisher == nil {
		return h.fail(ctx, usage.Errorf(usage.CodeUnavailable, "event ingestion is not configured"))
	}
	body, err := r.Body()
	if err != nil {
		return h.fail(ctx, usage.FieldErrorf("body", "is not valid base64"))
	}
	if len(body) > MaxEventsBytes {
		return httpapi.NewProblem(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body larger than %d bytes", MaxEventsBytes))
	}
	var in struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := decodeJSON(body, &in, false); err != nil {
		return h.fail(ctx, err)
	}
	switch {
	case in.Events == nil:
		return h.fail(ctx, usage.FieldErrorf("events", "is required"))
	case len(in.Events) == 0:
		return h.fail(ctx, usage.FieldErrorf("events", "must hold at least one event"))
	case len(in.Events) > MaxEvents:
		return h.fail(ctx, usage.FieldErrorf("events", "more than %d events", MaxEvents))
	}
	now := h.now()
	results := make([]eventResult, len(in.Events))
	accepted := 0
	for i, raw := range in.Events {
		res := &results[i]
		res.Index = i
		e, err := decodeEvent(raw)
		if err == nil {
			// The caller's identity wins over whatever the body claims.
			e.UserID, e.APIKeyID = id.UserID, id.APIKeyID
			res.EventID = e.EventID
			err = e.Validate(now, usage.DefaultBackfillWindow)
		}
		if err != nil {
			res.Status, res.Param, res.Detail = "rejected", usage.ErrorField(err), usage.ErrorMessage(err)
			continue
		}
		if err := h.Publisher.Publish(ctx, e); err != nil {
			return h.fail(ctx, err)
		}
		res.Status = "accepted"
		accepted++
	}
	if accepted > 0 {
		// Events may have been queued before a failure: a retry with the
		// same event ids is counted once.
		if err := h.Publisher.Flush(ctx); err != nil {
			return h.fail(ctx, err)
		}
	}
	// 202 even when every event was rejected: the per-event results are
	// the answer, and nothing in the request as a whole was wrong.
	return httpapi.JSON(http.StatusAccepted, map[string]any{"accepted": accepted, "rejected": len(results) - accepted, "results": results})
}

// decodeEvent reads one event of the body; fields it does not know are
// ignored, as the API document allows. Errors name the event's field.
func decodeEvent(raw json.RawMessage) (usage.Event, error) {
	var e usage.Event
	err := json.Unmarshal(raw, &e)
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return e, nil
	case isTimeError(err):
		// occurred_at is an event's one time.Time, which decodes itself
		// and names no field in its errors.
		return e, usage.FieldErrorf("occurred_at", "must be a date-time (RFC 3339)")
	case errors.As(err, &te) && te.Field == "":
		return e, usage.Errorf(usage.CodeInvalid, "an event must be a JSON object")
	}
	return e, jsonError(err, len(raw))
}
