package soak

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nexus/usage/shared/record"
)

// maxMismatches is how many differences a report keeps (it counts them
// all).
const maxMismatches = 50

// Report is what a run sent, what the system made of it, and every
// difference from what it should have made.
type Report struct {
	Config Config

	SentQueue, SentHTTP   int // copies sent by the producers, duplicates included
	Unique                int // distinct events (ids, and bad-JSON bodies)
	Valid, Hostile        int // unique valid and hostile events
	Invalid               int // unique invalid events
	Duplicates, Restamped int // copies repeating an earlier event's id; those with another occurred_at
	Late                  int // unique valid events one to 33 days old
	Replayed              int // copies sent again after moto_server lost its queue
	HTTPRetries           int // POST /v1/events requests sent again (429, 5xx, network)
	PublisherDropped      int64

	Recorded       int64               // rows of eco_api_usage
	Calls          int64               // eco_usage_counters calls, summed
	Foreign        int                 // rows the soak did not send (the API's own metering)
	Quarantined    int                 // rows of eco_rejected_events
	ByReason       map[string]int      // quarantined invalid events by field ("(message)": as a whole)
	RefusedAtEdge  map[string]int      // HTTP events refused by POST /v1/events, by param
	HostileOutcome map[string][]string // "kind via path" → outcomes

	Kills, FunctionRestarts        int
	PostgresRestarts, MotoRestarts int
	PostgresDown, MotoDown         time.Duration
	SendTime, Duration             time.Duration
	// RecordRate is the rows recorded per second between the first and
	// the last row's received_at (RecordSpan).
	RecordRate float64
	RecordSpan time.Duration
	RecordPeak int64 // rows recorded in the busiest second

	// Outage: queue events sent while PostgreSQL was down, and those of
	// them made at the backfill window's edge.
	SentDuringOutage, EdgeEvents int
	// QuarantinedForAge counts valid events quarantined naming occurred_at
	// (goal 0).
	QuarantinedForAge int
	// DeadLettersPlaced are the messages the soak put in the DLQ itself,
	// Redriven the messages the redrive moved back (those and the run's
	// own).
	DeadLettersPlaced, Redriven int

	DLQ      int            // messages the run itself sent to the DLQ (goal 0)
	DLQWhy   []string       // one line per dead-lettered message
	Failures map[string]int // what the stack and the functions logged as failing, by cause

	Notes      []string
	Mismatches []string // the first maxMismatches differences
	Mismatched int      // all of them
	// ByKind counts the differences by kind (the message with its
	// particulars left out).
	ByKind map[string]int

	mu sync.Mutex
}

func (r *Report) mismatch(format string, args ...any) {
	r.mismatchKind(kindOf(format), format, args...)
}

func (r *Report) mismatchKind(kind, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Mismatched++
	if r.ByKind == nil {
		r.ByKind = map[string]int{}
	}
	r.ByKind[kind]++
	if len(r.Mismatches) < maxMismatches {
		r.Mismatches = append(r.Mismatches, fmt.Sprintf(format, args...))
	}
}

func (r *Report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// OK reports whether the run found no difference.
func (r *Report) OK() bool { return r.Mismatched == 0 }

// Print writes the figures, the notes and the differences.
func (r *Report) Print(w io.Writer) {
	c := r.Config
	pr := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-22s %s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "soak: %d events, seed %d, %.1fs (sending %.1fs)\n", c.Events, c.Seed, r.Duration.Seconds(), r.SendTime.Seconds())
	pr("sent", "%d through the queue, %d through POST /v1/events", r.SentQueue, r.SentHTTP)
	pr("unique", "%d: %d valid (%d late), %d hostile, %d invalid", r.Unique, r.Valid, r.Late, r.Hostile, r.Invalid)
	pr("duplicates", "%d (%.1f %%), %d re-stamped with another occurred_at", r.Duplicates, pct(r.Duplicates, r.SentQueue+r.SentHTTP), r.Restamped)
	pr("resent", "%d replayed after the moto_server restart, %d HTTP requests retried, %d dropped by the publisher", r.Replayed, r.HTTPRetries, r.PublisherDropped)
	pr("recorded", "%d rows, %d calls in the live counters, %d rows the soak did not send", r.Recorded, r.Calls, r.Foreign)
	pr("quarantined", "%d rows; invalid events by reason: %s", r.Quarantined, counts(r.ByReason))
	pr("refused at the edge", "%s", counts(r.RefusedAtEdge))
	pr("hostile values", "")
	for _, k := range sortedKeys(r.HostileOutcome) {
		fmt.Fprintf(w, "    %-28s %s\n", k, strings.Join(r.HostileOutcome[k], "; "))
	}
	pr("faults", "%d kills of record in mid-batch (%d fresh environments), PostgreSQL restarted %d (%.1fs), moto_server restarted %d (%.1fs, queues restored)",
		r.Kills, r.FunctionRestarts, r.PostgresRestarts, r.PostgresDown.Seconds(), r.MotoRestarts, r.MotoDown.Seconds())
	if c.Outage > 0 {
		scale := float64(record.DefaultRedelivery.Base) / float64(c.Redelivery.Base)
		pr("outage", "PostgreSQL down %.1fs: at the record path's redelivery schedule (%s doubling to %s, the deployed one compressed %.0f×) that stands for %s; %d events sent meanwhile, %d of them %s inside the backfill window's edge",
			r.PostgresDown.Seconds(), c.Redelivery.Base, c.Redelivery.Max, scale, time.Duration(float64(r.PostgresDown)*scale).Round(time.Minute),
			r.SentDuringOutage, r.EdgeEvents, EdgeMargin)
	}
	pr("quarantined for age", "%d valid events (goal 0)", r.QuarantinedForAge)
	if r.RecordSpan > 0 {
		pr("record rate", "%.0f events/s (%d rows over %.1fs of the run, faults and waits for redelivery included); busiest second %d",
			r.RecordRate, r.Recorded, r.RecordSpan.Seconds(), r.RecordPeak)
	} else {
		pr("record rate", "not measured: %d rows, all in one batch", r.Recorded)
	}
	pr("DLQ", "%d messages dead-lettered by the run (goal 0); %d placed there by the soak as an earlier outage's; %d moved back by POST /v1/admin/redrive",
		r.DLQ, r.DeadLettersPlaced, r.Redriven)
	for _, l := range r.DLQWhy {
		fmt.Fprintf(w, "    %s\n", l)
	}
	if len(r.Failures) > 0 {
		pr("logged failures", "")
		for _, k := range sortedKeys(r.Failures) {
			fmt.Fprintf(w, "    %6d  %s\n", r.Failures[k], k)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if r.OK() {
		fmt.Fprintln(w, "soak: no differences")
		return
	}
	fmt.Fprintf(w, "soak: %d differences, by kind:\n", r.Mismatched)
	kinds := sortedKeys(r.ByKind)
	sort.SliceStable(kinds, func(i, j int) bool { return r.ByKind[kinds[i]] > r.ByKind[kinds[j]] })
	for _, k := range kinds {
		fmt.Fprintf(w, "  %6d  %s\n", r.ByKind[k], k)
	}
	fmt.Fprintf(w, "the first %d:\n", len(r.Mismatches))
	for _, m := range r.Mismatches {
		fmt.Fprintf(w, "  - %s\n", m)
	}
}

// kindOf is a difference's format with its verbs as "…".
func kindOf(format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		for i++; i < len(format) && strings.IndexByte("vdsqxfTtb%", format[i]) < 0; i++ {
		}
		b.WriteString("…")
	}
	return b.String()
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
