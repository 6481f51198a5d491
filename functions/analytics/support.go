package main

import (
	"context"
	"net/http"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

// The admin's view of one user, for support: what the user sees on the
// user routes (the same answers, for the user of the path), and the audit
// trail of the user's plan.

// pathUser is the user id of the route's path.
func pathUser(r *httpapi.Request) (string, error) {
	id := r.Param("id")
	if !usage.IsUUID(id) {
		return "", usage.FieldErrorf("id", "must be a UUID")
	}
	return id, nil
}

// userRoute serves a user route for the user of the path.
func (h *Handler) userRoute(f func(ctx context.Context, r *httpapi.Request, userID string) httpapi.Response) routeFunc {
	return func(ctx context.Context, r *httpapi.Request, _ usage.Identity) httpapi.Response {
		id, err := pathUser(r)
		if err != nil {
			return h.fail(ctx, err)
		}
		return f(ctx, r, id)
	}
}

// getUserUsage shows an admin what the user sees on GET /v1/usage.
func (h *Handler) getUserUsage(ctx context.Context, r *httpapi.Request, userID string) httpapi.Response {
	return h.usageOf(ctx, userID)
}

// getUserDaily shows an admin what the user sees on GET /v1/usage/daily.
func (h *Handler) getUserDaily(ctx context.Context, r *httpapi.Request, userID string) httpapi.Response {
	return h.dailyOf(ctx, r, userID)
}

// getUserEndpoints shows an admin what the user sees on GET
// /v1/usage/endpoints.
func (h *Handler) getUserEndpoints(ctx context.Context, r *httpapi.Request, userID string) httpapi.Response {
	return h.breakdown(ctx, r, userID, false)
}

// getUserKeys shows an admin what the user sees on GET /v1/usage/keys.
func (h *Handler) getUserKeys(ctx context.Context, r *httpapi.Request, userID string) httpapi.Response {
	return h.breakdown(ctx, r, userID, true)
}

// getUserAudit lists a page of the user's plan changes, newest first.
func (h *Handler) getUserAudit(ctx context.Context, r *httpapi.Request, userID string) httpapi.Response {
	limit, err := r.Limit(DefaultLimit, MaxLimit)
	if err != nil {
		return h.fail(ctx, err)
	}
	var c struct {
		Before int64 `json:"b"`
	}
	if ok, err := r.DecodeCursor(&c); err != nil {
		return h.fail(ctx, err)
	} else if ok && c.Before <= 0 {
		return h.fail(ctx, usage.FieldErrorf("cursor", "is not a cursor of this list"))
	}
	rows, err := h.Admin.PlanAudit(ctx, userID, c.Before, limit+1)
	if err != nil {
		return h.fail(ctx, err)
	}
	var p page
	if len(rows) > limit {
		rows = rows[:limit]
		c.Before = rows[limit-1].ID
		p.NextCursor = httpapi.EncodeCursor(c)
	}
	p.Items = rows
	return httpapi.JSON(http.StatusOK, p)
}
