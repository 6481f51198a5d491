package soak

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"regexp"
	"slices"
	"strings"
	"time"
)

// row is one row of eco_api_usage.
type row struct {
	id, user, key, endpoint, method string
	status                          int
	latency, req, resp, quantity    int64
	at                              time.Time
}

// rejection is one row of eco_rejected_events.
// rejection is one row of eco_rejected_events; position is the event's
// index in its message (-1 where the row has none), so that two copies of
// one invalid event in one message are two rows, and a redelivery's copy
// of either is the same row.
type rejection struct {
	messageID, eventID, field, reason, body string
	position                                int
}

// dayKey is one user's UTC day.
type dayKey struct{ user, day string }

// dayTotals are a user's day as the live counters keep it.
type dayTotals struct{ calls, e4, e5, req, resp int64 }

// add adds one event of quantity q; byte sums that overflow int64 stick
// at -1 (PostgreSQL's bigint could not hold them either).
func (t *dayTotals) add(q int64, status int, req, resp int64) {
	t.calls += q
	if status >= 400 && status < 500 {
		t.e4 += q
	} else if status >= 500 {
		t.e5 += q
	}
	t.req, t.resp = addBytes(t.req, req), addBytes(t.resp, resp)
}

func addBytes(a, b int64) int64 {
	if a < 0 {
		return a
	}
	s, carry := bits.Add64(uint64(a), uint64(b), 0)
	if carry != 0 || s > math.MaxInt64 {
		return -1
	}
	return int64(s)
}

var eventIDInBody = regexp.MustCompile(`"event_id"\s*:\s*"([0-9a-f-]{36})"`)

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// verify reads what the system made of the run and compares it with what
// was sent: every event, then every user's day, then dead, what the run
// sent to the DLQ (read before the redrive moved it back).
func (r *runner) verify(ctx context.Context, dead []deadLetter) error {
	rows, err := r.rows(ctx)
	if err != nil {
		return err
	}
	rejs, err := r.rejections(ctx)
	if err != nil {
		return err
	}
	counters, err := r.counters(ctx)
	if err != nil {
		return err
	}
	inDLQ := map[string]bool{}
	for _, m := range dead {
		for _, e := range m.events {
			inDLQ[e.EventID] = true
		}
		for _, j := range m.rejected {
			inDLQ[j.EventID], inDLQ[j.Body] = true, true
		}
	}
	rep := r.report
	byID := map[string][]row{}
	for _, w := range rows {
		byID[w.id] = append(byID[w.id], w)
	}
	rejByID, rejByBody := map[string][]rejection{}, map[string][]rejection{}
	seen := map[rejection]int{}
	for _, j := range rejs {
		if j.eventID != "" {
			rejByID[j.eventID] = append(rejByID[j.eventID], j)
		} else {
			rejByBody[j.body] = append(rejByBody[j.body], j)
			// A rejection that names no event but holds one event's
			// JSON (a quarantine that keeps only the body) is that
			// event's: the event_id in it.
			if m := eventIDInBody.FindStringSubmatch(j.body); m != nil && strings.Count(j.body, `"event_id"`) == 1 {
				rejByID[m[1]] = append(rejByID[m[1]], j)
			}
		}
		if seen[j]++; seen[j] == 2 {
			rep.mismatch("rejection stored more than once for one event of one message (a redelivered batch quarantined it again): message %s, position %d, event %q, %s", j.messageID, j.position, j.eventID, j.reason)
		}
	}
	rep.Recorded, rep.Quarantined = int64(len(rows)), len(rejs)
	rep.ByReason, rep.RefusedAtEdge, rep.HostileOutcome = map[string]int{}, map[string]int{}, map[string][]string{}
	rep.Replayed, rep.HTTPRetries = int(r.replayed.Load()), int(r.httpRetries.Load())
	rep.SentHTTP = int(r.sentHTTP.Load())
	rep.SentQueue = int(r.sent.Load()) - rep.SentHTTP

	want := map[dayKey]*dayTotals{}
	total := func(k dayKey) *dayTotals {
		if want[k] == nil {
			want[k] = &dayTotals{}
		}
		return want[k]
	}
	sent := map[string]bool{}
	hostile := map[string]map[string]int{}
	for _, it := range r.gen.items {
		rep.Unique++
		rep.Duplicates += len(it.stamps) - 1
		for _, s := range it.stamps[1:] {
			if !s.Equal(it.stamps[0]) {
				rep.Restamped++
			}
		}
		if it.id != "" {
			sent[it.id] = true
		}
		got := byID[it.id]
		if it.id == "" {
			got = nil
		}
		quar := rejByID[it.id]
		if it.body != "" {
			quar = rejByBody[it.body]
		}
		name := fmt.Sprintf("%s event %s (%s", it.classString(), it.id, it.path)
		if it.kind != "" {
			name += ", " + it.kind
		}
		if it.late {
			name += ", late"
		}
		name += ")"
		dead := inDLQ[it.id] || (it.body != "" && inDLQ[it.body])
		switch it.class {
		case classValid:
			rep.Valid++
			if it.late {
				rep.Late++
			}
			if it.atEdge && !it.deadLettered {
				rep.EdgeEvents++
			}
			if it.deadLettered {
				rep.DeadLettersPlaced++
			}
			for _, q := range quar {
				if q.field == "occurred_at" {
					rep.QuarantinedForAge++
					break
				}
			}
			if it.path == pathHTTP && it.edge != "accepted" {
				r.bad(it, name, "POST /v1/events answered %s %s", it.edge, it.edgeParam)
				continue
			}
			if len(got) != 1 {
				switch {
				case len(got) > 1 && distinctStamps(it.stamps) > 1:
					r.bad(it, name, "stored %d times, want once: a copy re-stamped with another occurred_at counted again", len(got))
				case len(got) > 1:
					r.bad(it, name, "stored %d times, want once", len(got))
				case len(quar) > 0:
					r.bad(it, name, "not stored, quarantined: %s", quar[0].reason)
				case dead:
					r.bad(it, name, "not stored; in the DLQ")
				default:
					r.bad(it, name, "not stored, not in the DLQ either")
				}
			}
			r.checkRow(name, it, got)
		case classHostile:
			rep.Hostile++
			outcome := r.hostileOutcome(name, it, got, quar, dead)
			k := it.kind + " via " + it.path.String()
			if hostile[k] == nil {
				hostile[k] = map[string]int{}
			}
			hostile[k][outcome]++
		case classInvalid:
			rep.Invalid++
			r.checkInvalid(name, it, got, quar, dead)
		}
		switch {
		case it.class == classValid:
			// Every valid event counts: on its row's day, or on its first
			// copy's when it has no single row.
			at := it.stamps[0]
			if len(got) == 1 {
				at = got[0].at
			}
			e := it.ev
			total(dayKey{e.UserID, day(at)}).add(1, e.StatusCode, e.RequestBytes, e.ResponseBytes)
		case it.class == classHostile && len(got) >= 1:
			w := got[0]
			total(dayKey{w.user, day(w.at)}).add(w.quantity, w.status, w.req, w.resp)
		}
	}
	for k, m := range hostile {
		for _, o := range sortedKeys(m) {
			rep.HostileOutcome[k] = append(rep.HostileOutcome[k], fmt.Sprintf("%s ×%d", o, m[o]))
		}
	}
	for _, w := range rows {
		if sent[w.id] {
			continue
		}
		// POST /v1/events may meter its own calls under the caller.
		if w.user == r.gen.httpUser.userID {
			rep.Foreign++
			total(dayKey{w.user, day(w.at)}).add(w.quantity, w.status, w.req, w.resp)
			continue
		}
		rep.mismatch("row %s (user %s, %s) was never sent", w.id, w.user, w.endpoint)
	}
	r.compareDays(want, rows, counters)
	if err := r.recordRate(ctx); err != nil {
		return err
	}
	r.explainDLQ(dead, byID, rejByID, rejByBody)
	return nil
}

// compareDays compares, per user and day, the events that should count
// with the rows and with the live counters.
func (r *runner) compareDays(want map[dayKey]*dayTotals, rows []row, counters map[dayKey]dayTotals) {
	stored := map[dayKey]*dayTotals{}
	for _, w := range rows {
		k := dayKey{w.user, day(w.at)}
		if stored[k] == nil {
			stored[k] = &dayTotals{}
		}
		stored[k].add(w.quantity, w.status, w.req, w.resp)
	}
	keys := map[dayKey]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range stored {
		keys[k] = true
	}
	for k := range counters {
		keys[k] = true
	}
	sorted := make([]dayKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.SortFunc(sorted, func(a, b dayKey) int { return strings.Compare(a.user+a.day, b.user+b.day) })
	for _, k := range sorted {
		var w, s dayTotals
		if want[k] != nil {
			w = *want[k]
		}
		if stored[k] != nil {
			s = *stored[k]
		}
		c := counters[k]
		r.report.Calls += c.calls
		if w != s || w != c {
			r.report.mismatch("a user's day differs (want; rows; counters): user %s on %s: %s; %s; %s", k.user, k.day, w, s, c)
		}
	}
}

func (t dayTotals) String() string {
	b := func(v int64) string {
		if v < 0 {
			return "overflow"
		}
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("calls %d (4xx %d, 5xx %d), bytes %s/%s", t.calls, t.e4, t.e5, b(t.req), b(t.resp))
}

// explainDLQ explains every dead-lettered message: what it carries and
// why it could not be recorded. A message of valid events lost for no
// reason the run can name is a difference.
func (r *runner) explainDLQ(msgs []deadLetter, byID map[string][]row, rejByID, rejByBody map[string][]rejection) {
	rep := r.report
	rep.DLQ = len(msgs)
	items := map[string]*item{}
	for _, it := range r.gen.items {
		if it.id != "" {
			items[it.id] = it
		}
	}
	dataErrors := 0
	for k, n := range rep.Failures {
		if strings.Contains(k, "SQLSTATE N") || strings.Contains(k, "out of range") {
			dataErrors += n
		}
	}
	for _, m := range msgs {
		events, rejected := m.events, m.rejected
		var kinds []string
		missing := 0
		for _, e := range events {
			if it := items[e.EventID]; it != nil && it.class == classHostile && !slices.Contains(kinds, it.kind) {
				kinds = append(kinds, it.kind)
			}
			if len(byID[e.EventID]) == 0 && len(rejByID[e.EventID]) == 0 {
				missing++
			}
		}
		for _, j := range rejected {
			if it := items[j.EventID]; it != nil && it.class == classHostile && !slices.Contains(kinds, it.kind) {
				kinds = append(kinds, it.kind)
			}
			if (j.EventID != "" && len(rejByID[j.EventID]) == 0) || (j.EventID == "" && len(rejByBody[j.Body]) == 0) {
				missing++
			}
		}
		what := fmt.Sprintf("message %s (received %d times): %d events, %d invalid; %d neither recorded nor quarantined: ",
			m.id, m.receives, len(events), len(rejected), missing)
		// The record path backs off and the queue's maxReceiveCount spans
		// hours (record.Redelivery): whatever the run dead-lettered, the
		// redrive had to save.
		rep.mismatch("message %s reached the DLQ after %d receives (goal: none)", m.id, m.receives)
		switch {
		case missing == 0:
			what += "everything in it is recorded or quarantined (by this message before a fault cut its batch, or by another copy): nothing lost"
		case len(kinds) > 0:
			what += fmt.Sprintf("it carries hostile %s, which failed every batch it was in", strings.Join(kinds, ", "))
		case dataErrors > 0:
			what += fmt.Sprintf("valid events only, dead-lettered with batches that hostile messages failed (%d batch failures on data logged)", dataErrors)
		default:
			what += "valid events only, lost for no reason the run can name"
			rep.mismatch("DLQ %s", what)
		}
		rep.DLQWhy = append(rep.DLQWhy, what)
	}
}

// bad records a difference about one event; its kind names the event's
// class, path and (for invalid and hostile events) kind.
func (r *runner) bad(it *item, name, format string, args ...any) {
	kind := it.classString() + " via " + it.path.String()
	if it.kind != "" {
		kind += " (" + it.kind + ")"
	}
	r.report.mismatchKind(kind+": "+kindOf(format), "%s: "+format, append([]any{name}, args...)...)
}

// distinctStamps counts the different occurred_at of an event's copies.
func distinctStamps(ts []time.Time) int {
	seen := map[time.Time]bool{}
	for _, t := range ts {
		seen[t] = true
	}
	return len(seen)
}
