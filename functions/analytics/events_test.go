package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/usage"
)

// event is the JSON of an event of POST /v1/events with extra fields.
func event(id string, status int, extra string) string {
	return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"endpoint":"GET /v1/x","method":"GET","status_code":%d,"latency_ms":5,"occurred_at":"2026-03-15T11:59:00Z"%s}`,
		id, bob, status, extra)
}

func TestPostEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := "30000000-0000-4000-8000-000000000001"
	id := func(n int) string { return fmt.Sprintf("30000000-0000-4000-8000-%012d", n) }
	body := `{"events":[` + strings.Join([]string{
		event(good, 200, ""),
		event(id(2), 700, ""),
		`{"event_id":"x","status_code":"nope"}`,
		event(id(4), 200, `,"latency_ms":1.5`),
		strings.Replace(event(id(5), 200, ""), `"2026-03-15T11:59:00Z"`, `"yesterday"`, 1),
		strings.Replace(event(id(6), 200, ""), `"2026-03-15T11:59:00Z"`, `1773575940`, 1),
		`42`,
		event(id(8), 200, `,"colour":"red"`),
		event(id(9), 200, `,"quantity":1,"Quantity":900`),
		event(id(10), 200, `,"colour":"red","colour":"blue"`),
		` null `,
	}, ",") + `]}`
	resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, body))
	wantStatus(t, resp, 202)
	got := decode[struct {
		Accepted, Rejected int
		Results            []eventResult
	}](t, resp)
	want := []eventResult{
		{Index: 0, EventID: good, Status: "accepted"},
		{Index: 1, EventID: id(2), Status: "rejected", Param: "status_code", Detail: "status_code: must be between 100 and 599"},
		{Index: 2, Status: "rejected", Param: "status_code", Detail: "status_code: must be an integer"},
		{Index: 3, Status: "rejected", Param: "latency_ms", Detail: "latency_ms: must be an integer in range"},
		{Index: 4, Status: "rejected", Param: "occurred_at", Detail: "occurred_at: must be a date-time (RFC 3339)"},
		{Index: 5, Status: "rejected", Param: "occurred_at", Detail: "occurred_at: must be a date-time (RFC 3339)"},
		{Index: 6, Status: "rejected", Detail: "an event must be a JSON object"},
		// Fields the document does not name are ignored.
		{Index: 7, EventID: id(8), Status: "accepted"},
		// A field named twice (in any case) is ambiguous: not the last
		// value silently.
		{Index: 8, EventID: id(9), Status: "rejected", Param: "quantity", Detail: "quantity: is given twice"},
		{Index: 9, EventID: id(10), Status: "accepted"},
		// null is no event, not one without an event_id.
		{Index: 10, Status: "rejected", Detail: "an event must be a JSON object"},
	}
	if got.Accepted != 3 || got.Rejected != 8 {
		t.Errorf("accepted, rejected = %d, %d; want 3, 8", got.Accepted, got.Rejected)
	}
	if d := cmp.Diff(want, got.Results); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	for _, r := range got.Results {
		if strings.Contains(r.Detail, "json:") || strings.Contains(r.Detail, "Go ") || strings.Contains(r.Detail, "parsing time") {
			t.Errorf("result %d: detail %q is not in our words", r.Index, r.Detail)
		}
	}
	// The caller's identity replaces the body's user; one send for all.
	if len(f.published) != 3 || f.published[0].UserID != alice || f.published[0].APIKeyID != f.keyID || f.sends != 1 {
		t.Errorf("published %+v (sends %d); want three events of alice through her key, in one send", f.published, f.sends)
	}

	// Nothing valid: 202 with the results, nothing sent.
	f.sends = 0
	resp = f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, `{"events":[`+event(id(9), 99, "")+`]}`))
	if resp.StatusCode != 202 || f.sends != 0 {
		t.Errorf("all rejected: %d, %d sends; want 202 and none", resp.StatusCode, f.sends)
	}

	many := make([]string, MaxEvents+1)
	for i := range many {
		many[i] = event(id(i), 200, "")
	}
	for _, tt := range []struct {
		name, body string
		status     int
		param      string
	}{
		{"too many", `{"events":[` + strings.Join(many, ",") + `]}`, 400, "events"},
		{"too large", `{"events":[` + event(good, 200, `,"pad":"`+strings.Repeat("x", MaxEventsBytes)+`"`) + `]}`, 413, "body"},
	} {
		resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, tt.body))
		wantStatus(t, resp, tt.status)
		if p := decode[problem](t, resp); p.Param != tt.param {
			t.Errorf("%s: param = %q; want %q", tt.name, p.Param, tt.param)
		}
	}
}

// TestPostEventsQueueFailures: a queue that cannot be reached for any of
// the events is a 503 (retry: the event ids make it safe); no publisher at
// all is too.
func TestPostEventsQueueFailures(t *testing.T) {
	t.Parallel()
	unavailable := fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "usage events not sent"), errors.New("sqs: throttled"))
	body := `{"events":[` + event("30000000-0000-4000-8000-000000000001", 200, "") + `]}`
	for _, tt := range []struct {
		name  string
		setup func(f *fixture)
	}{
		{"send", func(f *fixture) {
			f.pub.SendFn = func(_ context.Context, events []usage.Event) []error { return []error{unavailable} }
		}},
		{"no publisher", func(f *fixture) { f.h.Publisher = nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.setup(f)
			resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, body))
			wantStatus(t, resp, 503)
			if p := decode[problem](t, resp); p.Type != "urn:nexus:problem:unavailable" || strings.Contains(p.Detail, "sqs") || resp.Headers["Retry-After"] != "1" {
				t.Errorf("problem = %+v, headers %v", p, resp.Headers)
			}
		})
	}
}

// TestPostEventsBackfillWindow: POST /v1/events refuses what the record
// function would quarantine, under the deployment's backfill window, not
// the default one.
func TestPostEventsBackfillWindow(t *testing.T) {
	t.Parallel()
	at := func(id, day string) string {
		return strings.Replace(event(id, 200, ""), `"2026-03-15T11:59:00Z"`, `"`+day+`T11:59:00Z"`, 1)
	}
	body := `{"events":[` + at("30000000-0000-4000-8000-000000000101", "2026-02-23") + "," +
		at("30000000-0000-4000-8000-000000000102", "2026-03-12") + `]}`
	for _, tt := range []struct {
		name   string
		window time.Duration
		want   []string
	}{
		{"default 35 days", 0, []string{"accepted", "accepted"}},
		{"7 days", 7 * 24 * time.Hour, []string{"rejected", "accepted"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.h.BackfillWindow = tt.window
			resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, body))
			wantStatus(t, resp, 202)
			got := decode[struct{ Results []eventResult }](t, resp)
			var status []string
			for _, r := range got.Results {
				status = append(status, r.Status)
				if r.Status == "rejected" && r.Param != "occurred_at" {
					t.Errorf("result %d names %q; want occurred_at", r.Index, r.Param)
				}
			}
			if !cmp.Equal(status, tt.want) {
				t.Errorf("statuses %v; want %v", status, tt.want)
			}
		})
	}
}

// TestPostEventsPerEventOutcome: the answer says what the queue made of
// each event: one it refused is rejected with its reason, one it could not
// be reached for is failed (send it again), and neither is reported as
// accepted.
func TestPostEventsPerEventOutcome(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := func(n int) string { return fmt.Sprintf("30000000-0000-4000-8000-%012d", n) }
	f.pub.SendFn = func(_ context.Context, events []usage.Event) []error {
		if len(events) != 3 {
			t.Fatalf("sent %d events; want the 3 valid ones", len(events))
		}
		return []error{nil, usage.Errorf(usage.CodeInvalid, "the usage queue refused this event: refused by SQS: InvalidMessageContents"),
			fmt.Errorf("%w: %w", usage.Errorf(usage.CodeUnavailable, "the usage queue could not be reached; send this event again with the same event_id"),
				errors.New("sqs: throttled"))}
	}
	body := `{"events":[` + strings.Join([]string{event(id(1), 200, ""), event(id(2), 200, ""), event(id(3), 999, ""), event(id(4), 200, "")}, ",") + `]}`
	resp := f.do(t, request("POST", "/v1/events", map[string]string{"X-Api-Key": f.aliceKey}, body))
	wantStatus(t, resp, 202)
	got := decode[struct {
		Accepted, Rejected, Failed int
		Results                    []eventResult
	}](t, resp)
	want := []eventResult{
		{Index: 0, EventID: id(1), Status: "accepted"},
		{Index: 1, EventID: id(2), Status: "rejected", Detail: "the usage queue refused this event: refused by SQS: InvalidMessageContents"},
		{Index: 2, EventID: id(3), Status: "rejected", Param: "status_code", Detail: "status_code: must be between 100 and 599"},
		{Index: 3, EventID: id(4), Status: "failed", Detail: "the usage queue could not be reached; send this event again with the same event_id"},
	}
	if got.Accepted != 1 || got.Rejected != 2 || got.Failed != 1 {
		t.Errorf("accepted, rejected, failed = %d, %d, %d; want 1, 2, 1", got.Accepted, got.Rejected, got.Failed)
	}
	if d := cmp.Diff(want, got.Results); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
}
