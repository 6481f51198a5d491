package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/notify"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// Limits of the API.
const (
	// MaxEvents and MaxEventsBytes bound one POST /v1/events.
	MaxEvents      = 100
	MaxEventsBytes = 256 << 10
	// DefaultDays is the range of the daily and breakdown routes without
	// from and to: the last 30 days, today included.
	DefaultDays = 30
	// DefaultLimit and MaxLimit bound the pages of every list.
	DefaultLimit = 50
	MaxLimit     = 1000
	// DefaultMaxEventQuantity is the largest quantity one event of POST
	// /v1/events may carry unless MaxEventQuantity says otherwise.
	DefaultMaxEventQuantity = 10_000
	// MaxTopUsers bounds the top users report.
	MaxTopUsers = 100
	// maxBodyBytes bounds the JSON bodies of the other routes.
	maxBodyBytes = 16 << 10
)

// Handler serves the analytics HTTP API behind API Gateway (payload v2).
// Publisher, Limits and Overage may be nil: their routes then answer 503.
type Handler struct {
	// Usage answers the user routes (and the admin's view of one user's
	// usage), Admin the other admin routes.
	Usage report.UsageReader
	Admin report.AdminStore
	// Overage previews billing (GET /v1/admin/overage/preview); nil: the
	// route answers 503.
	Overage billing.OveragePreviewer
	Auth    usage.Authenticator
	// Publisher sends the events of POST /v1/events to the usage queue.
	Publisher usage.Sender
	Limits    usage.LimitChecker
	// Redrive moves dead-lettered usage messages back (POST
	// /v1/admin/redrive); nil: the route answers 503.
	Redrive record.Redriver
	// Notify manages notification rules, webhook endpoints and their
	// deliveries (the /v1/notify, /v1/webhooks and their admin routes);
	// nil: they answer 503.
	Notify notify.Manager
	// Reads is the per-caller read budget of every route behind
	// credentials but the two the write path's rate limit meters (POST
	// /v1/events, POST /v1/limits/check); nil: no budget.
	Reads limits.BudgetChecker
	// MaxEventQuantity caps the quantity of one event of POST /v1/events
	// (DefaultMaxEventQuantity when zero; at most usage.MaxQuantity).
	MaxEventQuantity int64
	// BackfillWindow is how old an event of POST /v1/events may be, the
	// record function's (usage.DefaultBackfillWindow when zero): an event
	// accepted here is one the record path takes.
	BackfillWindow time.Duration
	Logger         *slog.Logger
	Now            func() time.Time

	once   sync.Once
	router *httpapi.Router
	cache  *readCache
}

// Routes are the route keys the handler serves, as template.yaml declares
// them.
func (h *Handler) Routes() []string {
	h.once.Do(h.init)
	return h.router.Routes()
}

// init builds the route table: each route behind the gate of who may call
// it (user: a JWT or an API key; apiKey: an API key only; admin: a JWT with
// role admin). The dashboard's files have no gate (dashboard.go).
func (h *Handler) init() {
	r := httpapi.NewRouter()
	r.Handle("GET /dashboard", h.getDashboard)
	r.Handle("GET /dashboard/{asset}", h.getDashboardAsset)
	r.Handle("GET /v1/usage", h.user(h.budgeted(h.getUsage)))
	r.Handle("GET /v1/usage/daily", h.user(h.budgeted(h.getDaily)))
	r.Handle("GET /v1/usage/endpoints", h.user(h.budgeted(h.getEndpoints)))
	r.Handle("GET /v1/usage/keys", h.user(h.budgeted(h.getKeys)))
	r.Handle("GET /v1/usage/export", h.user(h.budgeted(h.getExport)))
	r.Handle("POST /v1/events", h.apiKey(h.postEvents))
	r.Handle("POST /v1/limits/check", h.user(h.postLimitsCheck))
	r.Handle("GET /v1/admin/summary", h.admin(h.budgeted(h.getAdminSummary)))
	r.Handle("GET /v1/admin/top-users", h.admin(h.budgeted(h.getTopUsers)))
	r.Handle("GET /v1/admin/users/{id}/usage", h.admin(h.budgeted(h.userRoute(h.getUserUsage))))
	r.Handle("GET /v1/admin/users/{id}/daily", h.admin(h.budgeted(h.userRoute(h.getUserDaily))))
	r.Handle("GET /v1/admin/users/{id}/endpoints", h.admin(h.budgeted(h.userRoute(h.getUserEndpoints))))
	r.Handle("GET /v1/admin/users/{id}/keys", h.admin(h.budgeted(h.userRoute(h.getUserKeys))))
	r.Handle("GET /v1/admin/users/{id}/audit", h.admin(h.budgeted(h.userRoute(h.getUserAudit))))
	r.Handle("PUT /v1/admin/users/{id}/plan", h.admin(h.budgeted(h.putPlan)))
	r.Handle("PATCH /v1/admin/users/{id}/plan", h.admin(h.budgeted(h.patchPlan)))
	r.Handle("POST /v1/admin/aggregate", h.admin(h.budgeted(h.postAggregate)))
	r.Handle("GET /v1/admin/rejected", h.admin(h.budgeted(h.getRejected)))
	r.Handle("GET /v1/admin/overage", h.admin(h.budgeted(h.getOverage)))
	r.Handle("GET /v1/admin/overage/preview", h.admin(h.budgeted(h.getOveragePreview)))
	r.Handle("POST /v1/admin/overage/{id}/retry", h.admin(h.budgeted(h.postOverageRetry)))
	r.Handle("POST /v1/admin/redrive", h.admin(h.budgeted(h.postRedrive)))
	// Notifications: a user's own rules and endpoints, an admin's all.
	for _, side := range []struct {
		prefix string
		gate   func(routeFunc) httpapi.HandlerFunc
		admin  bool
	}{{"/v1", h.user, false}, {"/v1/admin", h.admin, true}} {
		route := func(key string, f func(ctx context.Context, r *httpapi.Request, o notify.Owner) httpapi.Response) {
			method, path, _ := strings.Cut(key, " ")
			r.Handle(method+" "+side.prefix+path, side.gate(h.budgeted(h.notifyRoute(side.admin, f))))
		}
		route("GET /notify/rules", h.getRules)
		route("POST /notify/rules", h.postRule)
		route("PATCH /notify/rules/{id}", h.patchRule)
		route("DELETE /notify/rules/{id}", h.deleteRule)
		route("GET /webhooks/endpoints", h.getWebhookEndpoints)
		route("POST /webhooks/endpoints", h.postEndpoint)
		route("PATCH /webhooks/endpoints/{id}", h.patchEndpoint)
		route("DELETE /webhooks/endpoints/{id}", h.deleteEndpoint)
		route("POST /webhooks/endpoints/{id}/rotate", h.postRotate)
		route("GET /webhooks/deliveries", h.getDeliveries)
		route("POST /webhooks/replay", h.postReplay)
	}
	h.router = r
	h.cache = newReadCache()
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
}

// deadlineMargin is how long before the invocation's deadline the
// handler's own work ends: a statement still running then is cancelled on
// the server and confirmed within postgres.CancelGrace (1 s), and the
// answer (a 503) still goes out before Lambda stops the function.
const deadlineMargin = 1500 * time.Millisecond

// Handle serves one API Gateway request. Every outcome, errors included, is
// a response; the returned error is always nil.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	h.once.Do(h.init)
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-deadlineMargin))
		defer cancel()
	}
	return h.router.Serve(ctx, &req), nil
}

// routeFunc serves one route for an authenticated caller.
type routeFunc func(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response

func (h *Handler) authenticate(ctx context.Context, r *httpapi.Request) (usage.Identity, error) {
	if h.Auth == nil {
		return usage.Identity{}, usage.Errorf(usage.CodeUnauthorized, "no credentials are accepted")
	}
	return h.Auth.Authenticate(ctx, r.Header)
}

// user admits any authenticated caller, by JWT or API key. User routes read
// only the caller's own id.
func (h *Handler) user(f routeFunc) httpapi.HandlerFunc {
	return func(ctx context.Context, r *httpapi.Request) httpapi.Response {
		id, err := h.authenticate(ctx, r)
		if err != nil {
			return h.fail(ctx, err)
		}
		return f(ctx, r, id)
	}
}

// apiKey admits callers presenting an API key.
func (h *Handler) apiKey(f routeFunc) httpapi.HandlerFunc {
	return func(ctx context.Context, r *httpapi.Request) httpapi.Response {
		id, err := h.authenticate(ctx, r)
		if err != nil {
			return h.fail(ctx, err)
		}
		if id.APIKeyID == "" {
			return h.fail(ctx, usage.Errorf(usage.CodeUnauthorized, "this route takes an API key"))
		}
		return f(ctx, r, id)
	}
}

// admin admits operators (JWT with role admin); anyone else authenticated
// is forbidden.
func (h *Handler) admin(f routeFunc) httpapi.HandlerFunc {
	return func(ctx context.Context, r *httpapi.Request) httpapi.Response {
		id, err := h.authenticate(ctx, r)
		if err != nil {
			return h.fail(ctx, err)
		}
		if !id.Admin {
			return h.fail(ctx, usage.Errorf(usage.CodeForbidden, "admin role required"))
		}
		return f(ctx, r, id)
	}
}

// fail is the problem+json response of err, logged by httpapi.Error when
// it is not the caller's fault.
func (h *Handler) fail(ctx context.Context, err error) httpapi.Response {
	return httpapi.Error(ctx, h.Logger, err)
}

func (h *Handler) now() time.Time { return h.Now().UTC() }

// period is a billing period in a response body.
type period struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// page is a page of a list; From and To are set for lists over a range.
type page struct {
	From       string `json:"from,omitempty"`
	To         string `json:"to,omitempty"`
	Items      any    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// maxPageBytes bounds the JSON of the items of a page of the lists whose
// rows can be large (quarantined messages, webhook deliveries with their
// attempts' answers). Lambda's answer holds at most 6 MB, and the body is
// a JSON string in it, escaped once more (up to twice as long: each quote
// and backslash is escaped again).
const maxPageBytes = 2 << 20

// fitPage returns how many of rows, read one more than limit, the page
// holds: up to limit, fewer once their JSON passes maxPageBytes, and at
// least one (a queue message of 256 KiB, escaped twice, stays well within
// Lambda's answer). Fewer than len(rows) means a next page. Before, a page
// of large rows made an answer Lambda refuses, and the rows after it
// could not be listed at all.
func fitPage[T any](rows []T, limit int) (int, error) {
	keep, size := min(len(rows), limit), 0
	for i := 0; i < keep; i++ {
		b, err := json.Marshal(rows[i])
		if err != nil {
			return 0, err
		}
		if size += len(b) + 1; i > 0 && size > maxPageBytes {
			return i, nil
		}
	}
	return keep, nil
}

// day formats a UTC day as YYYY-MM-DD.
func day(t time.Time) string { return t.Format(time.DateOnly) }
