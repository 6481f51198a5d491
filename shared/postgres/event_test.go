package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// testEvent returns a valid event of user at t.
func testEvent(user string, t time.Time, status int) usage.Event {
	id, _ := uuid.NewV7()
	return usage.Event{Version: 1, EventID: id.String(), UserID: user, Endpoint: "GET /v1/games/{id}", Method: "GET",
		StatusCode: status, LatencyMS: 5, RequestBytes: 10, ResponseBytes: 100, Quantity: 1, OccurredAt: t}
}

func TestEventStoreDedupe(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	now := time.Now().UTC()
	user := uuid.NewString()
	yesterday := now.Add(-24 * time.Hour)

	a := testEvent(user, now, 200)
	b := testEvent(user, now, 404)
	c := testEvent(user, yesterday, 503)
	c.Quantity = 3
	// a twice inside the batch.
	n, err := s.RecordBatch(ctx, now, []usage.Event{a, b, a, c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("first batch inserted %d; want 3", n)
	}
	// The whole batch again plus one new event: only the new one counts.
	d := testEvent(user, now, 200)
	n, err = s.RecordBatch(ctx, now, []usage.Event{c, b, a, d, d}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("second batch inserted %d; want 1", n)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_api_usage`); got != 4 {
		t.Errorf("stored %d rows; want 4", got)
	}
	want := map[string]pgtest.Counter{
		user + " " + now.Format(time.DateOnly):       {Calls: 3, E4: 1, Req: 30, Resp: 300},
		user + " " + yesterday.Format(time.DateOnly): {Calls: 3, E5: 3, Req: 10, Resp: 100}, // errors count quantity
	}
	got := pgtest.Counters(t, db)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counters = %v; want %v", got, want)
	}
	// The user's two days are dirty, for that user alone.
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_usage_dirty_user_days WHERE user_id = $1 AND day = ANY($2::date[])`,
		user, []string{now.Format(time.DateOnly), yesterday.Format(time.DateOnly)}); got != 2 {
		t.Errorf("dirty days of the user = %d; want 2", got)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_usage_dirty_days`); got != 0 {
		t.Errorf("%d days dirty as a whole; want none: the record path marks users' days", got)
	}
}

func TestEventStoreQuarantine(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	now := time.Now().UTC()
	e := testEvent(uuid.NewString(), now, 200)
	rej := []record.Rejection{
		{MessageID: "m1", EventID: "x", Field: "method", Reason: "method: must be an HTTP method", Body: `{"method":"X"}`},
		{MessageID: "m2", Reason: "invalid JSON", Body: "bad\x00body\xff"},
	}
	n, err := s.RecordBatch(ctx, now, []usage.Event{e}, rej)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("inserted %d; want 1", n)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events WHERE source = 'record' AND message_id = 'm1' AND field = 'method' AND body = '{"method":"X"}'`); got != 1 {
		t.Errorf("quarantined m1 rows = %d; want 1", got)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events WHERE message_id = 'm2'`); got != 1 {
		t.Errorf("quarantined m2 rows = %d; want 1", got)
	}
	// Rejections alone are written too.
	if _, err := s.RecordBatch(ctx, now, nil, []record.Rejection{{MessageID: "m3", Reason: "r", Body: "b"}}); err != nil {
		t.Fatal(err)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events`); got != 3 {
		t.Errorf("quarantined rows = %d; want 3", got)
	}
}

// TestEventStoreRedeliveredRejectionsStoredOnce: a rejection is keyed by
// its source, message and position in the message, so a redelivered batch
// quarantines nothing twice, while two events of one message are two
// rejections. Input without a message id has no key.
func TestEventStoreRedeliveredRejectionsStoredOnce(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	rej := []record.Rejection{
		{MessageID: "m1", Position: 0, EventID: "a", Field: "method", Reason: "method: must be an HTTP method", Body: `{"method":"X"}`},
		{MessageID: "m1", Position: 3, EventID: "b", Field: "quantity", Reason: "quantity: must be between 1 and 1000000", Body: `{}`},
		{MessageID: "m2", Reason: "invalid JSON", Body: "hello"},
		{Reason: "no message", Body: "x"},
	}
	for range 3 {
		if _, err := s.RecordBatch(ctx, time.Now(), []usage.Event{testEvent(uuid.NewString(), time.Now().UTC(), 200)}, rej); err != nil {
			t.Fatal(err)
		}
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events WHERE message_id <> ''`); got != 3 {
		t.Errorf("quarantined rows of messages after 3 deliveries = %d; want 3", got)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events WHERE message_id = 'm1' AND position = 3 AND field = 'quantity'`); got != 1 {
		t.Errorf("m1's event at position 3 quarantined %d times; want once", got)
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_rejected_events WHERE message_id = ''`); got != 3 {
		t.Errorf("rejections without a message id = %d; want one per delivery, 3", got)
	}
}

func TestEventStoreFailureBeforeCommitWritesNothing(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	fault := pgtest.NewCommitFault(t, db)
	fault.Arm(t, true)
	events := []usage.Event{testEvent(uuid.NewString(), time.Now().UTC(), 200), testEvent(uuid.NewString(), time.Now().UTC(), 500)}
	rej := []record.Rejection{{MessageID: "m", Reason: "r", Body: "b"}}
	if _, err := s.RecordBatch(ctx, time.Now(), events, rej); err == nil || usage.ErrorCode(err) == usage.CodeInvalid {
		t.Fatalf("RecordBatch error = %v; want a failure that is not the data's", err)
	}
	for _, q := range []string{`SELECT count(*) FROM eco_api_usage`, `SELECT count(*) FROM eco_usage_counters`,
		`SELECT count(*) FROM eco_usage_dirty_days`, `SELECT count(*) FROM eco_usage_dirty_user_days`, `SELECT count(*) FROM eco_rejected_events`} {
		if got := pgtest.Count(t, db, q); got != 0 {
			t.Errorf("%s = %d after a rolled-back batch; want 0", q, got)
		}
	}
	fault.Arm(t, false)
	n, err := s.RecordBatch(ctx, time.Now(), events, rej)
	if err != nil || n != 2 {
		t.Fatalf("retry = %d, %v; want 2 events", n, err)
	}
}

func TestEventStoreCreatesMissingPartition(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	// The migration creates partitions from last month on; this one is older.
	old := time.Now().UTC().AddDate(0, -3, 0)
	e := testEvent(uuid.NewString(), old, 200)
	n, err := s.RecordBatch(ctx, time.Now(), []usage.Event{e, testEvent(e.UserID, time.Now().UTC(), 200)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("inserted %d; want 2", n)
	}
	name := "eco_api_usage_p" + old.Format("200601")
	if got := pgtest.Count(t, db, `SELECT count(*) FROM pg_class WHERE relname = $1`, name); got != 1 {
		t.Errorf("partition %s not created", name)
	}
}

func TestEventStoreUnavailable(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.RecordBatch(ctx, time.Now(), []usage.Event{testEvent(uuid.NewString(), time.Now().UTC(), 200)}, nil)
	if code := usage.ErrorCode(err); code != usage.CodeUnavailable {
		t.Errorf("RecordBatch with a cancelled context: code %q (%v); want %q", code, err, usage.CodeUnavailable)
	}
}

// TestEventStoreConcurrentBatchesShareIDs: batches recorded at once by
// several writers, each sharing half its ids with the next writer's
// (concurrent redeliveries): a writer whose COPY of the keys meets an id
// another one holds waits for it and then writes its batch by the
// statement that dedupes. Every id is stored and counted once, and the
// users' days hold their marks.
func TestEventStoreConcurrentBatchesShareIDs(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.NewEventStore(db)
	ctx := context.Background()
	now := time.Now().UTC()
	users := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
	const writers, perBatch, rounds = 4, 400, 5
	var unique []usage.Event
	batches := make([][][]usage.Event, writers) // writer → round → batch
	for r := 0; r < rounds; r++ {
		// Writer w's batch: its own half, and the next writer's own half.
		own := make([][]usage.Event, writers)
		for w := range own {
			for i := 0; i < perBatch/2; i++ {
				e := testEvent(users[(w+i)%len(users)], now.Add(-time.Duration(i)*time.Minute), []int{200, 404, 500}[i%3])
				e.Quantity = int64(1 + i%4)
				own[w] = append(own[w], e)
			}
			unique = append(unique, own[w]...)
		}
		for w := range batches {
			batches[w] = append(batches[w], slices.Concat(own[w], own[(w+1)%writers]))
		}
	}
	var wg sync.WaitGroup
	inserted := make([]int64, writers)
	for w := range batches {
		wg.Go(func() {
			for _, b := range batches[w] {
				n, err := s.RecordBatch(ctx, now, b, nil)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				inserted[w] += n
			}
		})
	}
	wg.Wait()
	var total int64
	for _, n := range inserted {
		total += n
	}
	if total != int64(len(unique)) {
		t.Errorf("writers inserted %d events in all; want %d, each once", total, len(unique))
	}
	if got := pgtest.Count(t, db, `SELECT count(*) FROM eco_api_usage`); got != int64(len(unique)) {
		t.Errorf("%d raw rows; want %d", got, len(unique))
	}
	want := map[string]pgtest.Counter{}
	for _, e := range unique {
		k := e.UserID + " " + e.OccurredAt.UTC().Format(time.DateOnly)
		c := want[k]
		c.Calls += e.Quantity
		switch {
		case e.StatusCode >= 500:
			c.E5 += e.Quantity
		case e.StatusCode >= 400:
			c.E4 += e.Quantity
		}
		c.Req += e.RequestBytes
		c.Resp += e.ResponseBytes
		want[k] = c
	}
	if diff := cmp.Diff(want, pgtest.Counters(t, db)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if got := pgtest.Count(t, db, `SELECT count(DISTINCT (user_id, day)) FROM eco_usage_dirty_user_days`); got != int64(len(want)) {
		t.Errorf("%d users' days marked dirty; want %d", got, len(want))
	}
}
