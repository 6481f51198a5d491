package postgres_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// The event key store (eco_event_keys): dedupe on the event id alone,
// across generations; the store's translation of the data's errors; the
// months retention dropped.

// TestEventStoreDedupeOnEventIDAlone: the same id with another occurred_at
// is a duplicate, in a later batch or in the same one, and the first one
// wins.
func TestEventStoreDedupeOnEventIDAlone(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	now := time.Now().UTC()
	user := uuid.NewString()
	a := testEvent(user, now.Add(-48*time.Hour), 200)
	if n, err := s.RecordBatch(ctx, now, []usage.Event{a}, nil); err != nil || n != 1 {
		t.Fatalf("first batch = %d, %v; want 1", n, err)
	}
	restamped := a
	restamped.OccurredAt = now
	b := testEvent(user, now, 404)
	bLater := b
	bLater.OccurredAt = now.Add(-time.Hour)
	bLater.StatusCode = 500
	n, err := s.RecordBatch(ctx, now, []usage.Event{restamped, b, bLater}, nil)
	if err != nil || n != 1 {
		t.Fatalf("second batch = %d, %v; want only b inserted", n, err)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_api_usage`); got != 2 {
		t.Errorf("%d raw rows; want 2", got)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_api_usage WHERE event_id = $1 AND status_code = 404`, b.EventID); got != 1 {
		t.Errorf("b stored %d times as the first one (404); want once", got)
	}
	got := pgtest.Counters(t, db)
	if c := got[user+" "+now.Format(time.DateOnly)]; c.Calls != 1 || c.E4 != 1 || c.E5 != 0 {
		t.Errorf("today's counter = %+v; want b alone", c)
	}
	if c := got[user+" "+a.OccurredAt.Format(time.DateOnly)]; c.Calls != 1 {
		t.Errorf("the first day's counter = %+v; want a alone", c)
	}
}

// TestEventStoreKeyGenerations: an id is remembered across a generation
// boundary, whichever side of it (and whichever of the overlap's
// generations) each delivery falls on, for DedupeWindow after it was
// first stored; generations the record path needs are created on demand.
func TestEventStoreKeyGenerations(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	boundary := time.Unix(0, 0).UTC().Add(time.Duration(usage.KeyGeneration(time.Now())+3) * usage.DedupeWindow)
	occurred := time.Now().UTC()
	tests := []struct {
		name         string
		first, again time.Duration // receipt times around the boundary
	}{
		{"first before the overlap, again inside it", -2 * time.Hour, 10 * time.Minute},
		{"both inside the overlap", -10 * time.Minute, 10 * time.Minute},
		{"first inside the overlap, again past it", -10 * time.Minute, 3 * time.Hour},
		{"first before the overlap, again past it", -2 * time.Hour, 3 * time.Hour},
		{"first long before, again a window later", -usage.DedupeWindow + time.Hour, 0},
		{"first just after, again a window later", time.Hour, usage.DedupeWindow + time.Hour},
	}
	for _, tt := range tests {
		e := testEvent(uuid.NewString(), occurred, 200)
		if n, err := s.RecordBatch(ctx, boundary.Add(tt.first), []usage.Event{e}, nil); err != nil || n != 1 {
			t.Fatalf("%s: first delivery = %d, %v", tt.name, n, err)
		}
		e.OccurredAt = occurred.Add(-time.Minute)
		if n, err := s.RecordBatch(ctx, boundary.Add(tt.again), []usage.Event{e}, nil); err != nil || n != 0 {
			t.Errorf("%s: second delivery = %d, %v; want a duplicate", tt.name, n, err)
		}
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_api_usage`); got != int64(len(tests)) {
		t.Errorf("%d raw rows; want %d", got, len(tests))
	}
}

// TestEventStoreRefusalInOurWords: a value the database refuses is
// CodeInvalid naming the field, in a sentence of ours; nothing is written.
func TestEventStoreRefusalInOurWords(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE eco_api_usage ADD CONSTRAINT eco_api_usage_quantity_check CHECK (quantity < 500);
		ALTER TABLE eco_api_usage ADD CONSTRAINT odd_rule CHECK (latency_ms <> 13)`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		edit          func(*usage.Event)
		field, reason string
	}{
		{func(e *usage.Event) { e.Quantity = 900 }, "quantity", "quantity: breaks the database's rule eco_api_usage_quantity_check"},
		{func(e *usage.Event) { e.LatencyMS = 13 }, "", "a value of the event breaks the database's rule odd_rule"},
		{func(e *usage.Event) { e.StatusCode = 70000 }, "status_code", "status_code: is out of the range the database stores"}, // smallint
		{func(e *usage.Event) { e.LatencyMS = 1 << 40 }, "latency_ms", "latency_ms: is out of the range the database stores"},  // integer
	}
	for _, tt := range tests {
		e := testEvent(uuid.NewString(), time.Now().UTC(), 200)
		tt.edit(&e)
		_, err := s.RecordBatch(ctx, time.Now(), []usage.Event{testEvent(e.UserID, time.Now().UTC(), 200), e}, nil)
		if usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != tt.field || usage.ErrorMessage(err) != tt.reason {
			t.Errorf("RecordBatch = %q (code %s, field %q); want %q naming %q", usage.ErrorMessage(err), usage.ErrorCode(err), usage.ErrorField(err), tt.reason, tt.field)
		}
		if msg := usage.ErrorMessage(err); strings.Contains(msg, "SQLSTATE") || strings.Contains(msg, "violates") {
			t.Errorf("reason %q carries the driver's words", msg)
		}
	}
	for _, q := range []string{`SELECT count(*) FROM eco_api_usage`, `SELECT count(*) FROM eco_event_keys`, `SELECT count(*) FROM eco_usage_counters`} {
		if got := pgtest.Count(t, db, q); got != 0 {
			t.Errorf("%s = %d after refused batches; want 0", q, got)
		}
	}
}

// TestEventStoreDroppedMonthStaysDropped: an event of a month retention
// dropped is refused naming occurred_at, and the month is not created
// again.
func TestEventStoreDroppedMonthStaysDropped(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	old := time.Now().UTC().AddDate(0, -3, 0)
	month := time.Date(old.Year(), old.Month(), 1, 0, 0, 0, 0, time.UTC)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_usage_dropped_months (month, dropped_at) VALUES ($1, now())`, month); err != nil {
		t.Fatal(err)
	}
	_, err := s.RecordBatch(ctx, time.Now(), []usage.Event{testEvent(uuid.NewString(), old, 200)}, nil)
	if usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != "occurred_at" || !strings.Contains(usage.ErrorMessage(err), "no longer kept") {
		t.Errorf("RecordBatch into a dropped month = %v; want CodeInvalid naming occurred_at", err)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM pg_class WHERE relname = $1`, "eco_api_usage_p"+old.Format("200601")); got != 0 {
		t.Error("the dropped month was created again")
	}
}

// TestRollupKeyGenerations: the aggregate job creates the current and the
// next generation and drops those no batch reads any more.
func TestRollupKeyGenerations(t *testing.T) {
	now := time.Now().UTC()
	db := newRollupDB(t, now)
	s := postgres.NewRollupStore(db)
	ctx := context.Background()
	gen := usage.KeyGeneration(now)
	if _, err := s.EnsureKeyGenerations(ctx, []int{gen - 3, gen - 2, gen - 1}); err != nil {
		t.Fatal(err)
	}
	run := mustRun(t, newJob(t, s, now), rollup.Options{})
	oldest := usage.OldestKeyGeneration(now)
	var want []string
	for g := gen - 3; g < oldest; g++ {
		want = append(want, "eco_event_keys_g"+strconv.Itoa(g))
	}
	if !slices.Equal(run.KeyGenerationsDropped, want) {
		t.Errorf("dropped %v; want %v", run.KeyGenerationsDropped, want)
	}
	for g := oldest; g <= gen+1; g++ {
		if !partitionExists(t, db, "eco_event_keys_g"+strconv.Itoa(g)) {
			t.Errorf("generation %d missing after the run", g)
		}
	}
}
