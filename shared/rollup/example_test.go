package rollup_test

import (
	"fmt"

	"github.com/nexus/usage/shared/rollup"
)

// ExampleCheckMaxEndpointsPerDay: how many endpoints of a user's day the
// rollup keeps by name is bounded; the rest are rolled up as
// rollup.OtherEndpoint.
func ExampleCheckMaxEndpointsPerDay() {
	for _, n := range []int{rollup.DefaultMaxEndpointsPerDay, 0, rollup.MaxEndpointsPerDayLimit + 1} {
		fmt.Println(n, rollup.CheckMaxEndpointsPerDay(n) == nil)
	}
	fmt.Println(rollup.OtherEndpoint)
	// Output:
	// 1000 true
	// 0 false
	// 100001 false
	// (other)
}
