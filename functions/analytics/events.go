package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"net/http"
	"strings"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/record"
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

// postEvents validates each event on its own and sends the valid ones to
// the usage queue under the caller's identity, at once, answering for each
// event what became of it: accepted (the queue has it), rejected (invalid,
// or refused by the queue, with the reason; sending it again as it is will
// not help) or failed (the queue could not be reached: send it again with
// the same event id). Ingestion is metered like any other call:
// the request costs the caller's rate limit one call per event it holds
// (valid or not), a refusal is the middleware's 429 and queues nothing, and
// each event's quantity is capped by MaxEventQuantity. The quota is not
// asked (LimitChecker.CheckRate): the events report calls already served.
func (h *Handler) postEvents(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	if h.Publisher == nil || h.Limits == nil {
		return h.fail(ctx, usage.Errorf(usage.CodeUnavailable, "event ingestion is not configured"))
	}
	body, err := readBody(r, MaxEventsBytes)
	if err != nil {
		return h.fail(ctx, err)
	}
	var in struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := decodeJSON(body, &in, false); err != nil {
		return h.fail(ctx, err)
	}
	switch {
	case namedTwice(body, "events"):
		// The decoder kept the last list: the first would go unanswered.
		return h.fail(ctx, usage.FieldErrorf("events", "is given twice"))
	case in.Events == nil:
		return h.fail(ctx, usage.FieldErrorf("events", "is required"))
	case len(in.Events) == 0:
		return h.fail(ctx, usage.FieldErrorf("events", "must hold at least one event"))
	case len(in.Events) > MaxEvents:
		return h.fail(ctx, usage.FieldErrorf("events", "more than %d events", MaxEvents))
	}
	now := h.now()
	d, err := h.Limits.CheckRate(ctx, id, int64(len(in.Events)))
	if usage.ErrorField(err) == "cost" {
		// More events than the caller's burst: no wait makes them fit.
		return h.fail(ctx, usage.FieldErrorf("events", "%d events at once %s of your rate limit; send fewer per request",
			len(in.Events), strings.TrimPrefix(usage.ErrorMessage(err), "cost: ")))
	}
	if err != nil {
		return h.fail(ctx, err)
	}
	if !d.Allowed {
		return httpapi.Refusal(d, now)
	}
	maxQuantity := h.maxEventQuantity()
	results := make([]eventResult, len(in.Events))
	var valid []usage.Event
	var at []int // valid[j] is the event at results[at[j]]
	for i, raw := range in.Events {
		res := &results[i]
		res.Index = i
		e, err := decodeEvent(raw)
		if err == nil {
			// The caller's identity wins over whatever the body claims.
			e.UserID, e.APIKeyID = id.UserID, id.APIKeyID
			res.EventID = e.EventID
			// A field named twice (in any case) is refused, as the record
			// path refuses it: the decoder kept the last value.
			if f := record.NamedTwice(raw); f != "" {
				err = usage.FieldErrorf(f, "is given twice")
			} else {
				err = e.Validate(now, h.backfillWindow())
			}
		}
		if err == nil && e.Quantity > maxQuantity {
			err = usage.FieldErrorf("quantity", "must be between 1 and %d", maxQuantity)
		}
		if err != nil {
			res.Status, res.Param, res.Detail = "rejected", usage.ErrorField(err), usage.ErrorMessage(err)
			continue
		}
		valid = append(valid, e)
		at = append(at, i)
	}
	var counts struct{ accepted, rejected, failed int }
	var failure error
	var sent []error
	if len(valid) > 0 {
		sent = h.Publisher.Send(ctx, valid)
	}
	for j, err := range sent {
		res := &results[at[j]]
		switch {
		case err == nil:
			res.Status = "accepted"
		case usage.ErrorCode(err) == usage.CodeUnavailable:
			res.Status, res.Detail = "failed", usage.ErrorMessage(err)
			failure = err
		case usage.ErrorCode(err) == usage.CodeInternal:
			return h.fail(ctx, err)
		default:
			res.Status, res.Param, res.Detail = "rejected", usage.ErrorField(err), usage.ErrorMessage(err)
		}
	}
	for _, r := range results {
		switch r.Status {
		case "accepted":
			counts.accepted++
		case "failed":
			counts.failed++
		default:
			counts.rejected++
		}
	}
	if counts.failed > 0 && counts.accepted == 0 {
		// Nothing reached the queue: the request as a whole may be sent
		// again (the same event ids are counted once).
		return h.fail(ctx, failure)
	}
	// 202 even when every event was rejected: the per-event results are
	// the answer, and nothing in the request as a whole was wrong. Events
	// that failed beside accepted ones are "failed" in the results: send
	// those again with the same ids.
	resp := httpapi.JSON(http.StatusAccepted, map[string]any{"accepted": counts.accepted, "rejected": counts.rejected,
		"failed": counts.failed, "results": results})
	for k, v := range httpapi.RateLimitHeaders(d, now) {
		resp.Headers[k] = v
	}
	return resp
}

// maxEventQuantity is the quantity cap of one event.
func (h *Handler) backfillWindow() time.Duration {
	if h.BackfillWindow <= 0 {
		return usage.DefaultBackfillWindow
	}
	return h.BackfillWindow
}

func (h *Handler) maxEventQuantity() int64 {
	if h.MaxEventQuantity <= 0 {
		return DefaultMaxEventQuantity
	}
	return min(h.MaxEventQuantity, usage.MaxQuantity)
}

// decodeEvent reads one event of the body; fields it does not know are
// ignored, as the API document allows. Errors name the event's field.
func decodeEvent(raw json.RawMessage) (usage.Event, error) {
	var e usage.Event
	err := json.Unmarshal(raw, &e)
	var te *json.UnmarshalTypeError
	switch {
	case err == nil && bytes.Equal(bytes.Trim(raw, " \t\r\n"), []byte("null")):
		// null decodes as an event with every field zero: no event at all.
		return e, usage.Errorf(usage.CodeInvalid, "an event must be a JSON object")
	case err == nil:
		return e, nil
	case usage.IsTimeError(err):
		// occurred_at is an event's one time.Time, which decodes itself
		// and names no field in its errors.
		return e, usage.FieldErrorf("occurred_at", "must be a date-time (RFC 3339)")
	case errors.As(err, &te) && te.Field == "":
		return e, usage.Errorf(usage.CodeInvalid, "an event must be a JSON object")
	}
	return e, usage.JSONError(err, len(raw), "body")
}
