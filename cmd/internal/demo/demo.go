package demo

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/platform"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/limits"
)

// How the demo's callers behave.
const (
	// trafficTime is how long the callers call; the free user's callers
	// keep calling after its quota is used, to show that it holds.
	trafficTime = 60 * time.Second
	// burstTime is how long the pro and enterprise callers call.
	burstTime = 25 * time.Second
	// fillShare is the share of its quota the free user has used, through
	// the queue, before the demo's callers start.
	fillShare = 0.9
	// quotaRetry is how often a free caller tries again after
	// quota_exceeded, not waiting the days Retry-After says.
	quotaRetry = 2 * time.Second
)

// Row is one line of the demo's table: a user's callers of one kind.
type Row struct {
	User    seed.User `json:"user"`
	Via     string    `json:"via"`
	Callers int       `json:"callers"`
	Rate    float64   `json:"rate_per_caller"`
	Counts  Counts    `json:"counts"`
}

// Charge is the part of a priced period the demo shows.
type Charge struct {
	Billable int64  `json:"billable_calls"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Usage is what GET /v1/usage says of a user.
type Usage struct {
	PlanID    string `json:"plan_id"`
	Included  int64  `json:"included"`
	Used      int64  `json:"used"`
	Remaining int64  `json:"remaining"`
	HardLimit bool   `json:"hard_limit"`
	// OverageToDate and Projected are the period's overage so far and at
	// its end, as GET /v1/usage prices them.
	OverageToDate Charge `json:"overage_to_date"`
	Projected     Charge `json:"projected"`
	RateLimit     struct {
		RatePerSecond float64 `json:"rate_per_second"`
		Burst         int     `json:"burst"`
	} `json:"rate_limit"`
}

// Bound is the most calls a user's hard quota can be overshot by, and
// what it is made of.
type Bound struct {
	Burst int           `json:"burst"`
	Rate  float64       `json:"rate_per_second"`
	TTL   time.Duration `json:"ttl"`
	Lag   time.Duration `json:"lag"`
	Calls int64         `json:"calls"`
}

// OvershootBound is the most calls a hard quota can be overshot by, per
// rate limiter key of the user, when the user is served by more than one
// limits.Limiter (the sample API's, the analytics function's behind POST
// /v1/limits/check, other instances): each Limiter reserves every call it
// admits against its own estimate of the period's usage, so what it
// cannot see are only the calls the others admitted that have not reached
// the counters it last read: those admitted within its cache TTL plus the
// lag from a served call to its count (publisher flush + queue batching
// window + record). All Limiters share the key's rate limit (GCRA state in
// PostgreSQL), which admits at most burst + rate × window calls in any
// window: hence burst + ⌈rate × (TTL + lag)⌉. One Limiter alone cannot
// overshoot at all.
func OvershootBound(burst int, rate float64, ttl, lag time.Duration) Bound {
	return Bound{Burst: burst, Rate: rate, TTL: ttl, Lag: lag,
		Calls: int64(burst) + int64(math.Ceil(rate*(ttl+lag).Seconds()))}
}

// Result is what Run saw.
type Result struct {
	State    *devstack.State `json:"-"`
	Rows     []Row           `json:"rows"`
	Fleet    Stats           `json:"fleet"`
	FillWait time.Duration   `json:"fill_wait"`
	Traffic  time.Duration   `json:"traffic"`
	Before   []Usage         `json:"before"` // by State.Users
	After    []Usage         `json:"after"`
	// Bound is the free user's overshoot bound.
	Bound Bound `json:"bound"`
	// Metrics are the sample API's over the traffic; SendCalls its
	// publisher's SendMessageBatch calls during the traffic.
	Metrics   platform.Metrics `json:"metrics"`
	SendCalls int64            `json:"send_message_batch_calls"`
	// Webhooks are what the stack's webhook receiver got for the demo
	// users from the fleet's first event on.
	Webhooks []Webhook `json:"webhooks"`
}

// Options are the demo's choices.
type Options struct {
	// NextJS is the base URL of the Next.js example app (examples/nextjs,
	// started against the same stack), or "": part of the pro user's
	// traffic goes through it.
	NextJS string
}

// Run sends the demo's traffic to the stack st describes and returns what
// it saw:
//
//  1. through the usage queue, as the rest of a producer fleet: the free
//     user's earlier calls today, up to 90 % of its quota, late events for
//     pro and enterprise (most in the billing period that closed two days
//     ago), duplicates and two invalid messages; then it waits until GET
//     /v1/usage shows the free user's, and every user's counters stop
//     moving (the calls below are counted after these);
//  2. through the sample platform API, 14 concurrent callers for a minute:
//     the free user's (its API key, 11 calls/s against its 2/s) until well
//     past its hard quota, one of them a service in another language that
//     meters through POST /v1/limits/check and POST /v1/events; the pro
//     user's above its 50/s (bursts of 429 with Retry-After) and past its
//     included calls into overage; the enterprise user's past its included
//     calls. Callers honour Retry-After after rate_limited; the free
//     user's retry every 2 s after quota_exceeded;
//     With Options.NextJS, two of the pro user's callers call the Next.js
//     example app instead, metered by the TypeScript package;
//  3. it waits until the counters stop moving and reads GET /v1/usage of
//     each user and the sample API's metrics;
//  4. it reads what the stack's webhook receiver got for the users (the
//     free user's 80 % and 100 %, pro's and enterprise's 80 % and 100 %,
//     past which they are in overage), each timed from the call that
//     crossed its threshold to its arrival.
func Run(ctx context.Context, st *devstack.State, opts Options, logger *slog.Logger) (*Result, error) {
	if st.PlatformURL == "" {
		return nil, errors.New("the stack serves no sample platform API")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	free, pro, ent, err := demoUsers(st)
	if err != nil {
		return nil, err
	}
	res := &Result{State: st}
	tl := newTimeline()
	for _, u := range st.Users {
		us, err := usageOf(ctx, hc, st.GatewayURL, u)
		if err != nil {
			return nil, err
		}
		res.Before = append(res.Before, us)
		tl.setBase(u.UserID, us.Used)
	}
	fb := res.Before[index(st, free)]
	window := seconds(st.BatchWindowSeconds) + seconds(st.PlatformFlushSeconds)
	res.Bound = OvershootBound(fb.RateLimit.Burst, fb.RateLimit.RatePerSecond, limits.DefaultCacheTTL, window+time.Second)

	// 1. The fleet's events through the queue.
	start := time.Now()
	fill := max(0, int64(math.Round(float64(fb.Included)*fillShare))-fb.Used)
	if res.Fleet, err = sendFleet(ctx, st, map[string]int{free.UserID: int(fill)}, start.UTC(), logger); err != nil {
		return nil, err
	}
	tl.add(free.UserID, start, int(fill))
	if err := waitUsage(ctx, hc, st.GatewayURL, free, fb.Used+fill, window+30*time.Second); err != nil {
		return nil, err
	}
	res.FillWait = time.Since(start)
	// The callers' calls count after the fleet's late events of the
	// current period.
	if err := baseAfterFleet(ctx, hc, st.GatewayURL, tl, []seed.User{pro, ent}, window+time.Second, window+30*time.Second); err != nil {
		return nil, err
	}

	// 2. The callers.
	before, err := metrics(ctx, hc, st.PlatformURL, time.Now())
	if err != nil {
		return nil, err
	}
	sample, other := platformCall(st.PlatformURL), otherServiceCall(st.GatewayURL)
	key := func(u seed.User) [2]string { return [2]string{"X-Api-Key", u.APIKey} }
	type group struct {
		row     Row
		call    func(context.Context, *http.Client, [2]string, *rand.Rand) outcome
		hdr     [2]string
		d       time.Duration
		onQuota time.Duration
		// sample: the sample API serves the calls and publishes them.
		sample bool
	}
	groups := []group{
		{Row{User: free, Via: "sample API, API key", Callers: 3, Rate: 3}, sample, key(free), trafficTime, quotaRetry, true},
		{Row{User: free, Via: "limits/check + events", Callers: 1, Rate: 2}, other, key(free), trafficTime, quotaRetry, false},
		{Row{User: pro, Via: "sample API, API key", Callers: 5, Rate: 12}, sample, key(pro), burstTime, 0, true},
		{Row{User: pro, Via: "sample API, JWT", Callers: 1, Rate: 12}, sample, [2]string{"Authorization", "Bearer " + pro.Token}, burstTime, 0, true},
		{Row{User: ent, Via: "sample API, API key", Callers: 4, Rate: 15}, sample, key(ent), burstTime, 0, true},
	}
	if opts.NextJS != "" {
		groups[2].row.Callers -= 2
		groups = append(groups, group{Row{User: pro, Via: "Next.js app, API key", Callers: 2, Rate: 12},
			nextjsCall(opts.NextJS), key(pro), burstTime, 0, false})
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	trafficStart := time.Now()
	for gi := range groups {
		g := &groups[gi]
		for ci := range g.row.Callers {
			c := caller{header: g.hdr, rate: g.row.Rate, call: g.call, quotaRetry: g.onQuota}
			cctx, cancel := context.WithTimeout(ctx, g.d)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel()
				c.run(cctx, hc, uint64(gi*100+ci), func(o outcome) {
					if !o.failed && o.status != http.StatusTooManyRequests {
						tl.add(g.row.User.UserID, time.Now(), 1)
					}
					mu.Lock()
					g.row.Counts.count(o)
					mu.Unlock()
				})
			}()
		}
	}
	wg.Wait()
	res.Traffic = time.Since(trafficStart)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, g := range groups {
		res.Rows = append(res.Rows, g.row)
	}
	afterTraffic, err := metrics(ctx, hc, st.PlatformURL, trafficStart)
	if err != nil {
		return nil, err
	}
	res.Metrics = afterTraffic
	res.SendCalls = afterTraffic.Usage.SendMessageBatchCalls - before.Usage.SendMessageBatchCalls

	// 3. Settle: every served call published, then the counters still.
	served := int64(0)
	for _, g := range groups {
		if g.sample {
			served += int64(g.row.Counts.Served())
		}
	}
	if err := waitPublished(ctx, hc, st.PlatformURL, before.Usage.Published+served, 10*time.Second); err != nil {
		return nil, err
	}
	if res.After, err = settle(ctx, hc, st, window+time.Second, window+30*time.Second); err != nil {
		return nil, err
	}
	// 4. The webhooks: what the receiver got until it gets nothing more.
	if st.ReceiverURL != "" {
		if res.Webhooks, err = collectWebhooks(ctx, st, tl, start, 3*time.Second, time.Minute); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// demoUsers returns the seeded free, pro and enterprise users.
func demoUsers(st *devstack.State) (free, pro, ent seed.User, err error) {
	for _, u := range st.Users {
		switch u.UserID {
		case seed.FreeUserID:
			free = u
		case seed.ProUserID:
			pro = u
		case seed.EnterpriseUserID:
			ent = u
		}
	}
	if free.APIKey == "" || pro.APIKey == "" || ent.APIKey == "" {
		return free, pro, ent, errors.New("the stack has not the demo users (free, pro, enterprise) with API keys")
	}
	return free, pro, ent, nil
}

func index(st *devstack.State, u seed.User) int {
	for i, v := range st.Users {
		if v.UserID == u.UserID {
			return i
		}
	}
	return -1
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
