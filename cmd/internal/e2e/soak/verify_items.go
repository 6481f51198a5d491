package soak

import (
	"slices"
	"strings"
	"time"
)

func (it *item) classString() string { return [...]string{"valid", "hostile", "invalid"}[it.class] }

// checkRow compares an event's one row with what was sent: the row's
// occurred_at is one of the copies' (the first stored wins), the rest is
// the event's.
func (r *runner) checkRow(name string, it *item, got []row) {
	if len(got) != 1 {
		return
	}
	w, e := got[0], it.ev
	if !slices.ContainsFunc(it.stamps, func(t time.Time) bool { return t.Equal(w.at) }) {
		r.bad(it, name, "stored with occurred_at %s, which no copy had", w.at.Format(time.RFC3339Nano))
	}
	if w.user != e.UserID || w.key != e.APIKeyID || w.endpoint != e.Endpoint || w.method != e.Method || w.status != e.StatusCode ||
		w.latency != e.LatencyMS || w.req != e.RequestBytes || w.resp != e.ResponseBytes || w.quantity != 1 {
		r.bad(it, name, "stored as %+v, sent as %+v", w, e)
	}
}

// hostileOutcome says what became of a hostile event: recorded once,
// quarantined, or refused at the edge; anything else is a difference.
func (r *runner) hostileOutcome(name string, it *item, got []row, quar []rejection, dead bool) string {
	switch {
	case it.path == pathHTTP && it.edge == "rejected":
		if len(got) > 0 {
			r.bad(it, name, "refused by POST /v1/events (%s), yet stored", it.edgeParam)
		}
		return "refused at the edge (" + it.edgeParam + ")"
	case it.path == pathHTTP && it.edge != "accepted":
		r.bad(it, name, "POST /v1/events answered %s", it.edge)
		return "refused (" + it.edge + ")"
	case len(got) == 1 && len(quar) == 0:
		return "recorded"
	case len(got) == 0 && len(quar) > 0:
		return "quarantined (" + shortReason(quar[0]) + ")"
	case len(got) == 0 && dead:
		r.bad(it, name, "neither recorded nor quarantined; in the DLQ")
		return "dead-lettered"
	case len(got) == 0:
		r.bad(it, name, "neither recorded nor quarantined")
		return "lost"
	case len(quar) == 0 && distinctStamps(it.stamps) > 1:
		r.bad(it, name, "stored %d times, want once: a copy re-stamped with another occurred_at counted again", len(got))
		return "recorded more than once"
	case len(quar) == 0:
		r.bad(it, name, "stored %d times, want once", len(got))
		return "recorded more than once"
	default:
		r.bad(it, name, "stored %d times and quarantined %d times (message %s: %s)", len(got), len(quar), quar[0].messageID, quar[0].reason)
		return "recorded and quarantined"
	}
}

// shortReason is a rejection's reason without ids and numbers that
// differ from event to event.
func shortReason(j rejection) string {
	s := digits.ReplaceAllString(j.reason, "N")
	if len(s) > 90 {
		s = s[:90] + "…"
	}
	return s
}

// checkInvalid checks that an invalid event was refused with its reason:
// quarantined naming the field (the queue), or refused by POST /v1/events
// naming it (HTTP); and never stored.
func (r *runner) checkInvalid(name string, it *item, got []row, quar []rejection, dead bool) {
	rep := r.report
	field := invalidField[it.kind]
	if len(got) > 0 {
		r.bad(it, name, "stored %d times", len(got))
	}
	if it.path == pathHTTP {
		switch {
		case it.kind == "bad-json" && it.edge == "refused":
			rep.RefusedAtEdge["(request)"]++
		case it.edge == "rejected" && it.edgeParam == field:
			rep.RefusedAtEdge[field]++
		default:
			r.bad(it, name, "POST /v1/events answered %s %q, want rejected %q", it.edge, it.edgeParam, field)
		}
		return
	}
	for _, j := range quar {
		if j.field == field && (field != "" || strings.HasPrefix(j.reason, "invalid JSON")) {
			key := field
			if key == "" {
				key = "(message)"
			}
			rep.ByReason[key]++
			return
		}
	}
	if len(quar) == 0 && dead {
		r.bad(it, name, "not in the quarantine; in the DLQ")
		return
	}
	if len(quar) == 0 {
		r.bad(it, name, "not in the quarantine")
		return
	}
	r.bad(it, name, "quarantined for field %q (%s), want %q", quar[0].field, quar[0].reason, field)
}
