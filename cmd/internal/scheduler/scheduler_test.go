package scheduler_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/cmd/internal/scheduler"
	"github.com/nexus/usage/shared/samtemplate"
)

func TestJobs(t *testing.T) {
	tmpl := &samtemplate.Template{Functions: []samtemplate.Function{
		{LogicalID: "AggregateFunction", Name: "aggregate", Schedules: []samtemplate.Schedule{
			{Event: "Nightly", Expression: "cron(15 0 * * ? *)", Timezone: "UTC", Input: `{"from":"2026-01-01"}`},
			{Event: "Off", Expression: "rate(1 hour)", Disabled: true},
		}},
		// An expression behind an intrinsic function reads as empty.
		{LogicalID: "OverageFunction", Name: "overage", Schedules: []samtemplate.Schedule{{Event: "Daily"}}},
	}}
	jobs, err := scheduler.Jobs(tmpl)
	if err == nil {
		t.Error("Jobs accepted an empty schedule expression")
	}
	if len(jobs) != 1 || jobs[0].Function != "aggregate" || string(jobs[0].Input()) != `{"from":"2026-01-01"}` {
		t.Fatalf("jobs = %+v", jobs)
	}
	from := time.Date(2026, 3, 10, 0, 20, 0, 0, time.UTC)
	if got := jobs[0].Schedule.Next(from); !got.Equal(time.Date(2026, 3, 11, 0, 15, 0, 0, time.UTC)) {
		t.Errorf("next run after %s = %s", from, got)
	}
	if got := (scheduler.Job{}).Input(); string(got) != "{}" {
		t.Errorf("Input() without one = %s; want {}", got)
	}
}

// TestRepositoryTemplate: every schedule of the real template.yaml parses.
func TestRepositoryTemplate(t *testing.T) {
	tmpl, err := samtemplate.Load(filepath.Join("..", "..", "..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := scheduler.Jobs(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) == 0 {
		t.Fatal("template.yaml has no schedules")
	}
	for _, j := range jobs {
		t.Logf("schedule: %s %s (next %s)", j.Function, j.Spec.Expression, j.Schedule.Next(time.Now().In(j.Location)).Format(time.RFC3339))
	}
}

// soon fires once, a moment after it is first asked.
type soon struct{ fired bool }

func (s *soon) Next(t time.Time) time.Time {
	if s.fired {
		return time.Time{}
	}
	s.fired = true
	return t.Add(10 * time.Millisecond)
}

func TestRun(t *testing.T) {
	jobs := []scheduler.Job{
		{Function: "aggregate", Spec: samtemplate.Schedule{Input: `{"x":1}`}, Schedule: &soon{}, Location: time.UTC},
		{Function: "overage", Schedule: &soon{}, Location: time.UTC},
	}
	var mu sync.Mutex
	got := map[string]string{}
	invoke := func(_ context.Context, fn string, input []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		got[fn] = string(input)
		return []byte(`{}`), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Run returns when every schedule has no more firings.
	scheduler.Run(ctx, jobs, invoke, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got["aggregate"] != `{"x":1}` || got["overage"] != "{}" || len(got) != 2 {
		t.Errorf("invocations = %v", got)
	}
}
