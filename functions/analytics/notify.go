package main

import (
	"context"
	"net/http"
	"time"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/usage"
)

// The notification routes: threshold rules, webhook endpoints, the
// delivery log and replay. Users manage their own under /v1/notify and
// /v1/webhooks (and see their plan's rules); admins everyone's under
// /v1/admin. Each answers 503 without Notify.

// owner is who a notification route acts for.
func owner(id usage.Identity, admin bool) notify.Owner {
	return notify.Owner{UserID: id.UserID, Admin: admin}
}

// notifyRoute serves a notification route, for the caller (admin: as an
// admin), when the handler has Notify.
func (h *Handler) notifyRoute(admin bool, f func(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response) routeFunc {
	return func(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
		if h.Notify == nil {
			return h.fail(ctx, usage.Errorf(usage.CodeUnavailable, "notifications are not configured"))
		}
		return f(ctx, r, owner(id, admin))
	}
}

// ruleBody is the body of POST and PATCH on rules; plan_id and user_id are
// an admin's (one of them on POST).
type ruleBody struct {
	notify.RuleInput
	PlanID *string `json:"plan_id"`
	UserID *string `json:"user_id"`
}

// ruleJSON is a rule as the API shows it: with its scope and event type.
type ruleJSON struct {
	notify.Rule
	Scope     string `json:"scope"`
	EventType string `json:"event_type"`
}

func rulesJSON(rs []notify.Rule) []ruleJSON {
	out := make([]ruleJSON, len(rs))
	for i, r := range rs {
		out[i] = ruleJSON{Rule: r, Scope: r.Scope(), EventType: r.EventType()}
	}
	return out
}

// optional is a query parameter, nil when absent.
func optional(r *httpapi.Request, name string) *string {
	if v := r.Query(name); v != "" {
		return &v
	}
	return nil
}

func (h *Handler) getRules(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	rules, err := h.Notify.Rules(ctx, o, notify.RuleFilter{PlanID: optional(r, "plan_id"), UserID: optional(r, "user_id")})
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, page{Items: rulesJSON(rules)})
}

func (h *Handler) postRule(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	var in ruleBody
	if err := h.decode(r, &in); err != nil {
		return h.fail(ctx, err)
	}
	if !o.Admin && (in.PlanID != nil || in.UserID != nil) {
		return h.fail(ctx, usage.FieldErrorf("plan_id", "is set by admins only; your rules are your own"))
	}
	rule := notify.Rule{Enabled: true}
	if in.PlanID != nil {
		rule.PlanID = *in.PlanID
	}
	if in.UserID != nil {
		rule.UserID = *in.UserID
	}
	if in.Kind == nil {
		return h.fail(ctx, usage.FieldErrorf("kind", "is required"))
	}
	rule.Kind = *in.Kind
	if in.Value != nil {
		rule.Value = *in.Value
	}
	if in.Enabled != nil {
		rule.Enabled = *in.Enabled
	}
	if in.Description != nil {
		rule.Description = *in.Description
	}
	created, err := h.Notify.CreateRule(ctx, o, rule)
	if err != nil {
		return h.fail(ctx, err)
	}
	h.Logger.InfoContext(ctx, "notification rule created", "rule_id", created.ID, "plan_id", created.PlanID,
		"user_id", created.UserID, "kind", created.Kind, "value", created.Value, "by", o.UserID)
	return httpapi.JSON(http.StatusCreated, rulesJSON([]notify.Rule{*created})[0])
}

func (h *Handler) patchRule(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	var in notify.RuleInput
	if err := h.decode(r, &in); err != nil {
		return h.fail(ctx, err)
	}
	rule, err := h.Notify.UpdateRule(ctx, o, r.Param("id"), in)
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, rulesJSON([]notify.Rule{*rule})[0])
}

func (h *Handler) deleteRule(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	if err := h.Notify.DeleteRule(ctx, o, r.Param("id")); err != nil {
		return h.fail(ctx, err)
	}
	return noContent()
}

// endpointJSON is an endpoint as the API shows it; Secret only when it was
// just made (creation, rotation).
type endpointJSON struct {
	notify.Endpoint
	Secret string `json:"secret,omitempty"`
}

// endpointBody is the body of POST and PATCH on endpoints; user_id is an
// admin's (POST: the endpoint's owner; none: the platform's).
type endpointBody struct {
	notify.EndpointInput
	UserID *string `json:"user_id"`
}

func (h *Handler) getWebhookEndpoints(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	f := notify.EndpointFilter{UserID: optional(r, "user_id"), Platform: r.Query("platform") == "true"}
	eps, err := h.Notify.Endpoints(ctx, o, f)
	if err != nil {
		return h.fail(ctx, err)
	}
	out := make([]endpointJSON, len(eps))
	for i, e := range eps {
		out[i] = endpointJSON{Endpoint: e}
	}
	return httpapi.JSON(http.StatusOK, page{Items: out})
}

func (h *Handler) postEndpoint(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	var in endpointBody
	if err := h.decode(r, &in); err != nil {
		return h.fail(ctx, err)
	}
	if !o.Admin && in.UserID != nil {
		return h.fail(ctx, usage.FieldErrorf("user_id", "is set by admins only; your endpoints are your own"))
	}
	user := ""
	if in.UserID != nil {
		user = *in.UserID
	}
	e, err := h.Notify.CreateEndpoint(ctx, o, user, in.EndpointInput)
	if err != nil {
		return h.fail(ctx, err)
	}
	h.Logger.InfoContext(ctx, "webhook endpoint created", "endpoint_id", e.ID, "user_id", e.UserID, "by", o.UserID)
	return httpapi.JSON(http.StatusCreated, endpointJSON{Endpoint: *e, Secret: e.Secret})
}

func (h *Handler) patchEndpoint(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	var in notify.EndpointInput
	if err := h.decode(r, &in); err != nil {
		return h.fail(ctx, err)
	}
	e, err := h.Notify.UpdateEndpoint(ctx, o, r.Param("id"), in)
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, endpointJSON{Endpoint: *e})
}

func (h *Handler) deleteEndpoint(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	if err := h.Notify.DeleteEndpoint(ctx, o, r.Param("id")); err != nil {
		return h.fail(ctx, err)
	}
	return noContent()
}

func (h *Handler) postRotate(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	var in struct {
		OverlapSeconds *int64 `json:"overlap_seconds"`
	}
	if b, _ := r.Body(); len(b) > 0 {
		if err := h.decode(r, &in); err != nil {
			return h.fail(ctx, err)
		}
	}
	var overlap time.Duration
	if in.OverlapSeconds != nil {
		if *in.OverlapSeconds < 1 || *in.OverlapSeconds > int64(notify.MaxRotationOverlap/time.Second) {
			return h.fail(ctx, usage.FieldErrorf("overlap_seconds", "must be between 1 and %d", int64(notify.MaxRotationOverlap/time.Second)))
		}
		overlap = time.Duration(*in.OverlapSeconds) * time.Second
	}
	e, err := h.Notify.RotateSecret(ctx, o, r.Param("id"), overlap)
	if err != nil {
		return h.fail(ctx, err)
	}
	h.Logger.InfoContext(ctx, "webhook secret rotated", "endpoint_id", e.ID, "by", o.UserID)
	return httpapi.JSON(http.StatusOK, endpointJSON{Endpoint: *e, Secret: e.Secret})
}

func (h *Handler) getDeliveries(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	limit, err := r.Limit(DefaultLimit, MaxLimit)
	if err != nil {
		return h.fail(ctx, err)
	}
	f := notify.DeliveryFilter{EndpointID: optional(r, "endpoint_id"), UserID: optional(r, "user_id"), Status: optional(r, "status"), Limit: limit + 1}
	var c notify.DeliveryCursor
	if ok, err := r.DecodeCursor(&c); err != nil {
		return h.fail(ctx, err)
	} else if ok {
		if !usage.IsUUID(c.ID) {
			return h.fail(ctx, usage.FieldErrorf("cursor", "is not a cursor of this list"))
		}
		f.Before = &c
	}
	ds, err := h.Notify.Deliveries(ctx, o, f)
	if err != nil {
		return h.fail(ctx, err)
	}
	keep, err := fitPage(ds, limit)
	if err != nil {
		return h.fail(ctx, err)
	}
	var p page
	if keep < len(ds) {
		ds = ds[:keep]
		p.NextCursor = httpapi.EncodeCursor(notify.DeliveryCursor{CreatedAt: ds[keep-1].CreatedAt, ID: ds[keep-1].ID})
	}
	p.Items = ds
	return httpapi.JSON(http.StatusOK, p)
}

func (h *Handler) postReplay(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response {
	var in struct {
		DeliveryID string `json:"delivery_id"`
		EndpointID string `json:"endpoint_id"`
		Since      string `json:"since"`
	}
	if err := h.decode(r, &in); err != nil {
		return h.fail(ctx, err)
	}
	req := notify.ReplayRequest{DeliveryID: in.DeliveryID, EndpointID: in.EndpointID}
	if in.Since != "" {
		t, err := time.Parse(time.RFC3339, in.Since)
		if err != nil {
			return h.fail(ctx, usage.FieldErrorf("since", "must be a time like 2026-03-01T00:00:00Z"))
		}
		req.Since = t.UTC()
	}
	n, err := h.Notify.Replay(ctx, o, req)
	if err != nil {
		return h.fail(ctx, err)
	}
	h.Logger.InfoContext(ctx, "webhook deliveries replayed", "deliveries", n, "delivery_id", in.DeliveryID,
		"endpoint_id", in.EndpointID, "since", in.Since, "by", o.UserID)
	return httpapi.JSON(http.StatusAccepted, map[string]int{"replayed": n})
}

// decode reads a JSON body of the notification routes (strict).
func (h *Handler) decode(r *httpapi.Request, v any) error {
	b, err := readBody(r, maxBodyBytes)
	if err != nil {
		return err
	}
	return decodeJSON(b, v, true)
}

// noContent is a 204 answer.
func noContent() httpapi.Response {
	return httpapi.Response{StatusCode: http.StatusNoContent, Headers: map[string]string{}}
}
