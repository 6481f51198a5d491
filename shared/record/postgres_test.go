package record_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

// The tests of this file run the Recorder over PostgreSQL (skipped without
// it, failed under CI=true): what is stored, quarantined and counted.

// TestRecorderMixedBatch records the sample batch of the usage queue:
// valid events stored and counted, the invalid input quarantined naming
// its message and field.
func TestRecorderMixedBatch(t *testing.T) {
	db := pgtest.NewDB(t)
	r := recorderAt(t, postgres.NewEventStore(db), recordNow)
	msgs := mixedBatch(t)
	recordOK(t, r, msgs)
	// A redelivery of the whole batch changes nothing, the quarantine
	// included.
	recordOK(t, r, msgs)
	ctx := context.Background()
	var ids []string
	rows, err := db.Pool.Query(ctx, `SELECT event_id::text FROM eco_api_usage ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	wantIDs := []string{"0195f3a0-0000-7000-8000-000000000001", "0195f3a0-0000-7000-8000-000000000003", "0195f3a0-0000-7000-8000-000000000004"}
	if diff := cmp.Diff(wantIDs, ids); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}

	type quarantined struct{ MessageID, EventID, Field string }
	var got []quarantined
	rows, err = db.Pool.Query(ctx, `SELECT message_id, event_id, field, reason FROM eco_rejected_events ORDER BY rejected_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var q quarantined
		var reason string
		if err := rows.Scan(&q.MessageID, &q.EventID, &q.Field, &reason); err != nil {
			t.Fatal(err)
		}
		if q.Field != "" && !strings.Contains(reason, q.Field) {
			t.Errorf("reason %q does not name the field %q", reason, q.Field)
		}
		got = append(got, q)
	}
	want := []quarantined{
		{"m-valid-array", "0195f3a0-0000-7000-8000-000000000002", "method"},
		{"m-not-json", "", ""},
		{"m-unknown-field", "0195f3a0-0000-7000-8000-000000000005", "colour"},
		{"m-too-old", "0195f3a0-0000-7000-8000-000000000006", "occurred_at"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("quarantine (-want +got):\n%s", diff)
	}

	var counters []string
	rows, err = db.Pool.Query(ctx, `SELECT format('%s %s %s %s %s', user_id, day, calls, errors_4xx, errors_5xx) FROM eco_usage_counters ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		counters = append(counters, s)
	}
	wantCounters := []string{
		"0195f3a0-0000-7000-8000-0000000000bb 2026-03-10 1 1 0",
		"6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5 2026-03-09 2 0 2", // one 503 event of quantity 2
		"6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5 2026-03-10 1 0 0",
	}
	if diff := cmp.Diff(wantCounters, counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

// errInjected is an infrastructure failure: the batch goes back to the
// queue whole.
var errInjected = usage.Errorf(usage.CodeUnavailable, "injected database failure")

// TestRecorderRedeliveryUnderFailures delivers 10,000 events, 30 % of them
// duplicates, shuffled into more than 200 batches; about 15 % of the
// batch deliveries fail (before the write, at the commit after the write,
// or after the commit with the acknowledgement lost) and are
// redelivered until they succeed. The stored rows and the counters must
// equal exactly the unique events.
func TestRecorderRedeliveryUnderFailures(t *testing.T) {
	db := pgtest.NewDB(t)
	store := postgres.NewEventStore(db)
	fault := pgtest.NewCommitFault(t, db)
	rng := rand.New(rand.NewPCG(1, 2))
	var failures [3]int
	wrapped := &mock.EventStore{RecordBatchFn: func(ctx context.Context, now time.Time, events []usage.Event, rejected []record.Rejection) (int64, error) {
		switch r := rng.IntN(100); {
		case r < 5:
			failures[0]++
			return 0, errInjected
		case r < 10:
			// Counted only when it bites: a batch of duplicates alone
			// writes nothing and commits.
			fault.Arm(t, true)
			n, err := store.RecordBatch(ctx, now, events, rejected)
			fault.Arm(t, false)
			if err != nil {
				failures[1]++
			}
			return n, err
		case r < 15:
			failures[2]++
			if _, err := store.RecordBatch(ctx, now, events, rejected); err != nil {
				return 0, err
			}
			return 0, errInjected // committed, but the acknowledgement is lost
		}
		return store.RecordBatch(ctx, now, events, rejected)
	}}
	now := time.Now().UTC()
	r := recorderAt(t, wrapped, now)

	users := make([]string, 25)
	for i := range users {
		users[i] = uuid.NewString()
	}
	const total, unique = 10_000, 7_000
	uniq := make([]usage.Event, unique)
	for i := range uniq {
		id, _ := uuid.NewV7()
		uniq[i] = usage.Event{Version: 1, EventID: id.String(), UserID: users[rng.IntN(len(users))],
			Endpoint: "GET /v1/games/{id}", Method: "GET", StatusCode: []int{200, 201, 404, 429, 500}[rng.IntN(5)],
			LatencyMS: int64(rng.IntN(500)), RequestBytes: int64(rng.IntN(1000)), ResponseBytes: int64(rng.IntN(5000)),
			Quantity: int64(1 + rng.IntN(3)), OccurredAt: now.Add(-time.Duration(rng.Int64N(int64(72 * time.Hour))))}
	}
	all := append([]usage.Event(nil), uniq...)
	for range total - unique {
		all = append(all, uniq[rng.IntN(unique)])
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })

	// Messages of 1 to 9 events, batches of 1 to 9 messages.
	var queue []record.Message
	for i := 0; i < len(all); {
		n := min(1+rng.IntN(9), len(all)-i)
		body, _ := json.Marshal(all[i : i+n])
		queue = append(queue, record.Message{ID: fmt.Sprintf("m%d", len(queue)), Body: body})
		i += n
	}
	batches, failedBatches := 0, 0
	for len(queue) > 0 {
		n := min(1+rng.IntN(9), len(queue))
		batch := queue[:n]
		queue = queue[n:]
		batches++
		if _, err := r.Record(context.Background(), batch); err != nil {
			// The batch goes back to the queue whole: each message is
			// redelivered later, somewhere in the queue.
			failedBatches++
			for _, m := range batch {
				at := rng.IntN(len(queue) + 1)
				queue = append(queue[:at], append([]record.Message{m}, queue[at:]...)...)
			}
		}
	}
	t.Logf("%d batch deliveries, %d failed (before write %d, at commit %d, after commit %d)",
		batches, failedBatches, failures[0], failures[1], failures[2])
	if batches < 200 || failedBatches*10 < batches {
		t.Fatalf("%d batches with %d failed; want ≥ 200 with ≥ 10 %% failed", batches, failedBatches)
	}
	for i, n := range failures {
		if n == 0 {
			t.Fatalf("failure mode %d never injected", i)
		}
	}

	// The expectation, computed from the unique events.
	type key struct{ user, day string }
	type sums struct{ Calls, E4, E5, Req, Resp int64 }
	want := map[key]sums{}
	for _, e := range uniq {
		k := key{e.UserID, e.OccurredAt.UTC().Format(time.DateOnly)}
		s := want[k]
		s.Calls += e.Quantity
		if e.StatusCode >= 400 && e.StatusCode < 500 {
			s.E4 += e.Quantity
		}
		if e.StatusCode >= 500 {
			s.E5 += e.Quantity
		}
		s.Req += e.RequestBytes
		s.Resp += e.ResponseBytes
		want[k] = s
	}
	ctx := context.Background()
	got := map[key]sums{}
	rows, err := db.Pool.Query(ctx, `SELECT user_id::text, day::text, calls, errors_4xx, errors_5xx, request_bytes, response_bytes FROM eco_usage_counters`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k key
		var s sums
		if err := rows.Scan(&k.user, &k.day, &s.Calls, &s.E4, &s.E5, &s.Req, &s.Resp); err != nil {
			t.Fatal(err)
		}
		got[k] = s
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(key{})); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	// The raw rows: exactly the unique events, per user and day.
	rawWant := map[key]int64{}
	for _, e := range uniq {
		rawWant[key{e.UserID, e.OccurredAt.UTC().Format(time.DateOnly)}]++
	}
	rawGot := map[key]int64{}
	rows, err = db.Pool.Query(ctx, `SELECT user_id::text, (occurred_at AT TIME ZONE 'UTC')::date::text, count(*) FROM eco_api_usage GROUP BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k key
		var n int64
		if err := rows.Scan(&k.user, &k.day, &n); err != nil {
			t.Fatal(err)
		}
		rawGot[k] = n
	}
	if diff := cmp.Diff(rawWant, rawGot, cmp.AllowUnexported(key{})); diff != "" {
		t.Errorf("raw rows per user and day (-want +got):\n%s", diff)
	}
	// Every user's day with events is dirty for that user, and no other.
	dirtyWant := map[key]bool{}
	for k := range want {
		dirtyWant[k] = true
	}
	dirtyGot := map[key]bool{}
	rows, err = db.Pool.Query(ctx, `SELECT DISTINCT user_id::text, day::text FROM eco_usage_dirty_user_days`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.user, &k.day); err != nil {
			t.Fatal(err)
		}
		dirtyGot[k] = true
	}
	if diff := cmp.Diff(dirtyWant, dirtyGot, cmp.AllowUnexported(key{})); diff != "" {
		t.Errorf("users' dirty days (-want +got):\n%s", diff)
	}
}
