package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/postgres"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/usage"
)

var testNow = time.Date(2031, 3, 20, 10, 5, 0, 0, time.UTC)

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestParseInput(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      *usage.DayRange
		wantField string // "" and wantErr: a non-field CodeInvalid
		wantErr   bool
	}{
		{name: "empty", in: ``},
		{name: "null", in: `null`},
		{name: "empty object", in: `{}`},
		{name: "blank range", in: `{"from":"","to":""}`},
		{name: "backfill", in: `{"from":"2031-03-01","to":"2031-03-19"}`, want: &usage.DayRange{From: date("2031-03-01"), To: date("2031-03-19")}},
		{name: "one day", in: ` {"from":"2031-03-20","to":"2031-03-20"} `, want: &usage.DayRange{From: date("2031-03-20"), To: date("2031-03-20")}},
		{name: "from only", in: `{"from":"2031-03-01"}`, wantErr: true, wantField: "to"},
		{name: "to only", in: `{"to":"2031-03-01"}`, wantErr: true, wantField: "from"},
		{name: "bad date", in: `{"from":"2031-3-1","to":"2031-03-02"}`, wantErr: true, wantField: "from"},
		{name: "timestamp", in: `{"from":"2031-03-01","to":"2031-03-02T00:00:00Z"}`, wantErr: true, wantField: "to"},
		{name: "reversed", in: `{"from":"2031-03-02","to":"2031-03-01"}`, wantErr: true, wantField: "to"},
		{name: "too long", in: `{"from":"2029-01-01","to":"2031-03-01"}`, wantErr: true, wantField: "to"},
		{name: "future", in: `{"from":"2031-03-01","to":"2031-03-21"}`, wantErr: true, wantField: "to"},
		{name: "unknown field", in: `{"form":"2031-03-01","to":"2031-03-02"}`, wantErr: true},
		{name: "not an object", in: `"2031-03-01"`, wantErr: true},
		{name: "number", in: `{"from":20310301,"to":"2031-03-02"}`, wantErr: true},
		{name: "trailing data", in: `{} {}`, wantErr: true},
		{name: "garbage", in: `{`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInput(json.RawMessage(tt.in), testNow)
			if tt.wantErr {
				if usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != tt.wantField {
					t.Fatalf("ParseInput(%s) error = %v (field %q); want %s on field %q", tt.in, err, usage.ErrorField(err), usage.CodeInvalid, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseInput(%s): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseInput(%s) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// rollupFunc is a usage.Rollup made of a function.
type rollupFunc func(ctx context.Context, opts usage.RollupOptions) (*usage.RollupRun, error)

func (f rollupFunc) RunRollup(ctx context.Context, opts usage.RollupOptions) (*usage.RollupRun, error) {
	return f(ctx, opts)
}

func newHandler(r usage.Rollup) *Handler {
	return &Handler{
		Rollup:        r,
		Logger:        slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Now:           func() time.Time { return testNow },
		RetentionDays: 30,
		Workers:       2,
	}
}

func TestHandle(t *testing.T) {
	t.Run("normal run", func(t *testing.T) {
		var got usage.RollupOptions
		h := newHandler(rollupFunc(func(_ context.Context, o usage.RollupOptions) (*usage.RollupRun, error) {
			got = o
			return &usage.RollupRun{RunID: 7, Days: []time.Time{date("2031-03-19")}, RowsWritten: 12,
				StillDirty: []time.Time{date("2031-03-19")}, PartitionsDropped: []string{"eco_api_usage_p203011"}}, nil
		}))
		out, err := h.Handle(context.Background(), json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(usage.RollupOptions{RetentionDays: 30, Workers: 2}, got); diff != "" {
			t.Errorf("options (-want +got):\n%s", diff)
		}
		want := &Output{RunID: 7, DaysRecomputed: 1, RowsWritten: 12, StillDirty: []string{"2031-03-19"}, PartitionsDropped: []string{"eco_api_usage_p203011"}}
		if diff := cmp.Diff(want, out); diff != "" {
			t.Errorf("output (-want +got):\n%s", diff)
		}
	})
	t.Run("backfill", func(t *testing.T) {
		var got *usage.DayRange
		h := newHandler(rollupFunc(func(_ context.Context, o usage.RollupOptions) (*usage.RollupRun, error) {
			got = o.Backfill
			return &usage.RollupRun{}, nil
		}))
		if _, err := h.Handle(context.Background(), json.RawMessage(`{"from":"2031-03-01","to":"2031-03-02"}`)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&usage.DayRange{From: date("2031-03-01"), To: date("2031-03-02")}, got); diff != "" {
			t.Errorf("backfill (-want +got):\n%s", diff)
		}
	})
	t.Run("bad input fails without running", func(t *testing.T) {
		h := newHandler(rollupFunc(func(context.Context, usage.RollupOptions) (*usage.RollupRun, error) {
			t.Fatal("ran on bad input")
			return nil, nil
		}))
		_, err := h.Handle(context.Background(), json.RawMessage(`{"from":"yesterday"}`))
		if usage.ErrorCode(err) != usage.CodeInvalid {
			t.Errorf("Handle(bad) = %v; want %s", err, usage.CodeInvalid)
		}
	})
	t.Run("skipped is a success", func(t *testing.T) {
		h := newHandler(rollupFunc(func(context.Context, usage.RollupOptions) (*usage.RollupRun, error) {
			return &usage.RollupRun{RunID: 3, Skipped: true}, nil
		}))
		out, err := h.Handle(context.Background(), nil)
		if err != nil || !out.Skipped {
			t.Errorf("Handle = %+v, %v; want skipped, nil", out, err)
		}
	})
	t.Run("store failure fails the invocation", func(t *testing.T) {
		cause := usage.Errorf(usage.CodeUnavailable, "database unavailable")
		h := newHandler(rollupFunc(func(context.Context, usage.RollupOptions) (*usage.RollupRun, error) {
			return &usage.RollupRun{RunID: 4}, cause
		}))
		_, err := h.Handle(context.Background(), nil)
		if !errors.Is(err, cause) {
			t.Errorf("Handle = %v; want %v", err, cause)
		}
	})
}

// TestHandle_Postgres runs the handler over the real store: a normal run,
// then a backfill, and two invocations at once.
func TestHandle_Postgres(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	db.Now = func() time.Time { return testNow }
	store := postgres.NewRollupStore(db)
	if _, err := store.EnsurePartitions(ctx, testNow.AddDate(0, -2, 0), 5); err != nil {
		t.Fatal(err)
	}
	// Two raw events on the 18th, one dirty, as left by the record path.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO eco_api_usage (event_id, user_id, endpoint, method, status_code, latency_ms,
		request_bytes, response_bytes, quantity, occurred_at) VALUES
		('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222', 'GET /v1/x', 'GET', 200, 10, 1, 2, 1, '2031-03-18 01:00Z'),
		('11111111-1111-4111-8111-111111111112', '22222222-2222-4222-8222-222222222222', 'GET /v1/x', 'GET', 500, 30, 1, 2, 2, '2031-03-18 02:00Z');
		INSERT INTO eco_usage_dirty_days (day) VALUES ('2031-03-18')`); err != nil {
		t.Fatal(err)
	}
	h := newHandler(&usage.RollupJob{Store: store, Now: func() time.Time { return testNow }})
	out, err := h.Handle(ctx, json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if out.DaysRecomputed != 1 || out.RowsWritten != 1 {
		t.Errorf("first run = %+v; want 1 day, 1 row", out)
	}
	var calls, e5, p50, p95 int64
	if err := db.Pool.QueryRow(ctx, `SELECT calls, errors_5xx, latency_p50_ms, latency_p95_ms FROM eco_usage_daily WHERE day = '2031-03-18'`).
		Scan(&calls, &e5, &p50, &p95); err != nil {
		t.Fatal(err)
	}
	if calls != 3 || e5 != 2 || p50 != 10 || p95 != 30 {
		t.Errorf("rollup = calls %d, 5xx %d, p50 %d, p95 %d; want 3, 2, 10, 30", calls, e5, p50, p95)
	}

	out, err = h.Handle(ctx, json.RawMessage(`{"from":"2031-03-17","to":"2031-03-19"}`))
	if err != nil || out.DaysRecomputed != 3 {
		t.Errorf("backfill = %+v, %v; want 3 days", out, err)
	}

	var runs int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM eco_job_runs WHERE job = 'aggregate' AND outcome = 'succeeded'`).Scan(&runs); err != nil || runs != 2 {
		t.Errorf("succeeded job runs = %d, %v; want 2", runs, err)
	}
}
