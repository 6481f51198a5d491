package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file feed the handler, over PostgreSQL, what a
// careless or hostile producer sends: values out of range, ids re-sent with
// another time, invisible characters, values the database refuses.

const maxBigint = 9223372036854775807

// hostileEvent returns a valid event of user at now minus ago.
func hostileEvent(user string, now time.Time, ago time.Duration) usage.Event {
	id, _ := uuid.NewV7()
	return usage.Event{Version: 1, EventID: id.String(), UserID: user, Endpoint: "GET /v1/games/{id}", Method: "GET",
		StatusCode: 200, LatencyMS: 10, RequestBytes: 100, ResponseBytes: 1000, Quantity: 1, OccurredAt: now.Add(-ago)}
}

// midday is noon (UTC) of today: the tests' clock, so that their events,
// a minute or an hour before it, fall on the day they read back whenever
// the tests run (at 00:00:30 an event a minute ago is yesterday's).
func midday() time.Time {
	return time.Now().UTC().Truncate(24 * time.Hour).Add(12 * time.Hour)
}

// sqsBatch makes one message per element of msgs, each the JSON of its
// events (an object for one event, an array for more), ids m0, m1, …
// after prefix.
func sqsBatch(prefix string, msgs ...[]usage.Event) events.SQSEvent {
	var ev events.SQSEvent
	for i, m := range msgs {
		var body []byte
		if len(m) == 1 {
			body, _ = json.Marshal(m[0])
		} else {
			body, _ = json.Marshal(m)
		}
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("%sm%d", prefix, i), Body: string(body)})
	}
	return ev
}

func handleOK(t *testing.T, h *Handler, ev events.SQSEvent) {
	t.Helper()
	resp, err := h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle() = %+v, %v; want every message acknowledged", resp, err)
	}
}

type counters struct{ Calls, E4, E5, Req, Resp int64 }

func readCounter(t *testing.T, db *postgres.DB, user string, day time.Time) counters {
	t.Helper()
	var c counters
	err := db.Pool.QueryRow(context.Background(), `SELECT calls, errors_4xx, errors_5xx, request_bytes, response_bytes
		FROM eco_usage_counters WHERE user_id = $1 AND day = $2`, user, day.Format(time.DateOnly)).Scan(&c.Calls, &c.E4, &c.E5, &c.Req, &c.Resp)
	if err != nil {
		t.Fatalf("counter of %s on %s: %v", user, day.Format(time.DateOnly), err)
	}
	return c
}

func count(t *testing.T, db *postgres.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestHandleHugeBytesThenNormalBatch is the reported failure: an event
// with request_bytes = response_bytes = 9223372036854775807 stored (as
// POST /v1/events let through before the bounds, or any row written before
// them), then an ordinary batch of the same user and day. The batch is
// recorded, its calls counted exactly, the byte counters saturate at the
// bigint maximum, and nothing valid is refused. The day's rollup holds the
// maximum too.
func TestHandleHugeBytesThenNormalBatch(t *testing.T) {
	db := pgtest.NewDB(t)
	store := postgres.NewEventStore(db)
	now := midday()
	user := uuid.NewString()
	huge := hostileEvent(user, now, time.Minute)
	huge.RequestBytes, huge.ResponseBytes = maxBigint, maxBigint
	if _, err := store.RecordBatch(context.Background(), []usage.Event{huge}, nil); err != nil {
		t.Fatalf("store the huge event: %v", err)
	}

	h := newHandler(store, now, 0)
	var msgs [][]usage.Event
	for range 5 {
		msgs = append(msgs, []usage.Event{hostileEvent(user, now, time.Minute), hostileEvent(uuid.NewString(), now, time.Minute)})
	}
	handleOK(t, h, sqsBatch("", msgs...))
	if got := count(t, db, `SELECT count(*) FROM eco_rejected_events`); got != 0 {
		t.Errorf("%d valid events quarantined; want none", got)
	}
	want := counters{Calls: 6, Req: maxBigint, Resp: maxBigint}
	if got := readCounter(t, db, user, now); got != want {
		t.Errorf("counter = %+v; want %+v", got, want)
	}
	// Another day's batch of the same user: the counters keep moving.
	handleOK(t, h, sqsBatch("next", []usage.Event{hostileEvent(user, now, time.Minute)}))
	if got := readCounter(t, db, user, now); got.Calls != 7 || got.Req != maxBigint {
		t.Errorf("counter after the next batch = %+v; want 7 calls, bytes saturated", got)
	}

	rollups := postgres.NewRollupStore(db)
	if _, _, err := rollups.RecomputeDay(context.Background(), rollup.DirtyDay{Day: usage.Day(now)}, 0, 1, rollup.DefaultMaxEndpointsPerDay, false); err != nil {
		t.Fatalf("recompute the day: %v", err)
	}
	var calls, rq, rs int64
	if err := db.Pool.QueryRow(context.Background(), `SELECT calls, request_bytes, response_bytes FROM eco_usage_user_daily
		WHERE user_id = $1 AND day = $2`, user, usage.Day(now)).Scan(&calls, &rq, &rs); err != nil {
		t.Fatal(err)
	}
	if calls != 7 || rq != maxBigint || rs != maxBigint {
		t.Errorf("rollup summary = %d calls, %d, %d bytes; want 7 calls, bytes saturated", calls, rq, rs)
	}
}

// TestHandleFloodOfMaxValuedEvents: a flood of events at every bound (the
// largest quantity, latency and byte counts the queue accepts) onto a user
// whose counters are already near the maximum never stops the user's
// recording: calls stay exact, bytes saturate.
func TestHandleFloodOfMaxValuedEvents(t *testing.T) {
	db := pgtest.NewDB(t)
	now := midday()
	user := uuid.NewString()
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_usage_counters (user_id, day, calls, request_bytes, response_bytes)
		VALUES ($1, $2, 0, $3, $3)`, user, now.Format(time.DateOnly), int64(maxBigint-usage.MaxTransferBytes)); err != nil {
		t.Fatal(err)
	}
	h := newHandler(postgres.NewEventStore(db), now, 0)
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
		handleOK(t, h, sqsBatch(fmt.Sprintf("b%d-", b), msgs...))
	}
	want := counters{Calls: batches * perBatch * usage.MaxQuantity, E5: batches * perBatch * usage.MaxQuantity, Req: maxBigint, Resp: maxBigint}
	if got := readCounter(t, db, user, now); got != want {
		t.Errorf("counter = %+v; want %+v", got, want)
	}
	if got := count(t, db, `SELECT count(*) FROM eco_rejected_events`); got != 0 {
		t.Errorf("%d events at the bounds quarantined; want none", got)
	}
}

// TestHandleOutOfRangeQuarantined: values past the bounds on the queue are
// quarantined, each naming its field, while the message's other events are
// recorded.
func TestHandleOutOfRangeQuarantined(t *testing.T) {
	db := pgtest.NewDB(t)
	now := midday()
	user := uuid.NewString()
	h := newHandler(postgres.NewEventStore(db), now, 0)
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
	handleOK(t, h, sqsBatch("", msg))
	for i, f := range fields {
		var reason string
		err := db.Pool.QueryRow(context.Background(), `SELECT reason FROM eco_rejected_events
			WHERE message_id = 'm0' AND position = $1 AND field = $2 AND event_id = $3`, i+1, f, msg[i+1].EventID).Scan(&reason)
		if err != nil || !strings.HasPrefix(reason, f+": must be between") {
			t.Errorf("quarantine of the %s event: %q, %v; want a reason naming %s", f, reason, err, f)
		}
	}
	if got := readCounter(t, db, user, now); got.Calls != 1 {
		t.Errorf("counter = %+v; want the one valid event", got)
	}
}

// TestHandleInvisibleEndpointsRefused: endpoints carrying bidirectional
// overrides or isolates, or zero-width characters, are quarantined naming
// the endpoint and the character.
func TestHandleInvisibleEndpointsRefused(t *testing.T) {
	db := pgtest.NewDB(t)
	now := midday()
	h := newHandler(postgres.NewEventStore(db), now, 0)
	runes := []string{"\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u2060"}
	var msgs [][]usage.Event
	for _, r := range runes {
		e := hostileEvent(uuid.NewString(), now, time.Minute)
		e.Endpoint = "GET /v1/" + r + "admin"
		msgs = append(msgs, []usage.Event{e})
	}
	handleOK(t, h, sqsBatch("", msgs...))
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
	if got := count(t, db, `SELECT count(*) FROM eco_api_usage`); got != 0 {
		t.Errorf("%d events recorded; want none", got)
	}
}
