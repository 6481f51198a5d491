package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/seed"
)

// LagOptions configure MeasureLag; zero values take the defaults.
type LagOptions struct {
	// Requests is how many metered requests to time (default 100).
	Requests int
	// Every is the pace of the requests (default 200ms: 5 a second).
	Every time.Duration
	// Poll is the pause between two readings of GET /v1/usage (default
	// 500ms: the analytics API's read budget, 2 a second per caller by
	// default, answers faster readings 429 once its burst is spent).
	Poll time.Duration
	// Idle is how long the publisher's calls are counted once every
	// request was counted (default 10s).
	Idle time.Duration
}

// LagResult is what MeasureLag measured.
type LagResult struct {
	State    *devstack.State
	Options  LagOptions
	User     seed.User
	Lags     []time.Duration // sorted
	Goal     time.Duration   // batching window + publisher flush + 1 s
	Sending  time.Duration   // from the first request until the last was counted
	SendCall int64           // SendMessageBatch calls during Sending
	IdleCall int64           // and during Options.Idle after it
}

// Median is the median lag (nearest rank, as P90 and Max).
func (r *LagResult) Median() time.Duration { return rank(r.Lags, 0.5) }

// P90 is the 90th percentile lag.
func (r *LagResult) P90() time.Duration { return rank(r.Lags, 0.9) }

// Max is the longest lag.
func (r *LagResult) Max() time.Duration { return rank(r.Lags, 1) }

func rank(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(d))*p)) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// MeasureLag measures, against the stack st describes, the time from a
// metered request to its appearance in GET /v1/usage: it sends
// o.Requests requests through the sample platform API at a steady pace
// with the enterprise user's API key (its rate limit and soft quota refuse
// none), polls that user's GET /v1/usage, and takes the k-th request's lag
// as the time from its send to the first reading that counts k of them.
// The pipeline keeps the order of a user's events (one publisher, messages
// recorded in the order the poller receives them, one transaction per
// batch), so the k-th count is the k-th request. A reading counts from
// when its answer arrived, so polling never shortens a lag. The user must
// have no other traffic meanwhile: a count above what was sent is an
// error. It also counts the sample API publisher's SendMessageBatch calls
// while the requests trickle in and in the idle seconds after.
func MeasureLag(ctx context.Context, st *devstack.State, o LagOptions) (*LagResult, error) {
	if o.Requests <= 0 {
		o.Requests = 100
	}
	if o.Every <= 0 {
		o.Every = 200 * time.Millisecond
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Idle <= 0 {
		o.Idle = 10 * time.Second
	}
	if st.PlatformURL == "" {
		return nil, errors.New("the stack serves no sample platform API")
	}
	_, _, ent, err := demoUsers(st)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	window := seconds(st.BatchWindowSeconds) + seconds(st.PlatformFlushSeconds)
	res := &LagResult{State: st, Options: o, User: ent, Goal: window + time.Second}

	// Start from still counters: nothing of earlier traffic in flight.
	still, err := settle(ctx, hc, &devstack.State{GatewayURL: st.GatewayURL, Users: []seed.User{ent}}, window+time.Second, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	base := still[0].Used
	m0, err := metrics(ctx, hc, st.PlatformURL, time.Now())
	if err != nil {
		return nil, err
	}

	sent := make([]time.Time, o.Requests)
	seen := make([]time.Time, 0, o.Requests)
	var sendErr error
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go func() { // the requests, at a steady pace
		defer wg.Done()
		for i := range o.Requests {
			if !sleep(ctx, time.Until(start.Add(time.Duration(i)*o.Every))) {
				return
			}
			sent[i] = time.Now()
			if err := lagRequest(ctx, hc, st.PlatformURL, ent, i); err != nil {
				sendErr = err
				return
			}
		}
	}()
	deadline := start.Add(time.Duration(o.Requests)*o.Every + res.Goal + 20*time.Second)
	for len(seen) < o.Requests && time.Now().Before(deadline) && ctx.Err() == nil {
		us, err := usageOf(ctx, hc, st.GatewayURL, ent)
		at := time.Now()
		if err != nil {
			return nil, err
		}
		n := int(us.Used - base)
		if n > o.Requests {
			return nil, fmt.Errorf("the %s user's usage grew by %d while %d requests were sent: another caller is using it", ent.Plan, n, o.Requests)
		}
		for len(seen) < n {
			seen = append(seen, at)
		}
		sleep(ctx, o.Poll)
	}
	wg.Wait()
	res.Sending = time.Since(start)
	switch {
	case sendErr != nil:
		return nil, sendErr
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case len(seen) < o.Requests:
		return nil, fmt.Errorf("GET /v1/usage counted %d of %d requests within %s", len(seen), o.Requests, time.Since(start).Round(time.Second))
	}
	for k := range seen {
		res.Lags = append(res.Lags, seen[k].Sub(sent[k]))
	}
	slices.Sort(res.Lags)

	m1, err := metrics(ctx, hc, st.PlatformURL, time.Now())
	if err != nil {
		return nil, err
	}
	if !sleep(ctx, o.Idle) {
		return nil, ctx.Err()
	}
	m2, err := metrics(ctx, hc, st.PlatformURL, time.Now())
	if err != nil {
		return nil, err
	}
	res.SendCall = m1.Usage.SendMessageBatchCalls - m0.Usage.SendMessageBatchCalls
	res.IdleCall = m2.Usage.SendMessageBatchCalls - m1.Usage.SendMessageBatchCalls
	return res, nil
}

// lagRequest is one metered request; anything but 200 is an error.
func lagRequest(ctx context.Context, hc *http.Client, base string, u seed.User, i int) error {
	resp, err := send(ctx, hc, "GET", base+"/v1/games/"+strconv.Itoa(1+i%5), [2]string{"X-Api-Key", u.APIKey}, "")
	if err != nil {
		return fmt.Errorf("request %d: %w", i+1, err)
	}
	o, b := read(resp)
	if o.status != http.StatusOK {
		return fmt.Errorf("request %d answered %d: %s", i+1, o.status, b)
	}
	return nil
}

// Print writes the measurement.
func (r *LagResult) Print(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	o := r.Options
	p("make lag: %d metered requests (GET /v1/games/{id}, the %s user's API key), one every %s, through %s;",
		len(r.Lags), r.User.Plan, o.Every, r.State.PlatformURL)
	p("the time from each request to the first GET /v1/usage that counted it (read every %s):", o.Poll)
	p("  median %s   p90 %s   max %s   (min %s)", secs(r.Median()), secs(r.P90()), secs(r.Max()), secs(r.Lags[0]))
	verdict := "met"
	if r.Max() > r.Goal {
		verdict = "NOT met"
	}
	p("  goal: batching window %s + publisher flush %s + 1 s = %s: %s",
		seconds(r.State.BatchWindowSeconds), seconds(r.State.PlatformFlushSeconds), r.Goal, verdict)
	span := time.Duration(len(r.Lags)) * o.Every
	p("The sample API's publisher: %d SendMessageBatch calls for the %d requests (%.1f s at %.0f/s: %.2f calls/s), %d in the %s idle after.",
		r.SendCall, len(r.Lags), span.Seconds(), float64(time.Second)/float64(o.Every), float64(r.SendCall)/span.Seconds(), r.IdleCall, o.Idle)
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s" }
