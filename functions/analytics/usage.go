package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// The user routes: the caller's billing period, days and breakdowns.

func (h *Handler) getUsage(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	return h.usageOf(ctx, id.UserID)
}

// usageOf is the usage summary of a user, as GET /v1/usage shows it.
func (h *Handler) usageOf(ctx context.Context, userID string) httpapi.Response {
	s, err := h.Usage.UsageSummary(ctx, userID, h.now())
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, newUsageBody(s))
}

type usageBody struct {
	UserID        string             `json:"user_id"`
	PlanID        string             `json:"plan_id"`
	Plan          string             `json:"plan_name"`
	Period        period             `json:"period"`
	Included      int64              `json:"included"`
	Used          int64              `json:"used"`
	Remaining     int64              `json:"remaining"`
	HardLimit     bool               `json:"hard_limit"`
	OverageToDate usage.PeriodCharge `json:"overage_to_date"`
	Projected     usage.PeriodCharge `json:"projected"`
	Billed        []billedBody       `json:"billed"`
	RateLimit     struct {
		RatePerSecond float64 `json:"rate_per_second"`
		Burst         int     `json:"burst"`
	} `json:"rate_limit"`
	LastUpdated *time.Time `json:"last_updated"`
}

type billedBody struct {
	Period   period `json:"period"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

func newUsageBody(s *report.UsageSummary) usageBody {
	b := usageBody{UserID: s.UserID, PlanID: s.Plan.ID, Plan: s.Plan.Name, Period: period(s.Period),
		Included: s.Included, Used: s.Used, Remaining: s.Remaining, HardLimit: s.Plan.HardLimit, LastUpdated: s.LastUpdated,
		OverageToDate: s.OverageToDate, Projected: s.Projected, Billed: []billedBody{}}
	for _, p := range s.Billed {
		b.Billed = append(b.Billed, billedBody{Period: period(p.Period), Amount: p.Amount, Currency: p.Currency, Status: p.Status})
	}
	b.RateLimit.RatePerSecond, b.RateLimit.Burst = s.Plan.RatePerSecond, s.Plan.Burst
	return b
}

type dayRow struct {
	Day string `json:"day"`
	report.DailyUsage
}

// daily reads the user's days of the range the query asks for.
func (h *Handler) daily(ctx context.Context, r *httpapi.Request, userID string) (usage.DayRange, []dayRow, error) {
	rg, err := r.DayRange(h.now(), DefaultDays)
	if err != nil {
		return rg, nil, err
	}
	days, err := h.Usage.DailyUsage(ctx, userID, rg, h.now())
	if err != nil {
		return rg, nil, err
	}
	rows := make([]dayRow, len(days))
	for i, d := range days {
		rows[i] = dayRow{Day: day(d.Day), DailyUsage: d}
	}
	return rg, rows, nil
}

func (h *Handler) getDaily(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	return h.dailyOf(ctx, r, id.UserID)
}

// dailyOf is the user's days, as GET /v1/usage/daily shows them.
func (h *Handler) dailyOf(ctx context.Context, r *httpapi.Request, userID string) httpapi.Response {
	rg, rows, err := h.daily(ctx, r, userID)
	if err != nil {
		return h.fail(ctx, err)
	}
	return httpapi.JSON(http.StatusOK, map[string]any{"from": day(rg.From), "to": day(rg.To), "days": rows})
}

type breakdownRow struct {
	Endpoint *string `json:"endpoint,omitempty"`
	// APIKeyID is null for calls made without a key (keys breakdown).
	APIKeyID  *string `json:"api_key_id,omitempty"`
	KeyPrefix *string `json:"key_prefix,omitempty"`
	KeyName   *string `json:"key_name,omitempty"`
	report.Breakdown
}

func (h *Handler) getEndpoints(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	return h.breakdown(ctx, r, id.UserID, false)
}

func (h *Handler) getKeys(ctx context.Context, r *httpapi.Request, id usage.Identity) httpapi.Response {
	return h.breakdown(ctx, r, id.UserID, true)
}

// breakdownCursor is the cursor of a breakdown page: the store's position
// after the page's last row, and the range of the list it continues. The
// rows' order is that of their sums over the range, so a position means
// nothing in another range: a cursor asked with another one (another from
// or to, or the default range once midnight UTC has moved it) is refused
// rather than answered with a page of another list, which would skip rows
// or show some twice.
type breakdownCursor struct {
	report.BreakdownCursor
	From string `json:"f"`
	To   string `json:"t"`
}

// breakdown serves a page of the user's usage per endpoint, or per API
// key: one row more than the limit is read to know whether a next page
// exists. The answer comes from the instance's breakdown cache while it
// is fresh (readCache).
func (h *Handler) breakdown(ctx context.Context, r *httpapi.Request, userID string, keys bool) httpapi.Response {
	rg, err := r.DayRange(h.now(), DefaultDays)
	if err != nil {
		return h.fail(ctx, err)
	}
	limit, err := r.Limit(DefaultLimit, MaxLimit)
	if err != nil {
		return h.fail(ctx, err)
	}
	f := report.BreakdownFilter{UserID: userID, Range: rg, Limit: limit + 1}
	var c breakdownCursor
	if ok, err := r.DecodeCursor(&c); err != nil {
		return h.fail(ctx, err)
	} else if ok {
		// A row's key is an endpoint or an API key id: printable text,
		// as the record path keeps it. Anything else (a NUL, which
		// PostgreSQL's text refuses) was never a cursor of this list.
		// Its range is two days, as the page said them.
		_, fromErr := httpapi.ParseDate("from", c.From)
		_, toErr := httpapi.ParseDate("to", c.To)
		if strings.IndexFunc(c.Key, func(r rune) bool { return !usage.PrintableRune(r) }) >= 0 || fromErr != nil || toErr != nil {
			return h.fail(ctx, usage.FieldErrorf("cursor", "is not a cursor of this list"))
		}
		if c.From != day(rg.From) || c.To != day(rg.To) {
			return h.fail(ctx, usage.FieldErrorf("cursor", "is for the days from %s to %s: ask with that range (from and to), or without a cursor for the first page", c.From, c.To))
		}
		f.After = &c.BreakdownCursor
	}
	key := fmt.Sprintf("%t %s %s %s %d %s", keys, userID, day(rg.From), day(rg.To), limit, r.Query("cursor"))
	return h.cache.get(ctx, key, h.now(), func() httpapi.Response { return h.readBreakdown(ctx, f, limit, keys) })
}

// readBreakdown reads one page of a breakdown and builds its answer.
func (h *Handler) readBreakdown(ctx context.Context, f report.BreakdownFilter, limit int, keys bool) httpapi.Response {
	rg := f.Range
	var (
		rows []report.Breakdown
		err  error
	)
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
		p.NextCursor = httpapi.EncodeCursor(breakdownCursor{BreakdownCursor: report.BreakdownCursor{Calls: last.Calls, Key: last.Key},
			From: p.From, To: p.To})
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
