package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/platform"
	"github.com/nexus/usage/cmd/internal/seed"
)

// Reading the stack, and waiting for what the demo sent to be counted.

// baseAfterFleet sets the timeline's base of each of users: its used calls
// once the fleet's events are counted, when no user's count has moved for
// still (at most limit). The fleet's late events of the current period are
// recorded a batch at a time, and waitUsage waits for the free user's
// alone (for none once its quota is filled, as on a second make demo): a
// base read before they were all counted ranked each threshold's crossing
// call too late, and webhooks were timed from calls made after they
// arrived.
func baseAfterFleet(ctx context.Context, hc *http.Client, gateway string, tl *timeline, users []seed.User, still, limit time.Duration) error {
	settled, err := settle(ctx, hc, &devstack.State{GatewayURL: gateway, Users: users}, still, limit)
	if err != nil {
		return err
	}
	for i, u := range users {
		tl.setBase(u.UserID, settled[i].Used)
	}
	return nil
}

// usageOf reads GET /v1/usage with the user's API key.
func usageOf(ctx context.Context, hc *http.Client, gateway string, u seed.User) (Usage, error) {
	var us Usage
	err := getJSON(ctx, hc, gateway+"/v1/usage", [2]string{"X-Api-Key", u.APIKey}, &us)
	if err != nil {
		return us, fmt.Errorf("GET /v1/usage of the %s user: %w", u.Plan, err)
	}
	return us, nil
}

// metrics reads the sample API's GET /metrics since a time.
func metrics(ctx context.Context, hc *http.Client, base string, since time.Time) (platform.Metrics, error) {
	var m platform.Metrics
	err := getJSON(ctx, hc, base+"/metrics?since="+url.QueryEscape(since.UTC().Format(time.RFC3339Nano)), [2]string{}, &m)
	if err != nil {
		return m, fmt.Errorf("GET /metrics of the sample API: %w", err)
	}
	return m, nil
}

func getJSON(ctx context.Context, hc *http.Client, u string, hdr [2]string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if hdr[0] != "" {
		req.Header.Set(hdr[0], hdr[1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// waitUsage polls GET /v1/usage until the user's used calls reach want.
func waitUsage(ctx context.Context, hc *http.Client, gateway string, u seed.User, want int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		us, err := usageOf(ctx, hc, gateway, u)
		if err != nil {
			return err
		}
		if us.Used >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s user's usage is %d after %s; want %d (is the record function running?)", u.Plan, us.Used, limit, want)
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// waitPublished waits until the sample API's publisher has sent want
// events since it started.
func waitPublished(ctx context.Context, hc *http.Client, base string, want int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		m, err := metrics(ctx, hc, base, time.Now())
		if err != nil {
			return err
		}
		if m.Usage.Published >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the sample API published %d usage events after %s; want %d", m.Usage.Published, limit, want)
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// settle reads every user's usage until none moved for still, and returns
// the last reading.
func settle(ctx context.Context, hc *http.Client, st *devstack.State, still, limit time.Duration) ([]Usage, error) {
	deadline := time.Now().Add(limit)
	var last []Usage
	changed := time.Now()
	for {
		var now []Usage
		for _, u := range st.Users {
			us, err := usageOf(ctx, hc, st.GatewayURL, u)
			if err != nil {
				return nil, err
			}
			now = append(now, us)
		}
		if last == nil || !sameUsed(last, now) {
			changed = time.Now()
		}
		last = now
		if time.Since(changed) >= still || time.Now().After(deadline) {
			return last, nil
		}
		if !sleep(ctx, 500*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

func sameUsed(a, b []Usage) bool {
	for i := range a {
		if a[i].Used != b[i].Used {
			return false
		}
	}
	return true
}
