package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/rollup"
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
		wantMsg   string // when set, the error's whole message
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
		{name: "unknown field", in: `{"form":"2031-03-01","to":"2031-03-02"}`, wantErr: true, wantField: "form",
			wantMsg: `form: is not a field of this input; the input is {} or {"from":"YYYY-MM-DD","to":"YYYY-MM-DD"}`},
		{name: "not an object", in: `"2031-03-01"`, wantErr: true, wantField: "input"},
		{name: "number", in: `{"from":20310301,"to":"2031-03-02"}`, wantErr: true, wantField: "from",
			wantMsg: `from: must be a string; the input is {} or {"from":"YYYY-MM-DD","to":"YYYY-MM-DD"}`},
		{name: "trailing data", in: `{} {}`, wantErr: true, wantField: "input"},
		{name: "garbage", in: `{`, wantErr: true, wantField: "input",
			wantMsg: `input: invalid JSON at byte 1: it ends too early; the input is {} or {"from":"YYYY-MM-DD","to":"YYYY-MM-DD"}`},
		{name: "syntax", in: `{"from":x}`, wantErr: true, wantField: "input",
			wantMsg: `input: invalid JSON at byte 9; the input is {} or {"from":"YYYY-MM-DD","to":"YYYY-MM-DD"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInput(json.RawMessage(tt.in), testNow)
			if tt.wantErr {
				if usage.ErrorCode(err) != usage.CodeInvalid || usage.ErrorField(err) != tt.wantField {
					t.Fatalf("ParseInput(%s) error = %v (field %q); want %s on field %q", tt.in, err, usage.ErrorField(err), usage.CodeInvalid, tt.wantField)
				}
				if msg := usage.ErrorMessage(err); (tt.wantMsg != "" && msg != tt.wantMsg) || strings.Contains(msg, "json:") || strings.Contains(msg, "Go ") {
					t.Errorf("ParseInput(%s) message %q; want %q, in our words", tt.in, msg, tt.wantMsg)
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

// rollupFunc is a mock rollup running f.
func rollupFunc(f func(ctx context.Context, opts rollup.Options) (*rollup.Run, error)) *mock.Rollup {
	return &mock.Rollup{RunRollupFn: f}
}

func newHandler(r rollup.Runner) *Handler {
	return &Handler{
		Rollup: r,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Now:    func() time.Time { return testNow },
	}
}

func TestHandle(t *testing.T) {
	t.Run("normal run", func(t *testing.T) {
		var got rollup.Options
		h := newHandler(rollupFunc(func(_ context.Context, o rollup.Options) (*rollup.Run, error) {
			got = o
			return &rollup.Run{JobRunID: 7, Days: []time.Time{date("2031-03-19")}, RowsWritten: 12,
				StillDirty: []time.Time{date("2031-03-19")}, PartitionsDropped: []string{"eco_api_usage_p203011"}}, nil
		}))
		out, err := h.Handle(context.Background(), json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rollup.Options{}, got); diff != "" {
			t.Errorf("options (-want +got):\n%s", diff)
		}
		want := &Output{JobRunID: 7, DaysRecomputed: 1, RowsWritten: 12, StillDirty: []string{"2031-03-19"}, PartitionsDropped: []string{"eco_api_usage_p203011"}}
		if diff := cmp.Diff(want, out); diff != "" {
			t.Errorf("output (-want +got):\n%s", diff)
		}
	})
	t.Run("backfill", func(t *testing.T) {
		var got *usage.DayRange
		h := newHandler(rollupFunc(func(_ context.Context, o rollup.Options) (*rollup.Run, error) {
			got = o.Backfill
			return &rollup.Run{}, nil
		}))
		if _, err := h.Handle(context.Background(), json.RawMessage(`{"from":"2031-03-01","to":"2031-03-02"}`)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&usage.DayRange{From: date("2031-03-01"), To: date("2031-03-02")}, got); diff != "" {
			t.Errorf("backfill (-want +got):\n%s", diff)
		}
	})
	t.Run("bad input fails without running", func(t *testing.T) {
		h := newHandler(rollupFunc(func(context.Context, rollup.Options) (*rollup.Run, error) {
			t.Fatal("ran on bad input")
			return nil, nil
		}))
		_, err := h.Handle(context.Background(), json.RawMessage(`{"from":"yesterday"}`))
		if usage.ErrorCode(err) != usage.CodeInvalid {
			t.Errorf("Handle(bad) = %v; want %s", err, usage.CodeInvalid)
		}
	})
	t.Run("skipped is a success", func(t *testing.T) {
		h := newHandler(rollupFunc(func(context.Context, rollup.Options) (*rollup.Run, error) {
			return &rollup.Run{JobRunID: 3, Skipped: true}, nil
		}))
		out, err := h.Handle(context.Background(), nil)
		if err != nil || !out.Skipped {
			t.Errorf("Handle = %+v, %v; want skipped, nil", out, err)
		}
	})
	t.Run("store failure fails the invocation", func(t *testing.T) {
		cause := usage.Errorf(usage.CodeUnavailable, "database unavailable")
		h := newHandler(rollupFunc(func(context.Context, rollup.Options) (*rollup.Run, error) {
			return &rollup.Run{JobRunID: 4}, cause
		}))
		_, err := h.Handle(context.Background(), nil)
		if !errors.Is(err, cause) {
			t.Errorf("Handle = %v; want %v", err, cause)
		}
	})
}

// TestHandleStopsBeforeDeadline: the run ends deadlineMargin before the
// invocation's deadline, so that it still records how it ended and gives
// the job lock up before Lambda stops the function (a run cut off with the
// function stayed "running" in eco_job_runs for ever and kept the lock to
// its lease).
func TestHandleStopsBeforeDeadline(t *testing.T) {
	deadline := time.Now().Add(time.Minute)
	var got time.Time
	h := newHandler(rollupFunc(func(ctx context.Context, _ rollup.Options) (*rollup.Run, error) {
		got, _ = ctx.Deadline()
		return &rollup.Run{JobRunID: 1}, nil
	}))
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, err := h.Handle(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(deadline.Add(-deadlineMargin)) {
		t.Errorf("the run's deadline %s; want %s before the invocation's (%s)", got, deadlineMargin, deadline)
	}
}
