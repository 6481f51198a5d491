package record_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/record"
	"github.com/nexus/usage/shared/usage"
)

var recordNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// storeSim is a mock.EventStore that behaves like the database: a batch
// fails whole when it holds a poisoned event (refuse, by event id) or
// when fail says so, and otherwise stores its new events (by id) and its
// rejections (by message and position) exactly once.
type storeSim struct {
	stored   map[string]bool
	rejected map[string]record.Rejection
	refuse   map[string]error
	fail     func(events []usage.Event) error
	calls    int
}

func newStoreSim() *storeSim {
	return &storeSim{stored: map[string]bool{}, rejected: map[string]record.Rejection{}, refuse: map[string]error{}}
}

func (s *storeSim) store() *mock.EventStore {
	return &mock.EventStore{RecordBatchFn: func(_ context.Context, _ time.Time, events []usage.Event, rejected []record.Rejection) (int64, error) {
		s.calls++
		if s.fail != nil {
			if err := s.fail(events); err != nil {
				return 0, err
			}
		}
		for _, e := range events {
			if err := s.refuse[e.EventID]; err != nil {
				return 0, err
			}
		}
		var n int64
		for _, e := range events {
			if !s.stored[e.EventID] {
				s.stored[e.EventID] = true
				n++
			}
		}
		for _, r := range rejected {
			s.rejected[fmt.Sprintf("%s/%d", r.MessageID, r.Position)] = r
		}
		return n, nil
	}}
}

func eventJSON(i int) string {
	return fmt.Sprintf(`{"event_id":"0195f3a0-0000-7000-8000-%012d","user_id":"6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5","endpoint":"GET /v1/games/{id}","method":"GET","status_code":200,"latency_ms":%d,"occurred_at":"2026-03-10T11:59:00Z"}`, i, i)
}

func eventID(i int) string { return fmt.Sprintf("0195f3a0-0000-7000-8000-%012d", i) }

// messages returns n messages of per events each, event ids numbered from 1.
func messages(n, per int) []record.Message {
	var out []record.Message
	for m := range n {
		var evs []string
		for j := range per {
			evs = append(evs, eventJSON(m*per+j+1))
		}
		out = append(out, record.Message{ID: fmt.Sprintf("m%d", m), Body: []byte("[" + strings.Join(evs, ",") + "]")})
	}
	return out
}

// simRecorder returns a Recorder over s at recordNow.
func simRecorder(t *testing.T, s *storeSim) *record.Recorder {
	t.Helper()
	return recorderAt(t, s.store(), recordNow)
}

// TestNew refuses a Config without a store or a clock, or with a negative
// backfill window (CodeInvalid, saying which), and fills the window in when
// it is zero: events are then judged by usage.DefaultBackfillWindow (35
// days), else by the window given.
func TestNew(t *testing.T) {
	clock := func() time.Time { return recordNow }
	store := newStoreSim().store()
	for _, tt := range []struct {
		name string
		c    record.Config
		want string // in the error; "" for a Recorder
	}{
		{"defaults", record.Config{Store: store, Now: clock}, ""},
		{"no store", record.Config{Now: clock}, "a store is required"},
		{"no clock", record.Config{Store: store}, "a clock is required"},
		{"negative backfill", record.Config{Store: store, Now: clock, Backfill: -time.Hour}, "backfill window must be 0 (the default, 840h0m0s) or more, not -1h0m0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := record.New(tt.c)
			if tt.want == "" {
				if err != nil || r == nil || r.Config().Backfill != usage.DefaultBackfillWindow {
					t.Fatalf("New = %v, %v; want a Recorder with the default backfill window", r, err)
				}
				return
			}
			if r != nil || usage.ErrorCode(err) != usage.CodeInvalid || !strings.Contains(usage.ErrorMessage(err), tt.want) {
				t.Errorf("New = %v, %v; want a CodeInvalid error saying %q", r, err, tt.want)
			}
		})
	}
	const day = 24 * time.Hour
	for i, tt := range []struct {
		backfill, age time.Duration
		stored        bool
	}{
		{0, 34 * day, true}, {0, 36 * day, false}, {day, time.Hour, true}, {day, 2 * day, false},
	} {
		t.Run(fmt.Sprintf("backfill %s, event %s old", tt.backfill, tt.age), func(t *testing.T) {
			s := newStoreSim()
			r, err := record.New(record.Config{Store: s.store(), Now: clock, Backfill: tt.backfill})
			if err != nil {
				t.Fatal(err)
			}
			occurred := recordNow.Add(-tt.age).Format(time.RFC3339)
			body := strings.Replace(eventJSON(i+1), `"2026-03-10T11:59:00Z"`, `"`+occurred+`"`, 1)
			if _, err := r.Record(context.Background(), []record.Message{{ID: "m", Body: []byte(body)}}); err != nil {
				t.Fatal(err)
			}
			if got := s.stored[eventID(i+1)]; got != tt.stored {
				t.Errorf("event %s old stored = %v; want %v", tt.age, got, tt.stored)
			}
		})
	}
}

var refused = &usage.Error{Code: usage.CodeInvalid, Field: "latency_ms", Message: "latency_ms: is out of the range the database stores"}

// TestRecorderSplitsOutRefusedEvents: a batch the store refuses for one
// event's data is split until that event stands alone; it is quarantined
// with the store's reason, its message and position, and everything else
// is stored. A redelivery stores nothing new and quarantines nothing twice.
func TestRecorderSplitsOutRefusedEvents(t *testing.T) {
	s := newStoreSim()
	s.refuse[eventID(437)] = refused
	r := simRecorder(t, s)
	msgs := messages(100, 10) // event 437 is message 43's position 6

	res, err := r.Record(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 1000 || res.Inserted != 999 || res.Duplicates != 0 || res.Refused != 1 || len(res.Rejected) != 1 {
		t.Fatalf("Record = %+v; want 999 of 1000 inserted, one refused", res)
	}
	got := res.Rejected[0]
	if got.MessageID != "m43" || got.Position != 6 || got.EventID != eventID(437) || got.Field != "latency_ms" ||
		got.Reason != refused.Message || got.Source != record.RejectionSourceRecord {
		t.Errorf("rejection = %+v; want m43 position 6, the store's field and reason", got)
	}
	var body usage.Event
	if err := json.Unmarshal([]byte(got.Body), &body); err != nil || body.EventID != eventID(437) {
		t.Errorf("rejection body %q is not the event's JSON: %v", got.Body, err)
	}
	// The first write, two per level of halving (1,000 → 1 in 10 levels),
	// and the quarantine.
	if res.Writes != s.calls || res.Writes > 1+2*10+1 {
		t.Errorf("%d writes (%d store calls); want at most 22", res.Writes, s.calls)
	}
	if len(s.stored) != 999 || s.stored[eventID(437)] || len(s.rejected) != 1 {
		t.Errorf("store holds %d events (437: %v) and %d rejections; want 999 and 1", len(s.stored), s.stored[eventID(437)], len(s.rejected))
	}

	res, err = r.Record(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 0 || res.Duplicates != 999 || res.Refused != 1 || len(s.stored) != 999 || len(s.rejected) != 1 {
		t.Errorf("redelivery: %+v, store %d events, %d rejections; want nothing new", res, len(s.stored), len(s.rejected))
	}
}

// TestRecorderSplitsOutSeveralEvents: refused events anywhere in the batch,
// next to each other or apart, and next to invalid input quarantined on
// decoding, each keep their own position.
func TestRecorderSplitsOutSeveralEvents(t *testing.T) {
	s := newStoreSim()
	for _, i := range []int{1, 2, 50, 99, 100} {
		s.refuse[eventID(i)] = refused
	}
	msgs := messages(10, 10)
	msgs = append(msgs, record.Message{ID: "bad", Body: []byte("[" + eventJSON(101) + `,{"v":7}]`)}, record.Message{ID: "junk", Body: []byte("hello")})
	res, err := simRecorder(t, s).Record(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range res.Rejected {
		keys = append(keys, fmt.Sprintf("%s/%d %s", r.MessageID, r.Position, r.Field))
	}
	slices.Sort(keys)
	want := []string{"bad/1 v", "junk/0 ", "m0/0 latency_ms", "m0/1 latency_ms", "m4/9 latency_ms", "m9/8 latency_ms", "m9/9 latency_ms"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("quarantine (-want +got):\n%s", diff)
	}
	if res.Inserted != 96 || res.Refused != 5 || len(s.rejected) != 7 {
		t.Errorf("Record = %+v with %d rejections stored; want 96 inserted, 5 refused, 7 stored", res, len(s.rejected))
	}
}

// TestRecorderInfrastructureFailures: CodeUnavailable sends the batch back
// whole, at the first write or in the middle of a split, and so does an
// error the store cannot attribute when both halves of a part fail with
// it (every write fails alike: not one event's fault) or when the batch is
// a single event.
func TestRecorderInfrastructureFailures(t *testing.T) {
	unavailable := usage.Errorf(usage.CodeUnavailable, "database unavailable")
	unknown := fmt.Errorf("something broke")
	tests := []struct {
		name     string
		msgs     []record.Message
		fail     func(n *int) func([]usage.Event) error
		maxCalls int
	}{
		{"unavailable", messages(10, 10), func(*int) func([]usage.Event) error {
			return func([]usage.Event) error { return unavailable }
		}, 1},
		{"unavailable while splitting", messages(10, 10), func(n *int) func([]usage.Event) error {
			return func(evs []usage.Event) error {
				*n++
				if *n == 1 {
					return refused
				}
				return unavailable
			}
		}, 2},
		{"unattributed everywhere", messages(10, 10), func(*int) func([]usage.Event) error {
			return func([]usage.Event) error { return unknown }
		}, 3},
		{"unattributed single event", messages(1, 1), func(*int) func([]usage.Event) error {
			return func([]usage.Event) error { return unknown }
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStoreSim()
			var n int
			s.fail = tt.fail(&n)
			res, err := simRecorder(t, s).Record(context.Background(), tt.msgs)
			if err == nil || res != nil {
				t.Fatalf("Record = %+v, %v; want the batch failed", res, err)
			}
			if s.calls > tt.maxCalls || len(s.rejected) != 0 {
				t.Errorf("%d store calls, %d rejections stored; want at most %d calls and no quarantine", s.calls, len(s.rejected), tt.maxCalls)
			}
		})
	}
}

// TestRecorderUnattributedEventSplitOut: an error of no data code that
// one event causes (the rest of the batch stores fine) is split out like a
// refusal, quarantined with a reason of our own.
func TestRecorderUnattributedEventSplitOut(t *testing.T) {
	s := newStoreSim()
	s.refuse[eventID(7)] = fmt.Errorf("trigger raised P0001")
	res, err := simRecorder(t, s).Record(context.Background(), messages(4, 4))
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 15 || res.Refused != 1 || res.Rejected[0].Field != "" || strings.Contains(res.Rejected[0].Reason, "P0001") ||
		res.Rejected[0].MessageID != "m1" || res.Rejected[0].Position != 2 {
		t.Errorf("Record = %+v; want event 7 (m1 position 2) quarantined in our words", res)
	}
}

// TestRecorderRecordsAtItsClock: one reading of the Recorder's clock
// decides a batch: its events are judged at it, and every store call of
// the batch, the halves of a split and the quarantine's included, records
// at it.
func TestRecorderRecordsAtItsClock(t *testing.T) {
	s := newStoreSim()
	s.refuse[eventID(7)] = refused
	store := s.store()
	sim := store.RecordBatchFn
	var at []time.Time
	store.RecordBatchFn = func(ctx context.Context, now time.Time, events []usage.Event, rejected []record.Rejection) (int64, error) {
		at = append(at, now)
		return sim(ctx, now, events, rejected)
	}
	reads := 0
	clock := func() time.Time { // an hour later at each reading
		reads++
		return recordNow.Add(time.Duration(reads-1) * time.Hour)
	}
	res, err := newRecorder(t, store, clock).Record(context.Background(), messages(4, 4))
	if err != nil {
		t.Fatal(err)
	}
	if reads != 1 || res.Refused != 1 || len(at) != res.Writes || len(at) < 3 {
		t.Fatalf("%d readings of the clock, %d store calls, Record = %+v; want one reading, a split", reads, len(at), res)
	}
	for i, a := range at {
		if !a.Equal(recordNow) {
			t.Errorf("store call %d recorded at %s; want the clock's one reading, %s", i, a, recordNow)
		}
	}
}

// TestRecorderDuplicates: events the store had already are counted as
// duplicates, and so are ids repeated in the batch.
func TestRecorderDuplicates(t *testing.T) {
	s := newStoreSim()
	s.stored[eventID(1)] = true
	msgs := append(messages(2, 3), record.Message{ID: "again", Body: []byte(eventJSON(2))})
	res, err := simRecorder(t, s).Record(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 7 || res.Inserted != 5 || res.Duplicates != 2 || res.Writes != 1 {
		t.Errorf("Record = %+v; want 7 events, 5 inserted, 2 duplicates, one write", res)
	}
}

// TestRecorderJudgesAgeAtAcceptance: an event accepted inside the backfill
// window and recorded after an outage is recorded, not quarantined as too
// old: its age is judged at its message's acceptance. An acceptance
// later than the recorder's clock is its clock; one older than
// MaxQueueDelay counts as MaxQueueDelay ago; without one, the clock.
func TestRecorderJudgesAgeAtAcceptance(t *testing.T) {
	window := 35 * 24 * time.Hour
	at := func(occurred time.Time, id int) []byte {
		return []byte(strings.Replace(eventJSON(id), `"2026-03-10T11:59:00Z"`, `"`+occurred.Format(time.RFC3339Nano)+`"`, 1))
	}
	edge := recordNow.Add(-window + time.Minute) // a minute inside the window when accepted at recordNow
	tests := []struct {
		name       string
		recordedAt time.Time
		acceptedAt time.Time
		occurred   time.Time
		stored     bool
	}{
		{"accepted at the edge, recorded 6 h later", recordNow.Add(6 * time.Hour), recordNow, edge, true},
		{"accepted at the edge, recorded 3 days later", recordNow.Add(72 * time.Hour), recordNow, edge, true},
		{"no acceptance time, recorded 6 h later", recordNow.Add(6 * time.Hour), time.Time{}, edge, false},
		{"accepted in the recorder's future", recordNow, recordNow.Add(time.Hour), recordNow.Add(-window - 30*time.Minute), false},
		{"accepted more than MaxQueueDelay before", recordNow.Add(record.MaxQueueDelay + time.Hour), recordNow, edge, false},
		{"accepted MaxQueueDelay before, occurred inside the window then", recordNow.Add(record.MaxQueueDelay + time.Hour),
			recordNow, recordNow.Add(time.Hour - window + time.Minute), true},
		{"occurred ahead of the acceptance by more than the skew", recordNow.Add(time.Hour), recordNow,
			recordNow.Add(usage.MaxFutureSkew + time.Minute), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStoreSim()
			r, err := record.New(record.Config{Store: s.store(), Now: func() time.Time { return tt.recordedAt }, Backfill: window})
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Record(context.Background(), []record.Message{{ID: "m", Body: at(tt.occurred, i+1), AcceptedAt: tt.acceptedAt}})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.stored[eventID(i+1)]; got != tt.stored {
				t.Errorf("stored = %v (rejected %+v); want %v", got, res.Rejected, tt.stored)
			}
			if !tt.stored && (len(res.Rejected) != 1 || res.Rejected[0].Field != "occurred_at") {
				t.Errorf("rejected %+v; want the event quarantined naming occurred_at", res.Rejected)
			}
		})
	}
}

// TestMaxQueueDelayInsideMargin: an event may be recorded up to the
// backfill window plus MaxQueueDelay after it occurred (and recorded
// first up to MaxFutureSkew before); what outlasts the window by
// BackfillMargin (event id memory, raw retention) must cover that, with
// the key store's overlap to spare.
func TestMaxQueueDelayInsideMargin(t *testing.T) {
	if need := record.MaxQueueDelay + usage.MaxFutureSkew + usage.KeyGenerationOverlap; need >= usage.BackfillMargin {
		t.Errorf("MaxQueueDelay %s + skew %s + overlap %s = %s; must stay under BackfillMargin %s", record.MaxQueueDelay,
			usage.MaxFutureSkew, usage.KeyGenerationOverlap, need, usage.BackfillMargin)
	}
}

func TestRedelivery(t *testing.T) {
	r := record.DefaultRedelivery
	var got []time.Duration
	for n := 1; n <= 7; n++ {
		got = append(got, r.Delay(n))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute, 15 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v; want %v", got, want)
	}
	if got := r.Outlasts(30); got != 6*time.Hour+30*time.Minute {
		t.Errorf("Outlasts(30) = %s; want 6h30m", got)
	}
	// The schedule compressed 60 times, as the soak runs it: whole seconds.
	fast := record.Redelivery{Base: time.Second, Max: 15 * time.Second}
	if d := fast.Delay(1); d != time.Second {
		t.Errorf("Delay(1) at 1s = %s", d)
	}
	if d := (record.Redelivery{Base: 1500 * time.Millisecond, Max: time.Hour}).Delay(1); d != 2*time.Second {
		t.Errorf("Delay(1) at 1.5s = %s; want 2s (SQS counts whole seconds)", d)
	}
	if d := (record.Redelivery{Base: time.Hour, Max: 48 * time.Hour}).Delay(10); d != record.MaxVisibilityTimeout {
		t.Errorf("Delay past SQS's longest visibility = %s; want 12h", d)
	}
}
