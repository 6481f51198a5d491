package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/report"
	"github.com/nexus/usage/shared/usage"
)

// TestBreakdownCache: a breakdown asked again within a minute is answered
// by the instance without a query, and asked after it, with one; another
// range or another user is another query; each read still takes its units
// from the read budget.
func TestBreakdownCache(t *testing.T) {
	f := newFixture(t)
	now := testNow
	f.h.Now = func() time.Time { return now }
	var queries int
	endpoints := f.usage.EndpointBreakdownFn
	f.usage.EndpointBreakdownFn = func(ctx context.Context, bf report.BreakdownFilter) ([]report.Breakdown, error) {
		queries++
		return endpoints(ctx, bf)
	}
	year := "/v1/usage/endpoints?from=2025-03-16&to=2026-03-15"
	first := f.get(t, year, "ApiKey "+f.aliceKey)
	wantStatus(t, first, http.StatusOK)
	now = now.Add(59 * time.Second)
	again := f.get(t, year, "ApiKey "+f.aliceKey)
	if queries != 1 || again.Body != first.Body || again.Headers["Cache-Control"] != "private, max-age=60" {
		t.Errorf("asked again within a minute: %d queries, Cache-Control %q; want 1, the same answer, max-age=60", queries, again.Headers["Cache-Control"])
	}
	f.get(t, "/v1/usage/endpoints?from=2025-03-17&to=2026-03-15", "ApiKey "+f.aliceKey)
	f.get(t, year, token(t, bob, false))
	if queries != 3 {
		t.Errorf("another range, then another user: %d queries in all; want 3", queries)
	}
	now = now.Add(2 * time.Second)
	f.get(t, year, "ApiKey "+f.aliceKey)
	if queries != 4 {
		t.Errorf("after a minute: %d queries; want 4", queries)
	}
	if len(f.readCosts) != 5 || f.readCosts[1] != 12 {
		t.Errorf("read budget taken %v; want 12 for each of the 5 reads, cached or not", f.readCosts)
	}
}

// TestBreakdownCacheAge: an answer from the instance's cache says how old
// it is (Age), so that a client keeps it for what is left of its minute,
// not for another minute: max-age=60 alone let a client keep an answer
// read 59 s earlier for 119 s in all, twice what Cache-Control promises.
// Its 304 says so too; a fresh answer has no Age.
func TestBreakdownCacheAge(t *testing.T) {
	f := newFixture(t)
	now := testNow
	f.h.Now = func() time.Time { return now }
	authz := map[string]string{"X-Api-Key": f.aliceKey}
	first := f.do(t, request("GET", "/v1/usage/endpoints", authz, ""))
	wantStatus(t, first, http.StatusOK)
	if age, ok := first.Headers["Age"]; ok {
		t.Errorf("a fresh answer: Age %q; want none", age)
	}
	now = now.Add(59*time.Second + 900*time.Millisecond)
	again := f.do(t, request("GET", "/v1/usage/endpoints", authz, ""))
	if again.Body != first.Body || again.Headers["Age"] != "59" || again.Headers["Cache-Control"] != "private, max-age=60" {
		t.Errorf("the cached answer 59.9 s later: Age %q, Cache-Control %q; want Age 59 with max-age=60", again.Headers["Age"], again.Headers["Cache-Control"])
	}
	authz["If-None-Match"] = first.Headers["ETag"]
	revalidated := f.do(t, request("GET", "/v1/usage/endpoints", authz, ""))
	if revalidated.StatusCode != http.StatusNotModified || revalidated.Headers["Age"] != "59" {
		t.Errorf("its 304: %d, Age %q; want 304 with Age 59", revalidated.StatusCode, revalidated.Headers["Age"])
	}
}

// TestBreakdownCacheSharesQueries: concurrent identical breakdowns share
// one query.
func TestBreakdownCacheSharesQueries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		release := make(chan struct{})
		var queries atomic.Int64
		endpoints := f.usage.EndpointBreakdownFn
		f.usage.EndpointBreakdownFn = func(ctx context.Context, bf report.BreakdownFilter) ([]report.Breakdown, error) {
			queries.Add(1)
			<-release
			return endpoints(ctx, bf)
		}
		f.reads.TakeFn = func(context.Context, usage.Identity, int64) (usage.Decision, error) { return readAllowed, nil }
		codes := make(chan int, 10)
		for range 10 {
			go func() {
				resp, _ := f.h.Handle(context.Background(), request("GET", "/v1/usage/endpoints", map[string]string{"X-Api-Key": f.aliceKey}, ""))
				codes <- resp.StatusCode
			}()
		}
		synctest.Wait()
		close(release)
		for range 10 {
			if c := <-codes; c != http.StatusOK {
				t.Errorf("status %d", c)
			}
		}
		if n := queries.Load(); n != 1 {
			t.Errorf("10 concurrent identical breakdowns ran %d queries; want 1", n)
		}
	})
}

// TestBreakdownCacheBound: the cache's bound counts what an entry holds,
// key and headers with the body, so that many small answers under long
// keys (a cursor makes a key long) stay within maxCacheBytes.
func TestBreakdownCacheBound(t *testing.T) {
	c := newReadCache()
	now := testNow
	resp := httpapi.Response{StatusCode: http.StatusOK, Headers: map[string]string{"Content-Type": "application/json"}, Body: `{"endpoints":[]}`}
	key := strings.Repeat("k", 600)
	for i := range 100_000 {
		c.get(context.Background(), fmt.Sprint(key, i), now, func() httpapi.Response { return resp })
	}
	held := 0
	for k, e := range c.entries {
		held += len(k) + len(e.resp.Body)
	}
	if held > maxCacheBytes || c.bytes > maxCacheBytes {
		t.Errorf("100,000 small answers under 600-byte keys: %d entries hold %d bytes of keys and bodies, %d counted; want at most %d",
			len(c.entries), held, c.bytes, maxCacheBytes)
	}
	if len(c.entries) == 0 {
		t.Error("nothing cached")
	}
}
