package main

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/usage"
)

// Bounds of the breakdown cache.
const (
	// BreakdownCacheTTL is how long an instance reuses a breakdown's answer.
	// Breakdowns come from the daily rollup alone, which the hourly
	// aggregate run changes: an answer is at most this much older than
	// the rollup (the answer's Cache-Control says max-age=60 too, and a
	// cached one's Age how much of it is gone).
	BreakdownCacheTTL = time.Minute
	// maxCacheBytes bounds the entries the cache holds (entrySize: key,
	// headers and body), and maxCachedBody the one body it keeps.
	maxCacheBytes = 16 << 20
	maxCachedBody = 1 << 20
	// entryOverhead is what an entry costs besides its strings: the map's
	// slot, the response's fields and its headers' map.
	entryOverhead = 256
)

// readCache keeps the answers of the breakdown routes (GET
// /v1/usage/endpoints and /keys, and their admin views) for
// BreakdownCacheTTL on the instance, so that a caller repeating the same
// report (a dashboard's refresh, a client in a loop, many clients of one
// tenant) costs one query a minute; concurrent identical reads share one
// query. Every read still takes its units from the caller's read budget:
// the cache saves the database's work, not the caller's allowance.
type readCache struct {
	mu       sync.Mutex
	entries  map[string]cachedRead
	bytes    int
	inflight map[string]*readCall
}

type cachedRead struct {
	resp httpapi.Response
	// at is when the answer was read, expires BreakdownCacheTTL later.
	at      time.Time
	expires time.Time
	size    int // entrySize, counted in readCache.bytes
}

type readCall struct {
	done chan struct{}
	resp httpapi.Response
}

func newReadCache() *readCache {
	return &readCache{entries: map[string]cachedRead{}, inflight: map[string]*readCall{}}
}

// get returns the answer of key at now: cached, or fill's (shared with
// concurrent callers of the same key). Only 200 answers are kept. A cached
// answer says how old it is in whole seconds (Age, RFC 9111), so that a
// client that may keep it (max-age) keeps it for what is left of its
// BreakdownCacheTTL, not for another one.
func (c *readCache) get(ctx context.Context, key string, now time.Time, fill func() httpapi.Response) httpapi.Response {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		resp := copyResponse(e.resp)
		resp.Headers["Age"] = strconv.FormatInt(int64(max(0, now.Sub(e.at))/time.Second), 10)
		return resp
	}
	if call, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return copyResponse(call.resp)
		case <-ctx.Done():
			return httpapi.Error(ctx, nil, usage.Errorf(usage.CodeUnavailable, "the report was not ready in time; retry"))
		}
	}
	call := &readCall{done: make(chan struct{})}
	c.inflight[key] = call
	c.mu.Unlock()

	call.resp = fill()
	c.mu.Lock()
	delete(c.inflight, key)
	if call.resp.StatusCode == http.StatusOK && len(call.resp.Body) <= maxCachedBody {
		c.put(key, cachedRead{resp: call.resp, at: now, expires: now.Add(BreakdownCacheTTL)}, now)
	}
	c.mu.Unlock()
	close(call.done)
	return copyResponse(call.resp)
}

// put stores e under key, sweeping the expired entries, and all of them
// if that is not enough, when the entries would pass maxCacheBytes. The
// caller holds c.mu.
func (c *readCache) put(key string, e cachedRead, now time.Time) {
	if old, ok := c.entries[key]; ok {
		c.bytes -= old.size
		delete(c.entries, key)
	}
	e.size = entrySize(key, e.resp)
	if c.bytes+e.size > maxCacheBytes {
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				c.bytes -= old.size
				delete(c.entries, k)
			}
		}
		if c.bytes+e.size > maxCacheBytes {
			c.entries, c.bytes = map[string]cachedRead{}, 0
		}
	}
	c.entries[key] = e
	c.bytes += e.size
}

// entrySize is what an entry holds in memory: its key (a caller's cursor
// makes it long), its headers and body, and entryOverhead. Counting the
// bodies alone let many small answers under long keys hold many times
// maxCacheBytes.
func entrySize(key string, resp httpapi.Response) int {
	n := len(key) + len(resp.Body) + entryOverhead
	for k, v := range resp.Headers {
		n += len(k) + len(v)
	}
	return n
}

// copyResponse copies resp's headers, which the callers add to.
func copyResponse(resp httpapi.Response) httpapi.Response {
	h := make(map[string]string, len(resp.Headers)+8)
	for k, v := range resp.Headers {
		h[k] = v
	}
	resp.Headers = h
	return resp
}
