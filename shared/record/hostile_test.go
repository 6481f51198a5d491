package record_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file feed the Recorder, over PostgreSQL, what a
// careless or hostile producer sends: values at and out of the bounds,
// invisible characters. (The ids re-sent with another time and the values
// the database refuses are batch_test.go's; the byte counters of an event
// stored before the bounds, shared/postgres's
// TestEventStoreHugeBytesThenNormalBatch.)

const maxBigint = 9223372036854775807

// TestRecorderFloodOfMaxValuedEvents: a flood of events at every bound (the
// largest quantity, latency and byte counts the queue accepts) onto a user
// whose counters are already near the maximum never stops the user's
// recording: calls stay exact, bytes saturate.
func TestRecorderFloodOfMaxValuedEvents(t *testing.T) {
	db := pgtest.NewDB(t)
	now := testkit.Midday()
	user := uuid.NewString()
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_usage_counters (user_id, day, calls, request_bytes, response_bytes)
		VALUES ($1, $2, 0, $3, $3)`, user, now.Format(time.DateOnly), int64(maxBigint-usage.MaxTransferBytes)); err != nil {
		t.Fatal(err)
	}
	r := recorderAt(t, postgres.NewEventStore(db), now)
	const batches, perBatch = 5, 1000
	for b := range batches {
		var msgs [][]usage.Event
		for range perBatch / 100 {
			var m []usage.Event
			for range 100 {
				e := hostileEvent(user, now, time.Minute)
				e.Quantity, e.LatencyMS, e.StatusCode = usage.MaxQuantity, usage.MaxLatencyMS, 599
				e.RequestBytes, e.ResponseBytes = usage.MaxTransferBytes, usage.MaxTransferBytes
				m = append(m, e)
			}
			msgs = append(msgs, m)
		}
		recordOK(t, r, messagesOf(fmt.Sprintf("b%d-", b), msgs...))
	}
	want := pgtest.Counter{Calls: batches * perBatch * usage.MaxQuantity, E5: batches * perBatch * usage.MaxQuantity, Req: maxBigint, Resp: maxBigint}
	if got := pgtest.Counters(t, db)[user+" "+now.Format(time.DateOnly)]; got != want {
		t.Errorf("counter = %+v; want %+v", got, want)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events`); got != 0 {
		t.Errorf("%d events at the bounds quarantined; want none", got)
	}
}

// TestRecorderOutOfRangeQuarantined: values past the bounds on the queue are
// quarantined, each naming its field, while the message's other events are
// recorded.
func TestRecorderOutOfRangeQuarantined(t *testing.T) {
	db := pgtest.NewDB(t)
	now := testkit.Midday()
	user := uuid.NewString()
	r := recorderAt(t, postgres.NewEventStore(db), now)
	edits := map[string]func(*usage.Event){
		"request_bytes":  func(e *usage.Event) { e.RequestBytes = maxBigint },
		"response_bytes": func(e *usage.Event) { e.ResponseBytes = usage.MaxTransferBytes + 1 },
		"latency_ms":     func(e *usage.Event) { e.LatencyMS = usage.MaxLatencyMS + 1 },
		"quantity":       func(e *usage.Event) { e.Quantity = usage.MaxQuantity + 1 },
	}
	msg := []usage.Event{hostileEvent(user, now, time.Minute)}
	var fields []string
	for f, edit := range edits {
		e := hostileEvent(user, now, time.Minute)
		edit(&e)
		msg = append(msg, e)
		fields = append(fields, f)
	}
	recordOK(t, r, messagesOf("", msg))
	for i, f := range fields {
		var reason string
		err := db.Pool.QueryRow(context.Background(), `SELECT reason FROM eco_rejected_events
			WHERE message_id = 'm0' AND position = $1 AND field = $2 AND event_id = $3`, i+1, f, msg[i+1].EventID).Scan(&reason)
		if err != nil || !strings.HasPrefix(reason, f+": must be between") {
			t.Errorf("quarantine of the %s event: %q, %v; want a reason naming %s", f, reason, err, f)
		}
	}
	if got := pgtest.Counters(t, db)[user+" "+now.Format(time.DateOnly)]; got.Calls != 1 {
		t.Errorf("counter = %+v; want the one valid event", got)
	}
}

// TestRecorderInvisibleEndpointsRefused: endpoints carrying bidirectional
// overrides or isolates, or zero-width characters, are quarantined naming
// the endpoint and the character.
func TestRecorderInvisibleEndpointsRefused(t *testing.T) {
	db := pgtest.NewDB(t)
	now := testkit.Midday()
	r := recorderAt(t, postgres.NewEventStore(db), now)
	runes := []string{"\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u2060"}
	var msgs [][]usage.Event
	for _, r := range runes {
		e := hostileEvent(uuid.NewString(), now, time.Minute)
		e.Endpoint = "GET /v1/" + r + "admin"
		msgs = append(msgs, []usage.Event{e})
	}
	recordOK(t, r, messagesOf("", msgs...))
	for i, r := range runes {
		var field, reason string
		if err := db.Pool.QueryRow(context.Background(), `SELECT field, reason FROM eco_rejected_events WHERE message_id = $1`,
			fmt.Sprintf("m%d", i)).Scan(&field, &reason); err != nil {
			t.Fatalf("endpoint with %U not quarantined: %v", []rune(r)[0], err)
		}
		if code := fmt.Sprintf("U+%04X", []rune(r)[0]); field != "endpoint" || !strings.Contains(reason, code) {
			t.Errorf("quarantine of %s: field %q, reason %q; want endpoint and %s named", code, field, reason, code)
		}
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_api_usage`); got != 0 {
		t.Errorf("%d events recorded; want none", got)
	}
}
