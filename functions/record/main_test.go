package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres/pgtest"
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
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "soon"},
		// Longer than the event key store remembers ids.
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "46d"},
		{"DATABASE_URL": "postgres://x", "BACKFILL_WINDOW": "0s"},
		{"DATABASE_URL": "::not a url::"},
		{"DATABASE_URL": "postgres://x", "REDELIVERY_BASE": "100ms"},
		{"DATABASE_URL": "postgres://x", "REDELIVERY_BASE": "10m", "REDELIVERY_MAX": "1m"},
		{"DATABASE_URL": "postgres://x", "REDELIVERY_MAX": "13h"},
	} {
		if _, err := setup(ctx, testEnv(bad), logger); err == nil {
			t.Errorf("setup(%v): no error", bad)
		}
	}
}

// TestSetupWithDatabase wires the handler to a real database.
func TestSetupWithDatabase(t *testing.T) {
	url := pgtest.NewURL(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := setup(context.Background(), testEnv(map[string]string{"DATABASE_URL": url, "BACKFILL_WINDOW": "7d", "DATABASE_PROXY": "true"}), logger)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if h.Recorder.Backfill != 7*24*time.Hour || h.Recorder.Store == nil || h.Recorder.Now == nil {
		t.Errorf("handler = %+v", h)
	}
}
