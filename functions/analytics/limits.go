package main

import (
	"bytes"
	"context"
	"net/http"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

// postLimitsCheck counts a call of the body's cost (1 without a body)
// against the caller's limits and answers the decision, allowed or not,
// with the rate limit headers the middleware sends.
func (h *Handler) postLimitsCheck(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	if h.Limits == nil {
		return h.fail(ctx, usage.Errorf(usage.CodeUnavailable, "limit checks are not configured"))
	}
	var in struct {
		Cost *int64 `json:"cost"`
	}
	b, err := readBody(r, maxBodyBytes)
	if err != nil {
		return h.fail(ctx, err)
	}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := decodeJSON(b, &in, true); err != nil {
			return h.fail(ctx, err)
		}
	}
	cost := int64(1)
	if in.Cost != nil {
		cost = *in.Cost
	}
	if cost < 1 || cost > usage.MaxQuantity {
		return h.fail(ctx, usage.FieldErrorf("cost", "must be between 1 and %d", usage.MaxQuantity))
	}
	d, err := h.Limits.Check(ctx, id, cost)
	if err != nil {
		return h.fail(ctx, err)
	}
	resp := httpapi.JSON(http.StatusOK, newDecisionBody(d))
	for k, v := range httpapi.RateLimitHeaders(d, h.now()) {
		resp.Headers[k] = v
	}
	return resp
}

type decisionBody struct {
	Allowed       bool    `json:"allowed"`
	Reason        *string `json:"reason"`
	Limit         int64   `json:"limit"`
	Remaining     int64   `json:"remaining"`
	ResetSeconds  int64   `json:"reset_seconds"`
	RetryAfter    int64   `json:"retry_after_seconds"`
	RatePerSecond float64 `json:"rate_per_second"`
	Quota         struct {
		Period    period `json:"period"`
		Included  int64  `json:"included"`
		Used      int64  `json:"used"`
		Remaining int64  `json:"remaining"`
		Hard      bool   `json:"hard"`
	} `json:"quota"`
}

func newDecisionBody(d usage.Decision) decisionBody {
	b := decisionBody{Allowed: d.Allowed, Limit: d.Limit, Remaining: d.Remaining,
		ResetSeconds: httpapi.Seconds(d.Reset), RetryAfter: httpapi.Seconds(d.RetryAfter), RatePerSecond: d.RatePerSecond}
	if d.Reason != "" {
		b.Reason = &d.Reason
	}
	q := d.Quota
	b.Quota.Period, b.Quota.Included, b.Quota.Used, b.Quota.Remaining, b.Quota.Hard = period(q.Period), q.Included, q.Used, q.Remaining, q.Hard
	return b
}
