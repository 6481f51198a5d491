package rollup_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// TestCheckMaxEndpointsPerDay: a cap is 1 to rollup.MaxEndpointsPerDayLimit.
func TestCheckMaxEndpointsPerDay(t *testing.T) {
	tests := []struct {
		n  int
		ok bool
	}{{-1, false}, {0, false}, {1, true}, {rollup.DefaultMaxEndpointsPerDay, true}, {rollup.MaxEndpointsPerDayLimit, true}, {rollup.MaxEndpointsPerDayLimit + 1, false}}
	for _, tt := range tests {
		err := rollup.CheckMaxEndpointsPerDay(tt.n)
		if (err == nil) != tt.ok || err != nil && usage.ErrorCode(err) != usage.CodeInvalid {
			t.Errorf("CheckMaxEndpointsPerDay(%d) = %v; want ok %v, else CodeInvalid", tt.n, err, tt.ok)
		}
	}
}

// TestRollupJob_MaxEndpointsPerDay: the job recomputes every day under
// its cap, rollup.DefaultMaxEndpointsPerDay unless its Config says
// otherwise; a cap past rollup.MaxEndpointsPerDayLimit makes no job.
func TestRollupJob_MaxEndpointsPerDay(t *testing.T) {
	for _, tt := range []struct{ opt, want int }{{0, rollup.DefaultMaxEndpointsPerDay}, {25, 25}} {
		t.Run(fmt.Sprint(tt.opt), func(t *testing.T) {
			s := &rollupStore{DirtyDaysFn: dirty(day(2031, 6, 1), day(2031, 6, 2), day(2031, 6, 3), day(2031, 6, 4), day(2031, 6, 5)),
				PartitionsFn: func() ([]rollup.Partition, error) { return months(), nil }}
			if _, err := newRollupJob(t, s, rollup.Config{MaxEndpointsPerDay: tt.opt}).RunRollup(context.Background(), rollup.Options{}); err != nil {
				t.Fatal(err)
			}
			if len(s.maxEndpoints) == 0 || slices.ContainsFunc(s.maxEndpoints, func(n int) bool { return n != tt.want }) {
				t.Errorf("RecomputeDay caps %v; want %d for every day", s.maxEndpoints, tt.want)
			}
		})
	}
	_, err := rollup.New(rollup.Config{Store: &rollupStore{}, Now: time.Now, MaxEndpointsPerDay: rollup.MaxEndpointsPerDayLimit + 1})
	if usage.ErrorCode(err) != usage.CodeInvalid {
		t.Errorf("New with a cap past the limit = %v; want CodeInvalid", err)
	}
}
func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
