// Package mock holds function-field mocks of the usage interfaces that the
// functions and services consume, so that their tests run under a plain
// go test with no database, queue or payment provider. Each mock has one
// field per method, named after it with an Fn suffix, and its method calls
// the field: a test sets the fields its code path needs, and a call to one
// it left nil panics, which fails the test at the unexpected call.
//
//	store := &mock.UsageReader{
//		UsageSummaryFn: func(ctx context.Context, userID string, now time.Time) (*usage.UsageSummary, error) {
//			return nil, usage.Errorf(usage.CodeUnavailable, "database unavailable")
//		},
//	}
//	h := &Handler{Usage: store}
//
// The package imports only usage.
package mock
