package main

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nexus/usage/shared/limits"
	"github.com/nexus/usage/shared/postgres"
)

// TestReadFloodRefused is the flood of the issue over PostgreSQL: 300
// year-long GET /v1/usage/endpoints from 30 clients with one API key, all
// at one instant. The caller's read budget (60 units, 12 a year-long
// read) admits 5; the other 295 are 429s with Retry-After and the rate
// limit headers, and never reach the report's statement. Another caller
// is served meanwhile.
func TestReadFloodRefused(t *testing.T) {
	f := newDBFixture(t)
	f.h.Reads = limits.NewBudget(postgres.NewRateStore(f.db), limits.BudgetOptions{Name: "read",
		RatePerSecond: limits.DefaultReadRatePerSecond, Burst: limits.DefaultReadBurst, Now: func() time.Time { return testNow }})
	const clients, each = 30, 10
	statuses := make(chan map[string]string, clients*each)
	codes := make(chan int, clients*each)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				resp, err := f.h.Handle(context.Background(), request("GET", "/v1/usage/endpoints?from=2025-03-15&to=2026-03-15",
					map[string]string{"X-Api-Key": f.aliceKey}, ""))
				if err != nil {
					t.Error(err)
					return
				}
				codes <- resp.StatusCode
				statuses <- resp.Headers
			}
		}()
	}
	wg.Wait()
	close(codes)
	close(statuses)
	by := map[int]int{}
	for c := range codes {
		by[c]++
	}
	if by[http.StatusOK] != 5 || by[http.StatusTooManyRequests] != 295 {
		t.Errorf("300 year-long reads at once: %v; want 5 × 200 and 295 × 429", by)
	}
	for h := range statuses {
		if h["X-RateLimit-Limit"] != "60" || h["RateLimit-Policy"] == "" {
			t.Fatalf("an answer without the read budget's headers: %v", h)
		}
		if h["Content-Type"] == "application/problem+json" && h["Retry-After"] == "" {
			t.Fatalf("a refusal without Retry-After: %v", h)
		}
	}
	resp := serve(t, f.h, request("GET", "/v1/usage/endpoints?from=2025-03-15&to=2026-03-15", map[string]string{"X-Api-Key": f.bobKey}, ""))
	wantStatus(t, resp, http.StatusOK)
}
