package main

import (
	"context"
	"strings"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// The admin's view of one user, for support: what the user sees on the
// user routes (the same answers, for the user of the path), and the audit
// trail of the user's plan.

// pathUser is the user id of the route's path, in small letters: a UUID
// in capitals is the same id (usage.Event.Validate records ids in small
// letters), and the admin's view of a user answers what the user sees,
// user_id spelt as the user's own answer spells it.
func pathUser(r *httpapi.Request) (string, error) {
	id := r.Param("id")
	if !usage.IsUUID(id) {
		return "", usage.FieldErrorf("id", "must be a UUID")
	}
	return strings.ToLower(id), nil
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
	return newestFirst(ctx, h, r, func(before int64, n int) ([]report.PlanAuditEntry, error) {
		return h.Admin.PlanAudit(ctx, userID, before, n)
	}, func(e report.PlanAuditEntry) int64 { return e.ID })
}
