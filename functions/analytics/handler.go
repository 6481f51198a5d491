package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/nexus/usage/shared/httpapi"
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
	// MaxTopUsers bounds the top users report.
	MaxTopUsers = 100
	// maxBodyBytes bounds the JSON bodies of the other routes.
	maxBodyBytes = 16 << 10
)

// Handler serves the analytics HTTP API behind API Gateway (payload v2).
// Publisher and Limits may be nil: their routes then answer 503.
type Handler struct {
	// Usage answers the user routes, Admin the admin routes.
	Usage     usage.UsageReader
	Admin     usage.AdminStore
	Auth      usage.Authenticator
	Publisher usage.Publisher
	Limits    usage.LimitChecker
	Logger    *slog.Logger
	Now       func() time.Time

	once   sync.Once
	router *httpapi.Router
}

// Routes are the route keys the handler serves, as template.yaml declares
// them.
func (h *Handler) Routes() []string {
	h.once.Do(h.init)
	return h.router.Routes()
}

func (h *Handler) init() {
	r := httpapi.NewRouter()
	r.Handle("GET /v1/usage", h.user(h.getUsage))
	r.Handle("GET /v1/usage/daily", h.user(h.getDaily))
	r.Handle("GET /v1/usage/endpoints", h.user(h.getEndpoints))
	r.Handle("GET /v1/usage/keys", h.user(h.getKeys))
	r.Handle("GET /v1/usage/export", h.user(h.getExport))
	r.Handle("POST /v1/events", h.apiKey(h.postEvents))
	r.Handle("POST /v1/limits/check", h.user(h.postLimitsCheck))
	r.Handle("GET /v1/admin/summary", h.admin(h.getAdminSummary))
	r.Handle("GET /v1/admin/top-users", h.admin(h.getTopUsers))
	r.Handle("GET /v1/admin/users/{id}/usage", h.admin(h.getUserUsage))
	r.Handle("PUT /v1/admin/users/{id}/plan", h.admin(h.putPlan))
	r.Handle("POST /v1/admin/aggregate", h.admin(h.postAggregate))
	r.Handle("GET /v1/admin/rejected", h.admin(h.getRejected))
	r.Handle("GET /v1/admin/overage", h.admin(h.getOverage))
	h.router = r
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
}

// Handle serves one API Gateway request. Every outcome, errors included, is
// a response; the returned error is always nil.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	h.once.Do(h.init)
	return h.router.Serve(ctx, &req), nil
}

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

func (h *Handler) fail(ctx context.Context, err error) httpapi.Response {
	return httpapi.Error(ctx, h.Logger, err)
}

func (h *Handler) now() time.Time { return h.Now().UTC() }

// --- user routes ---

func (h *Handler) getUsage(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	return h.usageOf(ctx, id.UserID)
}

func (h *Handler) usageOf(ctx context.Context, userID string) httpapi.Response {
	s, err := h.Usage.UsageSummary(ctx, userID, h.now())
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, newUsageBody(s))
}

type usageBody struct {
	UserID    string `json:"user_id"`
	PlanID    string `json:"plan_id"`
	Plan      string `json:"plan_name"`
	Period    period `json:"period"`
	Included  int64  `json:"included"`
	Used      int64  `json:"used"`
	Remaining int64  `json:"remaining"`
	HardLimit bool   `json:"hard_limit"`
	Projected struct {
		Units     int64  `json:"units"`
		UnitSize  int64  `json:"unit_size"`
		UnitPrice int64  `json:"unit_price"`
		Amount    int64  `json:"amount"`
		Currency  string `json:"currency"`
	} `json:"projected_overage"`
	RateLimit struct {
		RatePerSecond float64 `json:"rate_per_second"`
		Burst         int     `json:"burst"`
	} `json:"rate_limit"`
	LastUpdated *time.Time `json:"last_updated"`
}

type period struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

func newUsageBody(s *usage.UsageSummary) usageBody {
	b := usageBody{UserID: s.UserID, PlanID: s.Plan.ID, Plan: s.Plan.Name, Period: period(s.Period),
		Included: s.Included, Used: s.Used, Remaining: s.Remaining, HardLimit: s.Plan.HardLimit, LastUpdated: s.LastUpdated}
	b.Projected.Units, b.Projected.UnitSize, b.Projected.UnitPrice = s.Overage.Units, s.Overage.UnitSize, s.Overage.UnitPrice
	b.Projected.Amount, b.Projected.Currency = s.Overage.Amount, s.Overage.Currency
	b.RateLimit.RatePerSecond, b.RateLimit.Burst = s.Plan.RatePerSecond, s.Plan.Burst
	return b
}

type dayRow struct {
	Day string `json:"day"`
	usage.DailyUsage
}

func (h *Handler) daily(ctx context.Context, r *httpapi.Request, id usage.Identity) (usage.DayRange, []dayRow, error) {
	rg, err := r.DayRange(h.now(), DefaultDays)
	if err != nil {
		return rg, nil, err
	}
	days, err := h.Usage.DailyUsage(ctx, id.UserID, rg, h.now())
	if err != nil {
		return rg, nil, err
	}
	rows := make([]dayRow, len(days))
	for i, d := range days {
		rows[i] = dayRow{Day: d.Day.Format(time.DateOnly), DailyUsage: d}
	}
	return rg, rows, nil
}

func (h *Handler) getDaily(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	rg, rows, err := h.daily(ctx, r, id)
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, map[string]any{"from": day(rg.From), "to": day(rg.To), "days": rows})
}

func day(t time.Time) string { return t.Format(time.DateOnly) }

func (h *Handler) getExport(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	csvOut := r.Accepts("text/csv")
	switch r.Query("format") {
	case "csv":
		csvOut = true
	case "json":
		csvOut = false
	case "":
	default:
		return h.fail(ctx, usage.FieldErrorf("format", "must be csv or json"))
	}
	rg, rows, err := h.daily(ctx, r, id)
	if err != nil {
		return h.fail(ctx, err)
	}
	if !csvOut {
		return httpapi.JSON(http.StatusOK, map[string]any{"from": day(rg.From), "to": day(rg.To), "days": rows})
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"day", "calls", "errors_4xx", "errors_5xx", "request_bytes", "response_bytes", "p95_latency_ms", "live"})
	for _, d := range rows {
		p95 := ""
		if d.P95LatencyMS != nil {
			p95 = strconv.Itoa(int(*d.P95LatencyMS))
		}
		_ = w.Write([]string{d.Day, i64(d.Calls), i64(d.Errors4xx), i64(d.Errors5xx), i64(d.RequestBytes), i64(d.ResponseBytes), p95, strconv.FormatBool(d.Live)})
	}
	w.Flush()
	return httpapi.CSV(http.StatusOK, buf.String(), fmt.Sprintf("usage-%s-%s.csv", day(rg.From), day(rg.To)))
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

type breakdownRow struct {
	Endpoint *string `json:"endpoint,omitempty"`
	// APIKeyID is null for calls made without a key (keys breakdown).
	APIKeyID  *string `json:"api_key_id,omitempty"`
	KeyPrefix *string `json:"key_prefix,omitempty"`
	KeyName   *string `json:"key_name,omitempty"`
	usage.Breakdown
}

type page struct {
	From       string `json:"from,omitempty"`
	To         string `json:"to,omitempty"`
	Items      any    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func (h *Handler) breakdown(ctx context.Context, r *httpapi.Request, id usage.Identity, keys bool) httpapi.Response {
	rg, err := r.DayRange(h.now(), DefaultDays)
	if err != nil {
		return h.fail(ctx, err)
	}
	limit, err := r.Limit(DefaultLimit, MaxLimit)
	if err != nil {
		return h.fail(ctx, err)
	}
	f := usage.BreakdownFilter{UserID: id.UserID, Range: rg, Limit: limit + 1}
	var c usage.BreakdownCursor
	if ok, err := r.DecodeCursor(&c); err != nil {
		return h.fail(ctx, err)
	} else if ok {
		f.After = &c
	}
	var rows []usage.Breakdown
	if keys {
		rows, err = h.Usage.KeyBreakdown(ctx, f)
	} else {
		rows, err = h.Usage.EndpointBreakdown(ctx, f)
	}
	if err != nil {
		return h.fail(ctx, err)
	}
	p := page{From: day(rg.From), To: day(rg.To)}
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		p.NextCursor = httpapi.EncodeCursor(usage.BreakdownCursor{Calls: last.Calls, Key: last.Key})
	}
	items := make([]breakdownRow, len(rows))
	for i, b := range rows {
		items[i].Breakdown = b
		if !keys {
			items[i].Endpoint = &rows[i].Key
			continue
		}
		if b.Key != "" {
			items[i].APIKeyID, items[i].KeyPrefix, items[i].KeyName = &rows[i].Key, &rows[i].KeyPrefix, &rows[i].KeyName
		}
	}
	p.Items = items
	return httpapi.JSON(http.StatusOK, p)
}

func (h *Handler) getEndpoints(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	return h.breakdown(ctx, r, id, false)
}

func (h *Handler) getKeys(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	return h.breakdown(ctx, r, id, true)
}

// decodeJSON decodes a JSON object body strictly into v; errors name the
// field at fault, or "body".
func decodeJSON(r *httpapi.Request, limit int, v any) error {
	b, err := r.Body()
	if err != nil {
		return usage.FieldErrorf("body", "is not valid base64")
	}
	if len(b) > limit {
		return usage.FieldErrorf("body", "larger than %d bytes", limit)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := d.Token(); err != io.EOF {
		return usage.FieldErrorf("body", "must hold one JSON value")
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return usage.FieldErrorf(te.Field, "must be a JSON %s", jsonType(te.Type.Kind()))
	}
	if errors.Is(err, io.EOF) {
		return usage.FieldErrorf("body", "is empty")
	}
	return usage.FieldErrorf("body", "is not valid JSON: %s", jsonDetail(err))
}

// jsonType names the JSON type that decodes into a Go kind.
func jsonType(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	if k >= reflect.Int && k <= reflect.Uint64 {
		return "integer"
	}
	return "value"
}

func jsonDetail(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

type eventResult struct {
	Index   int    `json:"index"`
	EventID string `json:"event_id,omitempty"`
	Status  string `json:"status"`
	Param   string `json:"param,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

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
	if err := json.Unmarshal(body, &in); err != nil {
		return h.fail(ctx, jsonError(err))
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
		var e usage.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			err = jsonError(err)
			res.Status, res.Param, res.Detail = "rejected", usage.ErrorField(err), usage.ErrorMessage(err)
			continue
		}
		// The caller's identity wins over whatever the body claims.
		e.UserID, e.APIKeyID = id.UserID, id.APIKeyID
		res.EventID = e.EventID
		if err := e.Validate(now, usage.DefaultBackfillWindow); err != nil {
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

func (h *Handler) postLimitsCheck(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	if h.Limits == nil {
		return h.fail(ctx, usage.Errorf(usage.CodeUnavailable, "limit checks are not configured"))
	}
	in := struct {
		Cost *int64 `json:"cost"`
	}{}
	if b, _ := r.Body(); len(bytes.TrimSpace(b)) > 0 {
		if err := decodeJSON(r, maxBodyBytes, &in); err != nil {
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
	body := map[string]any{
		"allowed":             d.Allowed,
		"reason":              nilIfEmpty(d.Reason),
		"limit":               d.Limit,
		"remaining":           d.Remaining,
		"reset_seconds":       httpapi.Seconds(d.Reset),
		"retry_after_seconds": httpapi.Seconds(d.RetryAfter),
		"rate_per_second":     d.RatePerSecond,
		"quota": map[string]any{
			"period":    period(d.Quota.Period),
			"included":  d.Quota.Included,
			"used":      d.Quota.Used,
			"remaining": d.Quota.Remaining,
			"hard":      d.Quota.Hard,
		},
	}
	resp := httpapi.JSON(http.StatusOK, body)
	for k, v := range httpapi.RateLimitHeaders(d, h.now()) {
		resp.Headers[k] = v
	}
	return resp
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// --- admin routes ---

func (h *Handler) getAdminSummary(ctx context.Context, r *httpapi.Request, _ usage.Identity) httpapi.Response {
	rg, err := r.DayRange(h.now(), DefaultDays)
	if err != nil {
		return h.fail(ctx, err)
	}
	s, err := h.Admin.AdminSummary(ctx, rg, h.now())
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, struct {
		From string `json:"from"`
		To   string `json:"to"`
		*usage.AdminSummary
	}{day(rg.From), day(rg.To), s})
}

func (h *Handler) getTopUsers(ctx context.Context, r *httpapi.Request, _ usage.Identity) httpapi.Response {
	rg, err := r.DayRange(h.now(), DefaultDays)
	if err != nil {
		return h.fail(ctx, err)
	}
	limit, err := r.Limit(10, MaxTopUsers)
	if err != nil {
		return h.fail(ctx, err)
	}
	by := r.Query("by")
	switch by {
	case "":
		by = usage.RankByCalls
	case usage.RankByCalls, usage.RankByErrors, usage.RankByOverage:
	default:
		return h.fail(ctx, usage.FieldErrorf("by", "must be calls, errors or overage"))
	}
	users, err := h.Admin.TopUsers(ctx, usage.TopUsersFilter{Range: rg, By: by, Limit: limit}, h.now())
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, map[string]any{"from": day(rg.From), "to": day(rg.To), "by": by, "items": users})
}

func pathUser(r *httpapi.Request) (string, error) {
	id := r.Param("id")
	if !usage.IsUUID(id) {
		return "", usage.FieldErrorf("id", "must be a UUID")
	}
	return id, nil
}

func (h *Handler) getUserUsage(ctx context.Context, r *httpapi.Request, _ usage.Identity) httpapi.Response {
	id, err := pathUser(r)
	if err != nil {
		return h.fail(ctx, err)
	}
	return h.usageOf(ctx, id)
}

func (h *Handler) putPlan(ctx context.Context, r *httpapi.Request, admin usage.Identity) httpapi.Response {
	id, err := pathUser(r)
	if err != nil {
		return h.fail(ctx, err)
	}
	var c usage.PlanChange
	if err := decodeJSON(r, maxBodyBytes, &c); err != nil {
		return h.fail(ctx, err)
	}
	c.UserID, c.Who = id, admin.UserID
	sub, err := h.Admin.PutPlan(ctx, c)
	if err != nil {
		return h.fail(ctx, err)
	}
	h.Logger.InfoContext(ctx, "plan changed", "user_id", id, "plan_id", sub.PlanID, "by", admin.UserID)
	return httpapi.JSON(http.StatusOK, sub)
}

func (h *Handler) postAggregate(ctx context.Context, r *httpapi.Request, admin usage.Identity) httpapi.Response {
	var in struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	if err := decodeJSON(r, maxBodyBytes, &in); err != nil {
		return h.fail(ctx, err)
	}
	var rg usage.DayRange
	var err error
	if rg.From, err = httpapi.ParseDate("from", in.From); err != nil {
		return h.fail(ctx, err)
	}
	if rg.To, err = httpapi.ParseDate("to", in.To); err != nil {
		return h.fail(ctx, err)
	}
	if rg.To.After(usage.Day(h.now())) {
		return h.fail(ctx, usage.FieldErrorf("to", "must not be in the future"))
	}
	if err := rg.Validate(); err != nil {
		return h.fail(ctx, err)
	}
	n, err := h.Admin.QueueAggregation(ctx, rg)
	if err != nil {
		return h.fail(ctx, err)
	}
	h.Logger.InfoContext(ctx, "aggregation queued", "from", in.From, "to", in.To, "days", n, "by", admin.UserID)
	return httpapi.JSON(http.StatusAccepted, map[string]any{"from": in.From, "to": in.To, "days_queued": n})
}

func (h *Handler) getRejected(ctx context.Context, r *httpapi.Request, _ usage.Identity) httpapi.Response {
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
	rows, err := h.Admin.RejectedEvents(ctx, c.Before, limit+1)
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

func (h *Handler) getOverage(ctx context.Context, r *httpapi.Request, _ usage.Identity) httpapi.Response {
	s := r.Query("period")
	if s == "" {
		s = h.now().Format("2006-01")
	}
	m, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 {
		return h.fail(ctx, usage.FieldErrorf("period", "must be a month YYYY-MM"))
	}
	limit, err := r.Limit(DefaultLimit, MaxLimit)
	if err != nil {
		return h.fail(ctx, err)
	}
	f := usage.LedgerPage{From: m, To: m.AddDate(0, 1, 0), Limit: limit + 1}
	var c usage.LedgerCursor
	if ok, err := r.DecodeCursor(&c); err != nil {
		return h.fail(ctx, err)
	} else if ok {
		if !usage.IsUUID(c.UserID) {
			return h.fail(ctx, usage.FieldErrorf("cursor", "is not a cursor of this list"))
		}
		f.After = &c
	}
	rows, err := h.Admin.ListLedgerPage(ctx, f)
	if err != nil {
		return h.fail(ctx, err)
	}
	var p page
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		p.NextCursor = httpapi.EncodeCursor(usage.LedgerCursor{PeriodStart: last.Period.Start, UserID: last.UserID, Seq: last.Seq})
	}
	p.Items = rows
	return httpapi.JSON(http.StatusOK, struct {
		Period string `json:"period"`
		page
	}{s, p})
}
