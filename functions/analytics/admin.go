package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/nexus/usage/shared/billing"
	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// The admin routes: system-wide reports, plan changes, backfills, the
// quarantine and the overage ledger (one user's view for support is in
// support.go).

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
		*report.AdminSummary
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
		by = report.RankByCalls
	case report.RankByCalls, report.RankByErrors, report.RankByOverage:
	default:
		return h.fail(ctx, usage.FieldErrorf("by", "must be calls, errors or overage"))
	}
	users, err := h.Admin.TopUsers(ctx, report.TopUsersFilter{Range: rg, By: by, Limit: limit}, h.now())
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, map[string]any{"from": day(rg.From), "to": day(rg.To), "by": by, "items": users})
}

// putPlan replaces the user's plan and overrides (those left out go back to
// the plan's values): an upgrade at once, a downgrade at the end of the
// running period (usage.DecideChange); the answer says which and when, and
// shows the terms before and after side by side.
func (h *Handler) putPlan(ctx context.Context, r *httpapi.Request, admin usage.Identity) httpapi.Response {
	id, err := pathUser(r)
	if err != nil {
		return h.fail(ctx, err)
	}
	var c report.PlanChange
	b, err := readBody(r, maxBodyBytes)
	if err == nil {
		err = decodeJSON(b, &c, true)
	}
	if err != nil {
		return h.fail(ctx, err)
	}
	c.UserID, c.Who = id, admin.UserID
	return h.changePlan(ctx, c, admin)
}

// patchPlan changes what the body names of the user's terms, as a JSON
// merge patch (RFC 7396) of {"plan_id", "overrides"}: plan_id left out
// keeps the plan, an override set to null goes back to the plan's value,
// the others are kept. The rest is putPlan's.
func (h *Handler) patchPlan(ctx context.Context, r *httpapi.Request, admin usage.Identity) httpapi.Response {
	id, err := pathUser(r)
	if err != nil {
		return h.fail(ctx, err)
	}
	var in struct {
		PlanID    string                     `json:"plan_id"`
		Overrides map[string]json.RawMessage `json:"overrides"`
	}
	b, err := readBody(r, maxBodyBytes)
	if err == nil {
		err = decodeJSON(b, &in, true)
	}
	if err != nil {
		return h.fail(ctx, err)
	}
	c := report.PlanChange{UserID: id, PlanID: in.PlanID, Partial: true, Who: admin.UserID}
	set := map[string]json.RawMessage{}
	for name, v := range in.Overrides {
		if !slices.Contains(usage.OverrideNames, name) {
			return h.fail(ctx, usage.FieldErrorf("overrides."+name, "is not an override"))
		}
		if string(bytes.TrimSpace(v)) == "null" {
			c.Unset = append(c.Unset, name)
			continue
		}
		set[name] = v
	}
	slices.Sort(c.Unset)
	if len(set) > 0 {
		// Decoded as the overrides of a body, so that errors name them as
		// PUT's do ("overrides.burst: must be an integer").
		var body struct {
			Overrides usage.Overrides `json:"overrides"`
		}
		sb, err := json.Marshal(map[string]any{"overrides": set})
		if err == nil {
			err = decodeJSON(sb, &body, true)
		}
		if err != nil {
			return h.fail(ctx, err)
		}
		c.Overrides = body.Overrides
	}
	return h.changePlan(ctx, c, admin)
}

// changePlan makes the change and answers it.
func (h *Handler) changePlan(ctx context.Context, c report.PlanChange, admin usage.Identity) httpapi.Response {
	sub, err := h.Admin.PutPlan(ctx, c)
	if err != nil {
		return h.fail(ctx, err)
	}
	h.Logger.InfoContext(ctx, "plan changed", "user_id", c.UserID, "plan_id", sub.PlanID, "change", sub.Change,
		"effective_at", sub.EffectiveAt, "changed", sub.Changed, "partial", c.Partial, "by", admin.UserID)
	return httpapi.JSON(http.StatusOK, sub)
}

// postAggregate queues a range of days, not after today, for the next
// aggregate run.
func (h *Handler) postAggregate(ctx context.Context, r *httpapi.Request, admin usage.Identity) httpapi.Response {
	var in struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	b, err := readBody(r, maxBodyBytes)
	if err == nil {
		err = decodeJSON(b, &in, true)
	}
	if err != nil {
		return h.fail(ctx, err)
	}
	var rg usage.DayRange
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
	return newestFirst(ctx, h, r, func(before int64, n int) ([]report.RejectedEvent, error) {
		return h.Admin.RejectedEvents(ctx, before, n)
	}, func(e report.RejectedEvent) int64 { return e.ID })
}

// newestFirst answers a page of a list kept newest first by id: the
// limit and the cursor (the id to list before) from r, one row more than
// the limit asked of list, so that the next cursor is there only when
// more rows are. The page ends early, with the next cursor, when its
// items pass maxPageBytes (fitPage).
func newestFirst[T any](ctx context.Context, h *Handler, r *httpapi.Request, list func(before int64, n int) ([]T, error), id func(T) int64) httpapi.Response {
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
	rows, err := list(c.Before, limit+1)
	if err != nil {
		return h.fail(ctx, err)
	}
	keep, err := fitPage(rows, limit)
	if err != nil {
		return h.fail(ctx, err)
	}
	var p page
	if keep < len(rows) {
		rows = rows[:keep]
		c.Before = id(rows[keep-1])
		p.NextCursor = httpapi.EncodeCursor(c)
	}
	p.Items = rows
	return httpapi.JSON(http.StatusOK, p)
}

// month is the period parameter of the overage routes, a month YYYY-MM
// (the current one by default), and its first instant.
func (h *Handler) month(r *httpapi.Request) (string, time.Time, error) {
	s := r.Query("period")
	if s == "" {
		s = h.now().Format("2006-01")
	}
	m, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 {
		return "", time.Time{}, usage.FieldErrorf("period", "must be a month YYYY-MM")
	}
	return s, m, nil
}

// cursorInMonth checks that a cursor of a list of periods starting in the
// month from (the ledger's, the preview's) is one of that month's: its
// last period starts in it. A cursor of another month (named by the
// query, or the default one after the month turned) would continue with
// a page of another list, the first page of a later month or an empty
// page that reads as the end of an earlier one.
func cursorInMonth(periodStart, from time.Time) error {
	if periodStart.Before(from) || !periodStart.Before(from.AddDate(0, 1, 0)) {
		return usage.FieldErrorf("cursor", "is for the month %s: ask with period=%s, or without a cursor for the first page",
			periodStart.UTC().Format("2006-01"), periodStart.UTC().Format("2006-01"))
	}
	return nil
}

// getOverage lists the ledger rows of periods starting in a month (the
// current one by default).
func (h *Handler) getOverage(ctx context.Context, r *httpapi.Request, _ usage.Identity) httpapi.Response {
	s, m, err := h.month(r)
	if err != nil {
		return h.fail(ctx, err)
	}
	limit, err := r.Limit(DefaultLimit, MaxLimit)
	if err != nil {
		return h.fail(ctx, err)
	}
	f := report.LedgerPage{From: m, To: m.AddDate(0, 1, 0), Limit: limit + 1}
	var c report.LedgerCursor
	if ok, err := r.DecodeCursor(&c); err != nil {
		return h.fail(ctx, err)
	} else if ok {
		if !usage.IsUUID(c.UserID) {
			return h.fail(ctx, usage.FieldErrorf("cursor", "is not a cursor of this list"))
		}
		if err := cursorInMonth(c.PeriodStart, m); err != nil {
			return h.fail(ctx, err)
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
		p.NextCursor = httpapi.EncodeCursor(report.LedgerCursor{PeriodStart: last.Period.Start, UserID: last.UserID, Seq: last.Seq})
	}
	p.Items = rows
	return httpapi.JSON(http.StatusOK, struct {
		Period string `json:"period"`
		page
	}{s, p})
}

// previewCursor is the position after the last item of a preview page:
// items are ordered by user, then period.
type previewCursor struct {
	UserID      string    `json:"u"`
	PeriodStart time.Time `json:"p"`
}

// getOveragePreview shows, for the periods starting in a month (closed or
// open), what their usage so far costs, what the ledger holds for them and
// the row a real run would write now: computed, never written. Totals
// cover every item; the items come in pages.
func (h *Handler) getOveragePreview(ctx context.Context, r *httpapi.Request, _ usage.Identity) httpapi.Response {
	_, m, err := h.month(r)
	if err != nil {
		return h.fail(ctx, err)
	}
	limit, err := r.Limit(DefaultLimit, MaxLimit)
	if err != nil {
		return h.fail(ctx, err)
	}
	var c previewCursor
	ok, err := r.DecodeCursor(&c)
	if err != nil {
		return h.fail(ctx, err)
	}
	if ok && !usage.IsUUID(c.UserID) {
		return h.fail(ctx, usage.FieldErrorf("cursor", "is not a cursor of this list"))
	}
	if ok {
		if err := cursorInMonth(c.PeriodStart, m); err != nil {
			return h.fail(ctx, err)
		}
	}
	if h.Overage == nil {
		return h.fail(ctx, usage.Errorf(usage.CodeUnavailable, "the overage preview is not configured"))
	}
	pv, err := h.Overage.Preview(ctx, m, h.now())
	if err != nil {
		return h.fail(ctx, err)
	}
	items := pv.Items
	if ok {
		i := 0
		for i < len(items) && (items[i].UserID < c.UserID || (items[i].UserID == c.UserID && !items[i].Period.Start.After(c.PeriodStart))) {
			i++
		}
		items = items[i:]
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		next = httpapi.EncodeCursor(previewCursor{UserID: last.UserID, PeriodStart: last.Period.Start})
	}
	return httpapi.JSON(http.StatusOK, struct {
		Period     string                 `json:"period"`
		AsOf       time.Time              `json:"as_of"`
		Totals     []billing.PreviewTotal `json:"totals"`
		Items      []billing.PreviewItem  `json:"items"`
		NextCursor string                 `json:"next_cursor,omitempty"`
	}{pv.Month, pv.AsOf, pv.Totals, items, next})
}

// postOverageRetry makes a failed ledger row pending again for the next
// billing run, which looks it up in Stripe before it sends it again; the
// store audits who did it.
func (h *Handler) postOverageRetry(ctx context.Context, r *httpapi.Request, admin usage.Identity) httpapi.Response {
	id := r.Param("id")
	if !usage.IsUUID(id) {
		return h.fail(ctx, usage.FieldErrorf("id", "must be a UUID"))
	}
	e, err := h.Admin.RetryLedgerEntry(ctx, id, admin.UserID)
	if err != nil {
		return h.fail(ctx, err)
	}
	h.Logger.InfoContext(ctx, "overage row retried", "ledger_id", id, "user_id", e.UserID, "retries", e.Retries, "by", admin.UserID)
	return httpapi.JSON(http.StatusOK, e)
}

// postRedrive moves the usage messages of the dead-letter queue back to
// the usage queue, once the cause of their failures is fixed, for as long
// as the invocation allows: "more" says to call it again.
func (h *Handler) postRedrive(ctx context.Context, _ *httpapi.Request, admin usage.Identity) httpapi.Response {
	if h.Redrive == nil {
		return h.fail(ctx, usage.Errorf(usage.CodeUnavailable, "redrive is not configured (no dead-letter queue)"))
	}
	res, err := h.Redrive.Redrive(ctx)
	h.Logger.InfoContext(ctx, "dead-lettered usage messages moved back", "moved", res.Moved, "more", res.More, "by", admin.UserID)
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, res)
}
