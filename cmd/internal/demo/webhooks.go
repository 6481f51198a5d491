package demo

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/shared/usage"
)

// Webhook is one webhook the local receiver got during the demo.
type Webhook struct {
	devstack.Received
	// Plan is its user's plan; Percent the threshold's percentage (0 for
	// other rules) and ThresholdCalls the calls it was reached at.
	Plan           string `json:"plan"`
	Percent        int64  `json:"percent"`
	ThresholdCalls int64  `json:"threshold_calls"`
	// Period is the billing period it was raised in; Late marks one
	// before the current (the fleet's late events crossed it).
	Period usage.Period `json:"period"`
	Late   bool         `json:"late"`
	// CrossingCall is when the demo's call that brought the user's count
	// to ThresholdCalls was answered (zero when the demo did not make
	// it), and Latency the time from it to the webhook's arrival.
	CrossingCall time.Time     `json:"crossing_call"`
	Latency      time.Duration `json:"latency"`
}

// timeline is when each of a user's calls in the demo was answered, in
// order, after the calls its period had counted before (base).
type timeline struct {
	mu    sync.Mutex
	base  map[string]int64
	calls map[string][]time.Time
}

func newTimeline() *timeline {
	return &timeline{base: map[string]int64{}, calls: map[string][]time.Time{}}
}

func (t *timeline) setBase(user string, used int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.base[user] = used
}

func (t *timeline) add(user string, at time.Time, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for range n {
		t.calls[user] = append(t.calls[user], at)
	}
}

// at returns when the user's call that brought its period's count to
// calls was answered. Calls are counted in about the order they are
// answered (the publisher's and the queue's batches keep it to within a
// batch), so it is the call of that rank.
func (t *timeline) at(user string, calls int64) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := calls - t.base[user]
	if k < 1 || k > int64(len(t.calls[user])) {
		return time.Time{}, false
	}
	return t.calls[user][k-1], true
}

// collectWebhooks waits until the receiver has had nothing new for still
// (at most limit), and returns the demo users' webhooks received since
// start, each timed from its crossing call.
func collectWebhooks(ctx context.Context, st *devstack.State, tl *timeline, start time.Time, still, limit time.Duration) ([]Webhook, error) {
	plans := map[string]string{}
	for _, u := range st.Users {
		plans[u.UserID] = u.Plan
	}
	deadline, last, lastChange := time.Now().Add(limit), -1, time.Now()
	var got []devstack.Received
	for {
		all, err := devstack.FetchWebhooks(ctx, st.AdminURL)
		if err != nil {
			return nil, err
		}
		got = got[:0]
		for _, r := range all {
			if !r.ReceivedAt.Before(start) && plans[r.UserID] != "" {
				got = append(got, r)
			}
		}
		if len(got) != last {
			last, lastChange = len(got), time.Now()
		}
		if time.Since(lastChange) >= still || time.Now().After(deadline) {
			break
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	var out []Webhook
	for _, r := range got {
		var d struct {
			ThresholdCalls   int64        `json:"threshold_calls"`
			ThresholdPercent *int64       `json:"threshold_percent"`
			Period           usage.Period `json:"period"`
		}
		_ = json.Unmarshal(r.Data, &d)
		w := Webhook{Received: r, Plan: plans[r.UserID], ThresholdCalls: d.ThresholdCalls, Period: d.Period,
			Late: !d.Period.End.IsZero() && !d.Period.End.After(start)}
		if d.ThresholdPercent != nil {
			w.Percent = *d.ThresholdPercent
		}
		// The timeline is of the current period's calls.
		if at, ok := tl.at(r.UserID, d.ThresholdCalls); ok && !w.Late {
			w.CrossingCall, w.Latency = at, r.ReceivedAt.Sub(at)
		}
		out = append(out, w)
	}
	return out, nil
}

// webhookLatencies are the latencies of the first arrival of each event
// whose crossing call the demo made.
func webhookLatencies(ws []Webhook) []time.Duration {
	var ls []time.Duration
	for _, w := range ws {
		if !w.Duplicate && !w.CrossingCall.IsZero() {
			ls = append(ls, w.Latency)
		}
	}
	slices.Sort(ls)
	return ls
}
