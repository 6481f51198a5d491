package record_test

// The record path under duplicates, re-stamped ids, poison rows and
// redelivery: every event once, every bad one quarantined once.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/testkit"
	"github.com/nexus/usage/shared/usage"
)

// TestRecorderSameEventIDAnotherTime: a producer that retries with a
// re-stamped occurred_at sends the same event id with another time, in a
// later batch or in the same one: it is counted once, the first one wins,
// and the batch reports it as a duplicate.
func TestRecorderSameEventIDAnotherTime(t *testing.T) {
	db := pgtest.NewDB(t)
	now := testkit.Midday()
	user := uuid.NewString()
	r := recorderAt(t, postgres.NewEventStore(db), now)
	first := hostileEvent(user, now, 3*24*time.Hour)
	recordOK(t, r, messagesOf("a", []usage.Event{first}))

	again := first
	again.OccurredAt = now.Add(-time.Minute) // another day
	again.StatusCode = 500
	twin := hostileEvent(user, now, time.Hour)
	twinLater := twin
	twinLater.OccurredAt = now.Add(-2 * time.Hour)
	res, err := r.Record(context.Background(), []record.Message{
		{ID: "b0", Body: mustJSON(t, again)},
		{ID: "b1", Body: mustJSON(t, []usage.Event{twin, twinLater})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 3 || res.Inserted != 1 || res.Duplicates != 2 || len(res.Rejected) != 0 {
		t.Errorf("Record = %+v; want 3 events, 1 inserted, 2 duplicates", res)
	}
	var firstAt, twinAt time.Time
	if err := db.Pool.QueryRow(context.Background(), `SELECT
		(SELECT occurred_at FROM eco_api_usage WHERE event_id = $1), (SELECT occurred_at FROM eco_api_usage WHERE event_id = $2)`,
		first.EventID, twin.EventID).Scan(&firstAt, &twinAt); err != nil {
		t.Fatal(err)
	}
	if !firstAt.Equal(first.OccurredAt.Truncate(time.Microsecond)) || !twinAt.Equal(twin.OccurredAt.Truncate(time.Microsecond)) {
		t.Errorf("stored times %s, %s; want the first ones %s, %s", firstAt, twinAt, first.OccurredAt, twin.OccurredAt)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_api_usage`); got != 2 {
		t.Errorf("%d raw rows; want 2", got)
	}
	if got := pgtest.Count(t, db, `SELECT coalesce(sum(calls), 0) FROM eco_usage_counters WHERE user_id = $1`, user); got != 2 {
		t.Errorf("%d calls counted; want 2", got)
	}
	// The re-stamped duplicate falls on today, beside the twin: today holds
	// the twin's one call, first's day its own.
	for _, c := range []struct {
		day  time.Time
		want int64
	}{{usage.Day(again.OccurredAt), 1}, {usage.Day(first.OccurredAt), 1}} {
		if got := pgtest.Count(t, db, `SELECT coalesce(sum(calls), 0) FROM eco_usage_counters WHERE user_id = $1 AND day = $2`, user, c.day); got != c.want {
			t.Errorf("%s: %d calls counted; want %d", c.day.Format(time.DateOnly), got, c.want)
		}
	}
}

// TestRecorderSameEventIDInCapitals: a UUID in capitals is the same id. The
// same event sent with its ids in capitals and in small letters, in one
// batch and in a later one, is stored and counted once.
func TestRecorderSameEventIDInCapitals(t *testing.T) {
	db := pgtest.NewDB(t)
	now := testkit.Midday()
	user := uuid.NewString()
	r := recorderAt(t, postgres.NewEventStore(db), now)
	e := hostileEvent(user, now, time.Hour)
	upper := e
	upper.EventID, upper.UserID = strings.ToUpper(e.EventID), strings.ToUpper(e.UserID)
	res, err := r.Record(context.Background(), []record.Message{{ID: "a", Body: mustJSON(t, []usage.Event{upper, e})}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 1 || res.Duplicates != 1 || len(res.Rejected) != 0 {
		t.Errorf("Record = %+v; want 1 inserted, 1 duplicate", res)
	}
	recordOK(t, r, messagesOf("b", []usage.Event{upper}))
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_api_usage`); got != 1 {
		t.Errorf("%d raw rows; want 1", got)
	}
	if got := pgtest.Count(t, db, `SELECT coalesce(sum(calls), 0) FROM eco_usage_counters WHERE user_id = $1`, user); got != 1 {
		t.Errorf("%d calls counted; want 1", got)
	}
}

// TestRecorderPoisonRowSplitOut: the database refuses one event of a batch
// that validation let through (a CHECK constraint of this test's database
// stands in for a future data error, and a trigger raising 22003 for a
// value out of a column's range). The batch is split until that event
// stands alone; it is quarantined with the database's reason, in our
// words, naming the field; every other event is recorded. Redelivering the
// batch changes nothing: no event counted twice, no rejection duplicated.
func TestRecorderPoisonRowSplitOut(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `
		ALTER TABLE eco_api_usage ADD CONSTRAINT eco_api_usage_latency_ms_check CHECK (latency_ms <> 4242);
		CREATE FUNCTION test_refuse_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.request_bytes = 777 THEN
				RAISE EXCEPTION 'out of range' USING ERRCODE = 'numeric_value_out_of_range', COLUMN = 'request_bytes';
			END IF;
			RETURN NEW;
		END;
		$$;
		CREATE TRIGGER test_refuse_bytes BEFORE INSERT ON eco_api_usage FOR EACH ROW EXECUTE FUNCTION test_refuse_bytes();`); err != nil {
		t.Fatal(err)
	}
	now := testkit.Midday()
	users := []string{uuid.NewString(), uuid.NewString()}
	var msgs [][]usage.Event
	var poisonLatency, poisonBytes usage.Event
	for m := range 50 {
		var evs []usage.Event
		for i := range 10 {
			e := hostileEvent(users[(m+i)%2], now, time.Minute)
			switch {
			case m == 17 && i == 3:
				e.LatencyMS = 4242
				poisonLatency = e
			case m == 42 && i == 9:
				e.RequestBytes = 777
				poisonBytes = e
			}
			evs = append(evs, e)
		}
		msgs = append(msgs, evs)
	}
	batch := messagesOf("", msgs...)
	r := recorderAt(t, postgres.NewEventStore(db), now)
	for delivery := range 3 {
		recordOK(t, r, batch)
		if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_api_usage`); got != 498 {
			t.Errorf("delivery %d: %d raw rows; want 498", delivery, got)
		}
		if got := pgtest.Count(t, db, `SELECT sum(calls) FROM eco_usage_counters`); got != 498 {
			t.Errorf("delivery %d: %d calls counted; want 498", delivery, got)
		}
		if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events`); got != 2 {
			t.Errorf("delivery %d: %d rejections; want 2", delivery, got)
		}
	}
	for _, tt := range []struct {
		e                 usage.Event
		message, position int
		field, reason     string
	}{
		{poisonLatency, 17, 3, "latency_ms", "latency_ms: breaks the database's rule eco_api_usage_latency_ms_check"},
		{poisonBytes, 42, 9, "request_bytes", "request_bytes: is out of the range the database stores"},
	} {
		var field, reason, body string
		err := db.Pool.QueryRow(ctx, `SELECT field, reason, body FROM eco_rejected_events
			WHERE message_id = $1 AND position = $2 AND event_id = $3`, fmt.Sprintf("m%d", tt.message), tt.position, tt.e.EventID).
			Scan(&field, &reason, &body)
		if err != nil || field != tt.field || reason != tt.reason || !strings.Contains(body, tt.e.EventID) {
			t.Errorf("quarantine of m%d/%d: %q, %q, %v; want %q, %q and the event's JSON", tt.message, tt.position, field, reason, err, tt.field, tt.reason)
		}
	}
}

// TestRecorderRedeliveryKeepsOneRejection: a batch redelivered (the
// acknowledgement lost) quarantines its invalid messages once.
func TestRecorderRedeliveryKeepsOneRejection(t *testing.T) {
	db := pgtest.NewDB(t)
	r := recorderAt(t, postgres.NewEventStore(db), recordNow)
	msgs := mixedBatch(t)
	for range 3 {
		recordOK(t, r, msgs)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events`); got != 4 {
		t.Errorf("%d rejections after 3 deliveries; want the batch's 4", got)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events WHERE message_id = 'm-valid-array' AND position = 1`); got != 1 {
		t.Errorf("the array's second event quarantined %d times; want once, at position 1", got)
	}
}
