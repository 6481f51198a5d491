package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

// getExport serves the caller's days as CSV (Accept: text/csv, or
// format=csv) or as the JSON of GET /v1/usage/daily.
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
	rg, rows, err := h.daily(ctx, r, id.UserID)
	if err != nil {
		return h.fail(ctx, err)
	}
	if !csvOut {
		return httpapi.JSON(http.StatusOK, map[string]any{"from": day(rg.From), "to": day(rg.To), "days": rows})
	}
	return httpapi.CSV(http.StatusOK, dailyCSV(rows), fmt.Sprintf("usage-%s-%s.csv", day(rg.From), day(rg.To)))
}

// dailyCSV writes the days with a header row; p95 is empty for live days.
func dailyCSV(rows []dayRow) string {
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
	return buf.String()
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }
