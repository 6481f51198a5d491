package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/usage"
)

// budgeted puts a route behind the caller's read budget (Handler.Reads):
// the read costs limits.ReadCost of its range (1 without one), a caller past
// the budget gets the write path's 429 problem+json with the same rate
// limit headers and Retry-After, and every answer carries the headers of
// the decision. A GET's 200 answer gets an ETag and Cache-Control (see
// conditional).
func (h *Handler) budgeted(f routeFunc) routeFunc {
	return func(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
		now := h.now()
		var headers map[string]string
		if h.Reads != nil {
			d, err := h.Reads.Take(ctx, id, readCost(r, now))
			if err != nil {
				return h.fail(ctx, err)
			}
			if !d.Allowed {
				return readRefusal(d, now)
			}
			headers = httpapi.RateLimitHeaders(d, now)
		}
		resp := f(ctx, r, id)
		if resp.Headers == nil {
			resp.Headers = map[string]string{}
		}
		for k, v := range headers {
			resp.Headers[k] = v
		}
		if r.Event.RequestContext.HTTP.Method == http.MethodGet {
			return conditional(r, resp, now)
		}
		return resp
	}
}

// readCost is what the request costs the read budget: a unit per started
// 31 days of the range it asks for (the route's default range when it
// names none), 1 for a range that does not parse (it is refused anyway)
// and for routes without one.
func readCost(r *httpapi.Request, now time.Time) int64 {
	if r.Query("from") == "" && r.Query("to") == "" {
		return 1
	}
	rg, err := r.DayRange(now, DefaultDays)
	if err != nil {
		return 1
	}
	return limits.ReadCost(rg)
}

// readRefusal is the 429 of a read past the budget: the problem type and
// headers of the write path's rate limit, in words about reads.
func readRefusal(d usage.Decision, now time.Time) httpapi.Response {
	resp := httpapi.Refusal(d, now)
	p := httpapi.Problem{Type: httpapi.ProblemType(usage.CodeRateLimited), Title: http.StatusText(http.StatusTooManyRequests),
		Status: http.StatusTooManyRequests,
		Detail: fmt.Sprintf("read budget of %d at %s a second exceeded (a read costs 1 per %d days of its range); retry in %d s",
			d.Limit, strconv.FormatFloat(d.RatePerSecond, 'f', -1, 64), limits.ReadCostDays, max(1, httpapi.Seconds(d.RetryAfter)))}
	resp.Body = httpapi.ProblemResponse(p).Body
	return resp
}

// breakdownRoutes are the routes of the breakdowns, read from the rollup
// alone, and rangeRoutes those of the other reads over a range (from, to):
// the answers conditional lets a client keep a minute. Other routes
// (webhook endpoints, whose path also ends in /endpoints, the current
// period of GET /v1/usage whatever from and to a query adds) change when
// their owner or a call changes them.
var (
	breakdownRoutes = map[string]bool{
		"GET /v1/usage/endpoints": true, "GET /v1/usage/keys": true,
		"GET /v1/admin/users/{id}/endpoints": true, "GET /v1/admin/users/{id}/keys": true,
	}
	rangeRoutes = map[string]bool{
		"GET /v1/usage/daily": true, "GET /v1/usage/export": true, "GET /v1/admin/users/{id}/daily": true,
		"GET /v1/admin/summary": true, "GET /v1/admin/top-users": true,
	}
)

// conditional gives a GET's 200 answer an ETag (a hash of its body) and
// Cache-Control, and answers 304 without the body when the request's
// If-None-Match holds the tag: a client polling the same read gets
// "unchanged" for a few bytes. The answers are the caller's own (private).
// A range that ends before today, and a breakdown (from the rollup alone),
// change only when the hourly rollup recomputes a day, so a client may
// keep them for a minute without asking; anything else is revalidated
// each time (no-cache). The answer depends on the caller's credentials
// and, for the export, on Accept: Vary names them, so that a client's
// cache never gives one caller's answer, or one representation, for a
// request that differs in them.
func conditional(r *httpapi.Request, resp httpapi.Response, now time.Time) httpapi.Response {
	if resp.StatusCode != http.StatusOK {
		return resp
	}
	sum := sha256.Sum256([]byte(resp.Body))
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	resp.Headers["ETag"] = etag
	resp.Headers["Cache-Control"] = "private, no-cache"
	resp.Headers["Vary"] = "Authorization, X-Api-Key, Accept"
	if breakdownRoutes[r.Route] {
		resp.Headers["Cache-Control"] = "private, max-age=60"
	} else if to := r.Query("to"); to != "" && rangeRoutes[r.Route] {
		if d, err := httpapi.ParseDate("to", to); err == nil && d.Before(usage.Day(now)) {
			resp.Headers["Cache-Control"] = "private, max-age=60"
		}
	}
	if matchesETag(r.Header("If-None-Match"), etag) {
		delete(resp.Headers, "Content-Type")
		delete(resp.Headers, "Content-Disposition")
		return httpapi.Response{StatusCode: http.StatusNotModified, Headers: resp.Headers}
	}
	return resp
}
