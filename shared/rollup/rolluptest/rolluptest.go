// Package rolluptest holds the reference definition of the daily rollup
// that the database's aggregate_daily_usage implements: tests compare the
// two. Only tests import it.
package rolluptest

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nexus/usage/shared/rollup"
	"github.com/nexus/usage/shared/usage"
)

// Percentile returns the discrete percentile p (0..1) of sorted values, as
// PostgreSQL's percentile_disc computes it: the first value whose cumulative
// share of the values is at least p, sorted[ceil(p*n)-1]. It returns 0 for
// no values.
func Percentile(sorted []int64, p float64) int64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(p * float64(n)))
	if i < 1 {
		i = 1
	}
	if i > n {
		i = n
	}
	return sorted[i-1]
}

// Rollup computes the daily rollup of events: the reference
// definition the database's aggregate_daily_usage implements. Events must
// already be deduplicated (the raw table keeps one row per event). The
// result is ordered by day, user, endpoint and API key.
//
// A user's day keeps at most maxEndpoints endpoints by name, its most
// called ones (every endpoint when maxEndpoints < 1); the events of the
// others are rolled up under rollup.OtherEndpoint, one row per API key.
// Endpoints rank by their calls summed over API keys, most first, ties in
// byte order, and an endpoint named rollup.OtherEndpoint last (so that it joins
// the row it names whenever anything is folded). Calls, errors, bytes and
// events keep their totals; the percentiles and the maximum of an
// rollup.OtherEndpoint row are those of its events.
func Rollup(events []usage.Event, maxEndpoints int) []rollup.DailyRollup {
	folded := foldedEndpoints(events, maxEndpoints)
	type key struct {
		day                      time.Time
		user, endpoint, apiKeyID string
	}
	type acc struct {
		row       rollup.DailyRollup
		latencies []int64
	}
	groups := map[key]*acc{}
	for _, e := range events {
		k := key{usage.Day(e.OccurredAt), e.UserID, e.Endpoint, e.APIKeyID}
		if folded[userDayEndpoint{k.day, k.user, k.endpoint}] {
			k.endpoint = rollup.OtherEndpoint
		}
		a := groups[k]
		if a == nil {
			a = &acc{row: rollup.DailyRollup{Day: k.day, UserID: k.user, Endpoint: k.endpoint, APIKeyID: k.apiKeyID}}
			groups[k] = a
		}
		q := quantity(e)
		r := &a.row
		r.Calls += q
		switch {
		case e.StatusCode >= 400 && e.StatusCode <= 499:
			r.Errors4xx += q
		case e.StatusCode >= 500 && e.StatusCode <= 599:
			r.Errors5xx += q
		}
		r.RequestBytes += e.RequestBytes
		r.ResponseBytes += e.ResponseBytes
		r.LatencySumMS += e.LatencyMS
		r.LatencyMaxMS = max(r.LatencyMaxMS, e.LatencyMS)
		r.Events++
		a.latencies = append(a.latencies, e.LatencyMS)
	}
	out := make([]rollup.DailyRollup, 0, len(groups))
	for _, a := range groups {
		slices.Sort(a.latencies)
		a.row.LatencyP50MS = Percentile(a.latencies, 0.5)
		a.row.LatencyP95MS = Percentile(a.latencies, 0.95)
		out = append(out, a.row)
	}
	Sort(out)
	return out
}

// userDayEndpoint is one endpoint of one user's UTC day.
type userDayEndpoint struct {
	day            time.Time
	user, endpoint string
}

// foldedEndpoints returns the endpoints of events that Rollup keeps
// under rollup.OtherEndpoint.
func foldedEndpoints(events []usage.Event, maxEndpoints int) map[userDayEndpoint]bool {
	if maxEndpoints < 1 {
		return nil
	}
	type userDay struct {
		day  time.Time
		user string
	}
	calls := map[userDay]map[string]int64{}
	for _, e := range events {
		k := userDay{usage.Day(e.OccurredAt), e.UserID}
		if calls[k] == nil {
			calls[k] = map[string]int64{}
		}
		calls[k][e.Endpoint] += quantity(e)
	}
	folded := map[userDayEndpoint]bool{}
	for k, byEndpoint := range calls {
		if len(byEndpoint) <= maxEndpoints {
			continue
		}
		endpoints := slices.Collect(maps.Keys(byEndpoint))
		slices.SortFunc(endpoints, func(a, b string) int {
			if ao, bo := a == rollup.OtherEndpoint, b == rollup.OtherEndpoint; ao != bo {
				if ao {
					return 1
				}
				return -1
			}
			if c := cmp.Compare(byEndpoint[b], byEndpoint[a]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, ep := range endpoints[maxEndpoints:] {
			folded[userDayEndpoint{k.day, k.user, ep}] = true
		}
	}
	return folded
}

// quantity is an event's quantity, a zero read as 1.
func quantity(e usage.Event) int64 {
	if e.Quantity == 0 {
		return 1
	}
	return e.Quantity
}

// Sort orders rows by day, user, endpoint and API key.
func Sort(rows []rollup.DailyRollup) {
	slices.SortFunc(rows, func(a, b rollup.DailyRollup) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		if c := strings.Compare(a.UserID, b.UserID); c != 0 {
			return c
		}
		if c := strings.Compare(a.Endpoint, b.Endpoint); c != 0 {
			return c
		}
		return strings.Compare(a.APIKeyID, b.APIKeyID)
	})
}
