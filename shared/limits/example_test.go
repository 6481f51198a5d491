package limits_test

import (
	"fmt"

	"github.com/nexus/usage/shared/limits"
)

// ExampleGCRA runs the rate limit's arithmetic for 2 calls a second with
// bursts of 3: the burst is admitted at once, the fourth call waits half a
// second, and half a second later one more is admitted.
func ExampleGCRA() {
	g := limits.NewGCRA(2, 3)
	var tat int64 // the key's state: 0 for a fresh key
	now := int64(1_000_000_000)
	for i := 1; i <= 4; i++ {
		var r limits.RateResult
		tat, r = g.Take(tat, now, 1)
		fmt.Printf("call %d: allowed %v, remaining %d, retry after %v\n", i, r.Allowed, r.Remaining, r.RetryAfter)
	}
	_, r := g.Take(tat, now+500_000, 1)
	fmt.Printf("0.5 s later: allowed %v\n", r.Allowed)
	// Output:
	// call 1: allowed true, remaining 2, retry after 0s
	// call 2: allowed true, remaining 1, retry after 0s
	// call 3: allowed true, remaining 0, retry after 0s
	// call 4: allowed false, remaining 0, retry after 500ms
	// 0.5 s later: allowed true
}
