package mock_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus/usage/shared/mock"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// Example sets the one field a code path needs: here a store whose
// database is down. A handler under test takes it where the function
// passes the PostgreSQL store; a call to a method whose field is nil
// panics, which fails the test at the unexpected call.
func Example() {
	var store report.UsageReader = &mock.UsageReader{
		UsageSummaryFn: func(ctx context.Context, userID string, now time.Time) (*report.UsageSummary, error) {
			return nil, usage.Errorf(usage.CodeUnavailable, "database unavailable")
		},
	}
	_, err := store.UsageSummary(context.Background(), "u1", time.Now())
	fmt.Println(usage.ErrorCode(err), usage.ErrorMessage(err))
	// Output:
	// unavailable database unavailable
}
