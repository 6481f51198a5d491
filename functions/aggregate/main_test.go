package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres/pgtest"
	"github.com/nexus/usage/shared/rollup"
)

func testEnv(vars map[string]string) *env.Env {
	return env.New(context.Background(), func(k string) string { return vars[k] })
}

// TestSetup refuses bad configuration before anything connects.
func TestSetup(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, bad := range []map[string]string{
		{},
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "0"},
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "ninety"},
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "soon"},
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "46d", "RETENTION_DAYS": "400"},
	} {
		if _, err := setup(ctx, testEnv(bad), logger); err == nil {
			t.Errorf("setup(%v): no error", bad)
		}
	}
}

// TestSetupRefusesRetentionShorterThanBackfill: raw events must outlast the
// backfill window by usage.BackfillMargin (5 days), or a late event would
// land in a month retention dropped. The refusal names RETENTION_DAYS and
// the days needed.
func TestSetupRefusesRetentionShorterThanBackfill(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, tt := range []struct {
		vars map[string]string
		need string
	}{
		{map[string]string{"RETENTION_DAYS": "30"}, "40"},                           // default 35d + 5
		{map[string]string{"RETENTION_DAYS": "39"}, "40"},                           // one day short
		{map[string]string{"RETENTION_DAYS": "20", "BACKFILL_WINDOW": "16d"}, "21"}, // the function's own window
		{map[string]string{"RETENTION_DAYS": "49", "BACKFILL_WINDOW": "1080h"}, "50"},
	} {
		tt.vars["DATABASE_URL"] = "postgres://x"
		_, err := setup(ctx, testEnv(tt.vars), logger)
		if err == nil || !strings.Contains(err.Error(), "RETENTION_DAYS") || !strings.Contains(err.Error(), "at least "+tt.need+" days") {
			t.Errorf("setup(%v) = %v; want RETENTION_DAYS refused, at least %s days", tt.vars, err, tt.need)
		}
	}
	for _, ok := range []map[string]string{
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "40"},
		{"DATABASE_URL": "postgres://x", "RETENTION_DAYS": "21", "BACKFILL_WINDOW": "16d"},
	} {
		if _, err := setup(ctx, testEnv(ok), logger); err != nil {
			t.Errorf("setup(%v) = %v; want accepted", ok, err)
		}
	}
}

// TestSetupRefusesEndpointCap: MAX_ENDPOINTS_PER_DAY must be a whole number
// from 1 to rollup.MaxEndpointsPerDayLimit; anything else stops the function
// at start with an error naming the variable and what it must be.
func TestSetupRefusesEndpointCap(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, tt := range []struct{ value, want string }{
		{"0", "between 1 and 100000, not 0"},
		{"100001", "between 1 and 100000, not 100001"},
		{"-5", "a non-negative integer"},
		{"lots", "a non-negative integer"},
		{"1e3", "a non-negative integer"},
	} {
		vars := map[string]string{"DATABASE_URL": "postgres://x", "MAX_ENDPOINTS_PER_DAY": tt.value}
		_, err := setup(ctx, testEnv(vars), logger)
		if err == nil || !strings.HasPrefix(err.Error(), "MAX_ENDPOINTS_PER_DAY: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("setup(MAX_ENDPOINTS_PER_DAY=%s) = %v; want refused naming the variable, %q", tt.value, err, tt.want)
		}
	}
	for _, ok := range []string{"1", "1000", "100000"} {
		if _, err := setup(ctx, testEnv(map[string]string{"DATABASE_URL": "postgres://x", "MAX_ENDPOINTS_PER_DAY": ok}), logger); err != nil {
			t.Errorf("setup(MAX_ENDPOINTS_PER_DAY=%s) = %v; want accepted", ok, err)
		}
	}
}

// TestSetupWithDatabase wires the handler to a real database.
func TestSetupWithDatabase(t *testing.T) {
	url := pgtest.NewURL(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := setup(ctx, testEnv(map[string]string{"DATABASE_URL": url}), logger)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	config := func(h *Handler) rollup.Config { return h.Rollup.(*rollup.Job).Config() }
	if c := config(h); c.RetentionDays != rollup.DefaultRetentionDays || c.MaxEndpointsPerDay != rollup.DefaultMaxEndpointsPerDay || c.Workers != 2 || h.Now == nil {
		t.Errorf("job = %+v", c)
	}
	h, err = setup(ctx, testEnv(map[string]string{"DATABASE_URL": url, "MAX_ENDPOINTS_PER_DAY": "250"}), logger)
	if err != nil || config(h).MaxEndpointsPerDay != 250 {
		t.Errorf("setup with MAX_ENDPOINTS_PER_DAY=250: %+v, %v", h, err)
	}
	h, err = setup(ctx, testEnv(map[string]string{"DATABASE_URL": url, "RETENTION_DAYS": "30", "BACKFILL_WINDOW": "7d"}), logger)
	if err != nil || config(h).RetentionDays != 30 {
		t.Errorf("setup with RETENTION_DAYS=30, BACKFILL_WINDOW=7d: %+v, %v", h, err)
	}
}
